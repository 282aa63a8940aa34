"""Regression diagnostics: predicted against true (with y = x and the worst k marked) and a
histogram of the residuals, for every target value of the epoch, exact across ranks.

Reads ``prediction.<pred_field>`` and ``example.<target_field>`` (any shape, the same for both:
every element is one point); the worst k examples are those with the highest
``BaseModel.example_error`` (default: the per-example loss). Logs ``<stage>/<dataset>/
residual_std`` beside the plots.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.diagnostics.base import EpochCallback, append, concat, gather_dedup
from litforge.diagnostics.media import emit_figure
from litforge.tasks.contracts import ContractError, per_example, require_fields
from litforge.tasks.model import BaseModel
from litforge.tasks.structs import Example, Prediction


class Regression(EpochCallback):
    """Args:
    k: the worst examples marked in the plot.
    bins: bins of the residual histogram.
    pred_field, target_field: what to compare.
    stages: 'val' and/or 'test'.
    """

    def __init__(
        self,
        k: int = 8,
        bins: int = 40,
        pred_field: str = "value",
        target_field: str = "target",
        stages: tuple[str, ...] | list[str] = ("val", "test"),
    ) -> None:
        super().__init__(stages)
        self.k, self.bins = k, bins
        self.pred_field, self.target_field = pred_field, target_field
        self.last: dict[tuple[str, str], dict[str, Tensor]] = {}  # what was drawn, for tests

    def _values(self, example: Example, prediction: Prediction) -> tuple[Tensor, Tensor]:
        require_fields("Regression", example, prediction, (self.target_field,), (self.pred_field,))
        pred = getattr(prediction, self.pred_field).detach().float()
        true = getattr(example, self.target_field).float()
        if pred.shape != true.shape:
            raise ContractError(
                f"Regression compares prediction.{self.pred_field} {tuple(pred.shape)} with "
                f"example.{self.target_field} {tuple(true.shape)}: they must have the same shape"
            )
        return pred.reshape(len(pred), -1), true.reshape(len(true), -1)

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        self._values(example, prediction)
        if not isinstance(pl_module, BaseModel):
            raise ContractError(
                f"Regression needs a litforge BaseModel, got {type(pl_module).__name__}"
            )

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        pred, true = self._values(example, prediction)
        error = per_example("Regression", pl_module.example_error(example, prediction), example)
        self.state[key] = append(
            self.state.get(key), index=example.index, pred=pred, true=true, error=error.float()
        )

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> None:
        data = gather_dedup(pl_module, concat(state))
        data = {k: v.cpu() for k, v in data.items()}
        residual = data["pred"] - data["true"]
        pl_module.log(f"{stage}/{dataset}/residual_std", residual.std().to(pl_module.device))
        worst = torch.argsort(data["error"], descending=True, stable=True)[: self.k]
        self.last[(stage, dataset)] = {**data, "worst": data["index"][worst]}
        emit_figure(trainer, f"{stage}/{dataset}/regression", figure(data, worst, self.bins))


def figure(data: dict[str, Tensor], worst: Tensor, bins: int) -> plt.Figure:
    pred, true = data["pred"].flatten().numpy(), data["true"].flatten().numpy()
    residual = pred - true
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(10, 4.2))
    lo, hi = float(min(pred.min(), true.min())), float(max(pred.max(), true.max()))
    ax.scatter(true, pred, s=6, alpha=0.5, color="tab:blue", label="examples")
    ax.plot([lo, hi], [lo, hi], "--", color="tab:gray", label="y = x")
    w_pred, w_true = data["pred"][worst].flatten().numpy(), data["true"][worst].flatten().numpy()
    ax.scatter(
        w_true, w_pred, s=30, facecolors="none", edgecolors="tab:red", label=f"worst {len(worst)}"
    )
    per_point = data["pred"].shape[1]
    for i, idx in enumerate(data["index"][worst].tolist()):
        ax.annotate(
            f"#{idx}", (w_true[i * per_point], w_pred[i * per_point]), fontsize=6, color="tab:red"
        )
    ax.set(xlabel="true", ylabel="predicted", title="predicted against true")
    ax.legend(loc="upper left", fontsize=7)
    hist.hist(residual, bins=bins, color="tab:blue", alpha=0.8)
    hist.axvline(0, color="tab:gray", linestyle="--")
    hist.set(
        xlabel="residual (predicted - true)",
        ylabel="count",
        title=f"residuals: mean {residual.mean():.3g}, std {residual.std():.3g}",
    )
    fig.tight_layout()
    return fig
