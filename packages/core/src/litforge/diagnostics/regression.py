"""Regression diagnostics, exact across ranks, chosen by the shape of one target.

A few values per example (a number, or up to ``max_outputs`` of them): predicted against true
for every value (with y = x and the worst k examples marked) and a histogram of the residuals.

A target with spatial shape (C x H x W, H x W, or a long series): each example is judged as a
whole, never pixel by pixel. The picture ``regression`` shows the distribution of the
per-example error (``BaseModel.example_error``; for ``Regressor`` each example's mean squared
error) with the worst k marked; ``regression/worst`` draws those k examples, each as input |
prediction | target | error map (images) or as predicted and true curves (series), at a
readable size. Only the errors and the worst k examples are kept while the epoch runs.

Reads ``prediction.<pred_field>`` and ``example.<target_field>`` (the same shape). Logs
``<stage>/<dataset>/residual_std`` (over every value) beside the pictures.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from litforge.diagnostics.base import EpochCallback, append, concat, dedup, gather_dedup
from litforge.diagnostics.extremes import flatten, rebuild, select, standardised_fields
from litforge.diagnostics.media import Scored, emit_figure, emit_images, fmt, side_by_side, suptitle
from litforge.tasks.contracts import ContractError, per_example, require_fields, task_data
from litforge.tasks.model import BaseModel
from litforge.tasks.structs import Example, Prediction


class Regression(EpochCallback):
    """Regression diagnostics: predicted against true with y = x and the worst k examples
    marked, and the residuals' histogram; for targets with a spatial shape, the distribution of
    the per-example error and the worst k examples drawn (input | prediction | target | error).

    Args:
    k: the worst examples marked (and drawn, for spatial targets).
    bins: bins of the histograms.
    pred_field, target_field: what to compare.
    per_example: judge each example as a whole (True) or every value (False); null: by the
        shape of one target: per example when it has more than one dimension or more than
        ``max_outputs`` values.
    max_outputs: see ``per_example``.
    stages: 'val' and/or 'test'.
    **kwargs: the cadence of validation pictures and the files kept (EpochCallback).
    """

    def __init__(
        self,
        k: int = 8,
        bins: int = 40,
        pred_field: str = "value",
        target_field: str = "target",
        per_example: bool | None = None,
        max_outputs: int = 16,
        stages: tuple[str, ...] | list[str] = ("val", "test"),
        **kwargs: Any,
    ) -> None:
        super().__init__(stages, **kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.bins = k, bins
        self.pred_field, self.target_field = pred_field, target_field
        self.per_example, self.max_outputs = per_example, max_outputs
        self.last: dict[tuple[str, str], dict[str, Tensor]] = {}  # what was drawn, for tests
        self._templates: tuple[Example, Prediction] | None = None

    def _values(self, example: Example, prediction: Prediction) -> tuple[Tensor, Tensor]:
        require_fields("Regression", example, prediction, (self.target_field,), (self.pred_field,))
        pred = getattr(prediction, self.pred_field).detach().float()
        true = getattr(example, self.target_field).float()
        if pred.shape != true.shape:
            raise ContractError(
                f"Regression compares prediction.{self.pred_field} {tuple(pred.shape)} with "
                f"example.{self.target_field} {tuple(true.shape)}: they must have the same shape"
            )
        return pred, true

    def dense(self, true: Tensor) -> bool:
        """Whether examples of this target are judged whole (see ``per_example``)."""
        if self.per_example is not None:
            return self.per_example
        one = true.shape[1:]
        return len(one) > 1 or math.prod(one) > self.max_outputs

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
        error = error.detach().float()
        if not self.dense(true):
            self.state[key] = append(
                self.state.get(key),
                index=example.index,
                pred=pred.reshape(len(pred), -1),
                true=true.reshape(len(true), -1),
                error=error,
            )
            return
        # whole examples: their error and residual sums; only the batch's worst k kept whole
        residual = (pred - true).reshape(len(pred), -1).double()
        state = self.state.get(key) or {"rows": None, "sums": None}
        state["sums"] = append(
            state["sums"],
            index=example.index,
            error=error,
            r_sum=residual.sum(1),
            r_sq=(residual**2).sum(1),
            count=torch.full_like(error, residual.shape[1], dtype=torch.float64),
        )
        batch = dedup(flatten(example, prediction.detach(), error))
        mine = select(batch, self.k, highest=True)
        rows = state["rows"]
        merged = mine if rows is None else {k: torch.cat([rows[k], v]) for k, v in mine.items()}
        state["rows"] = select(dedup(merged), self.k, highest=True)
        self._templates = (example[:1], prediction[:1])
        self.state[key] = state

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> dict[str, Any]:
        if "sums" not in state:  # a few values per example
            data = {k: v.cpu() for k, v in gather_dedup(pl_module, concat(state)).items()}
            residual = data["pred"] - data["true"]
            pl_module.log(f"{stage}/{dataset}/residual_std", residual.std().to(pl_module.device))
            worst = torch.argsort(data["error"], descending=True, stable=True)[: self.k]
            self.last[(stage, dataset)] = {**data, "worst": data["index"][worst]}
            return {"dense": False, "data": data, "worst": worst}
        sums = {k: v.cpu() for k, v in gather_dedup(pl_module, concat(state["sums"])).items()}
        n = sums["count"].sum()
        total = sums["r_sum"].sum()
        std = torch.sqrt((sums["r_sq"].sum() - total**2 / n) / (n - 1).clamp_min(1))
        pl_module.log(f"{stage}/{dataset}/residual_std", std.float().to(pl_module.device))
        rows = select(gather_dedup(pl_module, state["rows"]), self.k, highest=True)
        rows = {k: v.cpu() for k, v in rows.items()}
        summary = {"dense": True, "index": sums["index"], "error": sums["error"], "rows": rows}
        self.last[(stage, dataset)] = {
            "index": sums["index"],
            "error": sums["error"],
            "worst": rows["index"],
            "residual_std": std,
        }
        return summary

    def draw(
        self, trainer: pl.Trainer, stage: str, dataset: str, summary: Any, shown: Scored
    ) -> None:
        key = f"{stage}/{dataset}/regression"
        if not summary["dense"]:
            data, worst = summary["data"], summary["worst"]
            title = self.title(stage, dataset, "regression", shown)
            standardised = self.target_field in standardised_fields(trainer)
            facts = {
                "model": shown.facts(),
                "examples": len(data["index"]),
                "standardised": standardised,
                "residual_mean": float((data["pred"] - data["true"]).mean()),
                "residual_std": float((data["pred"] - data["true"]).std()),
                "worst": [
                    {"index": int(data["index"][i]), "error": float(data["error"][i])}
                    for i in worst.tolist()
                ],
            }
            fig = figure(data, worst, self.bins, title, standardised=standardised)
            emit_figure(trainer, key, fig, step=shown.step, facts=facts, keep=self.keep_files)
            return
        rows = summary["rows"]
        assert self._templates is not None  # set by collect
        example, prediction = rebuild(rows, *self._templates)
        worst = [{"index": int(i), "error": float(e)} for i, e in zip(rows["index"], rows["error"])]
        error = summary["error"]
        facts = {
            "model": shown.facts(),
            "examples": len(error),
            "error": {
                "mean": float(error.mean()),
                "median": float(error.median()),
                "p90": float(torch.quantile(error.double(), 0.9)),
                "max": float(error.max()),
            },
            "worst": worst,
        }
        fig = error_figure(
            error, rows["error"], self.bins, self.title(stage, dataset, "error per example", shown)
        )
        emit_figure(trainer, key, fig, step=shown.step, facts=facts, keep=self.keep_files)
        pred = getattr(prediction, self.pred_field).float()
        true = getattr(example, self.target_field).float()
        captions = [f"#{w['index']} · error {fmt(w['error'])}" for w in worst]
        what = f"the {len(worst)} worst examples"
        if true.dim() == 2:  # series: curves
            fig = curves_figure(pred, true, captions, self.title(stage, dataset, what, shown))
            emit_figure(
                trainer, f"{key}/worst", fig, step=shown.step, facts=facts, keep=self.keep_files
            )
            return
        panels, names = triptychs(trainer, example, pred, true, self.target_field)
        captions = [f"{c}\n{' | '.join(names)}" for c in captions]
        emit_images(
            trainer,
            f"{key}/worst",
            panels,
            captions,
            step=shown.step,
            title=self.title(stage, dataset, what, shown),
            facts=facts,
            keep=self.keep_files,
        )


# ---------------------------------------------------------------------- drawing
def _as_images(x: Tensor) -> Tensor:
    """N x C x H x W floats from N x H x W or N x C x H x W (more leading dims folded into C);
    more than 3 channels: the first one."""
    if x.dim() == 3:
        x = x[:, None]
    elif x.dim() > 4:
        x = x.reshape(x.shape[0], -1, *x.shape[-2:])
    return x if x.shape[1] in (1, 3) else x[:, :1]


def _scale(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Floats to uint8 RGB on [lo, hi] per example (N x 1 x 1 x 1), clipped."""
    y = ((x - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    y = (y * 255).round().to(torch.uint8)
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


def _heat(x: Tensor, top: float) -> Tensor:
    """N x H x W non-negative values -> uint8 RGB through the 'magma' colour map on [0, top]."""
    cmap = plt.get_cmap("magma")
    rgb = cmap((x / max(top, 1e-8)).clamp(0, 1).numpy())[..., :3]
    return torch.from_numpy((rgb * 255).round().astype(np.uint8)).permute(0, 3, 1, 2)


def triptychs(
    trainer: pl.Trainer, example: Example, pred: Tensor, true: Tensor, target_field: str
) -> tuple[Tensor, list[str]]:
    """uint8 N x 3 x H x W' pictures: input | prediction | target | error. The prediction is
    drawn on the target's scale (its min and max, per example); the error map is |prediction -
    target| averaged over channels, on one scale for all the examples; the input is the
    example's first image-shaped field, shown as the data module shows it when it can."""
    p, t = _as_images(pred.cpu()), _as_images(true.cpu())
    lo = t.amin(dim=(1, 2, 3), keepdim=True)
    hi = t.amax(dim=(1, 2, 3), keepdim=True)
    error = (p - t).abs().mean(dim=1)
    panels = [_scale(p, lo, hi), _scale(t, lo, hi), _heat(error, float(error.max()))]
    names = ["predicted", "true", "error"]
    data = task_data(trainer)
    for name, value in example._tensor_fields().items():
        if name in ("index", "id", target_field) or value.dim() < 3:
            continue
        if not value.is_floating_point() and value.dtype != torch.uint8:
            continue
        shown = value.cpu()
        if name == getattr(data, "image_field", None) and hasattr(data, "to_display"):
            shown = data.to_display(value).cpu()  # type: ignore[union-attr]
        image = _as_images(shown.float())
        if image.shape[-2:] != t.shape[-2:]:
            image = F.interpolate(image, size=t.shape[-2:], mode="nearest")
        if shown.dtype == torch.uint8:
            image = _scale(image, torch.tensor(0.0), torch.tensor(255.0))
        else:
            image = _scale(
                image,
                image.amin(dim=(1, 2, 3), keepdim=True),
                image.amax(dim=(1, 2, 3), keepdim=True),
            )
        panels.insert(0, image)
        names.insert(0, name)
        break
    # small pictures grown (nearest) before they are joined, so the white gap between the
    # panels of one example stays thin beside the gap between examples
    grow = max(1, math.ceil(48 / min(t.shape[-2:])))
    panels = [p.repeat_interleave(grow, -1).repeat_interleave(grow, -2) for p in panels]
    return side_by_side(*panels, gap=max(1, t.shape[-1] * grow // 24)), names


def curves_figure(pred: Tensor, true: Tensor, captions: list[str], title: str) -> plt.Figure:
    """One small plot per example: its true and predicted series."""
    n = len(pred)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols, 2.3 * nrows + 0.5), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.plot(true[i].numpy(), color="0.3", lw=1.2, label="true")
        ax.plot(pred[i].numpy(), color="tab:red", lw=1, label="predicted")
        ax.set_title(captions[i], fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    suptitle(fig, title)
    return fig


def error_figure(error: Tensor, worst: Tensor, bins: int, title: str) -> plt.Figure:
    """The distribution of the per-example error, the worst marked under it, its quantiles."""
    e = error.double().numpy()
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    positive = e[e > 0]
    log = len(positive) == len(e) and len(e) > 1 and positive.max() > 30 * positive.min()
    edges = (
        np.geomspace(positive.min(), positive.max(), bins + 1)
        if log
        else np.linspace(e.min(), e.max() if e.max() > e.min() else e.min() + 1, bins + 1)
    )
    ax.hist(e, bins=edges.tolist(), color="tab:blue", alpha=0.8)
    if log:
        ax.set_xscale("log")
    quantiles = {"median": np.median(e), "90%": np.quantile(e, 0.9)}
    for (name, q), style in zip(quantiles.items(), ("-", "--")):
        ax.axvline(q, color="0.3", linestyle=style, lw=1, label=f"{name}: {fmt(q)}")
    for w in worst.double().numpy():
        ax.axvline(w, color="tab:red", lw=1, ymax=0.06)
    ax.plot([], [], color="tab:red", label=f"the {len(worst)} worst (drawn in regression/worst)")
    ax.set(xlabel="error of each example (its loss)", ylabel="examples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{len(e)} examples: mean {fmt(e.mean())}, max {fmt(e.max())}", fontsize=9)
    ax.legend(fontsize=8)
    suptitle(fig, title)
    return fig


def figure(
    data: dict[str, Tensor], worst: Tensor, bins: int, title: str, standardised: bool = False
) -> plt.Figure:
    """Predicted against true for every value (the worst examples circled), and the residuals;
    ``standardised``: the target was standardised by the data module, which the axes say."""
    units = " (standardised)" if standardised else ""
    pred, true = data["pred"].flatten().numpy(), data["true"].flatten().numpy()
    residual = pred - true
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    lo, hi = float(min(pred.min(), true.min())), float(max(pred.max(), true.max()))
    ax.scatter(true, pred, s=6, alpha=0.5, color="tab:blue", label="values", lw=0)
    ax.plot([lo, hi], [lo, hi], "--", color="tab:gray", label="y = x")
    w_pred, w_true = data["pred"][worst].numpy(), data["true"][worst].numpy()
    ax.scatter(
        w_true.flatten(), w_pred.flatten(), s=40, facecolors="none", edgecolors="tab:red",
        label=f"the {len(worst)} worst examples",
    )  # fmt: skip
    if w_true.shape[1] == 1 and len(worst) <= 10:
        for i, idx in enumerate(data["index"][worst].tolist()):
            ax.annotate(
                f"#{idx}", (w_true[i, 0], w_pred[i, 0]), xytext=(4, 4), textcoords="offset points",
                fontsize=7, color="tab:red",
            )  # fmt: skip
    outputs = data["pred"].shape[1]
    ax.set(xlabel=f"true{units}", ylabel=f"predicted{units}")
    ax.set_title(
        f"predicted against true: {len(data['index'])} examples"
        + (f" x {outputs} outputs" if outputs > 1 else ""),
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=7)
    residual = residual.astype(np.float64)  # bin edges in float64: a narrow spread is binned
    spread = float(np.ptp(residual)) if residual.size else 0.0
    hist.hist(residual, bins=bins if spread > 0 else 1, color="tab:blue", alpha=0.8)
    hist.axvline(0, color="tab:gray", linestyle="--")
    hist.set(xlabel=f"residual (predicted - true){units}", ylabel="values")
    hist.set_title(f"residuals: mean {fmt(residual.mean())}, std {fmt(residual.std())}", fontsize=9)
    suptitle(fig, title)
    return fig
