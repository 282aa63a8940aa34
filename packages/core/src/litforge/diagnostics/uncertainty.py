"""Error rate against uncertainty: is the model unsure where it is wrong?

Examples are put in equal-width bins of normalised entropy (0 = certain, 1 = uniform); the plot
shows each bin's error rate, its count, and the y = x line. The expected calibration error (on
the confidence, the top-class probability) is logged as ``<stage>/<dataset>/ece``.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.diagnostics.base import EpochCallback, append, concat, gather_dedup
from litforge.diagnostics.media import emit_figure
from litforge.tasks.contracts import ContractError, require_fields
from litforge.tasks.structs import Example, Prediction

NEEDS = {"example_fields": ("label",), "prediction_fields": ("probs",)}


def class_probabilities(
    who: str, example: Example, prediction: Prediction
) -> tuple[Tensor, Tensor]:
    """(probs N x C, label N) of a classification batch, or a ContractError naming ``who``."""
    require_fields(who, example, prediction, **NEEDS)
    probs, label = prediction.probs, example.label  # type: ignore[attr-defined]
    if probs.dim() != 2 or label.shape != probs.shape[:1]:
        raise ContractError(
            f"{who} needs prediction.probs of N x C and example.label of N (one class per "
            f"example), got probs {tuple(probs.shape)} and label {tuple(label.shape)} from "
            f"{type(prediction).__name__} and {type(example).__name__}"
        )
    return probs.float(), label


def bin_of(values: Tensor, n_bins: int) -> Tensor:
    """Index of the equal-width bin on [0, 1] of each value; 1.0 falls in the last bin."""
    return (values.clamp(0, 1) * n_bins).long().clamp(max=n_bins - 1)


def error_by_entropy(entropy: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
    """(count, error rate) per entropy bin; the error rate of an empty bin is NaN."""
    b = bin_of(entropy, n_bins)
    count = torch.bincount(b, minlength=n_bins)
    errors = torch.bincount(b, weights=(~correct.bool()).double(), minlength=n_bins)
    rate = torch.where(count > 0, errors / count.clamp_min(1), torch.nan)
    return count, rate


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int) -> Tensor:
    """sum over confidence bins of (n_bin / N) * |accuracy_bin - mean confidence_bin|."""
    b = bin_of(confidence, n_bins)
    count = torch.bincount(b, minlength=n_bins).double()
    acc = torch.bincount(b, weights=correct.double(), minlength=n_bins)
    conf = torch.bincount(b, weights=confidence.double(), minlength=n_bins)
    gap = (acc - conf).abs()  # n_bin * |acc_bin - conf_bin|
    return gap.sum() / count.sum().clamp_min(1)


class Uncertainty(EpochCallback):
    """Args:
    n_bins: equal-width bins on [0, 1] for the plot and the ECE.
    stages: 'val' and/or 'test'.
    """

    def __init__(
        self, n_bins: int = 10, stages: tuple[str, ...] | list[str] = ("val", "test")
    ) -> None:
        super().__init__(stages)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = n_bins
        # (stage, dataset) -> what the last plot showed: count and error rate per entropy
        # bin, the ECE and the number of examples (tests read it)
        self.last_bins: dict[tuple[str, str], dict[str, Tensor]] = {}

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        class_probabilities("Uncertainty", example, prediction)

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        probs, label = class_probabilities("Uncertainty", example, prediction)
        confidence, pred = probs.max(dim=-1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1) / math.log(probs.shape[-1])
        self.state[key] = append(
            self.state.get(key),
            index=example.index,
            entropy=entropy,
            confidence=confidence,
            correct=(pred == label).float(),
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
        count, rate = error_by_entropy(data["entropy"].cpu(), data["correct"].cpu(), self.n_bins)
        ece = expected_calibration_error(
            data["confidence"].cpu(), data["correct"].cpu(), self.n_bins
        )
        self.last_bins[(stage, dataset)] = {
            "count": count,
            "rate": rate,
            "ece": ece,
            "n": torch.tensor(len(data["index"])),
        }
        pl_module.log(f"{stage}/{dataset}/ece", ece.float().to(pl_module.device))
        emit_figure(trainer, f"{stage}/{dataset}/uncertainty", self.figure(count, rate, float(ece)))

    def figure(self, count: Tensor, rate: Tensor, ece: float) -> plt.Figure:
        edges = torch.linspace(0, 1, self.n_bins + 1)
        centers = ((edges[:-1] + edges[1:]) / 2).numpy()
        fig, ax = plt.subplots(figsize=(5.5, 4))
        counts_ax = ax.twinx()
        counts_ax.bar(centers, count.numpy(), width=1 / self.n_bins * 0.9, color="0.85", zorder=0)
        counts_ax.set_ylabel("examples per bin", color="0.4")
        ax.set_zorder(counts_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot([0, 1], [0, 1], "--", color="tab:gray", label="y = x")
        ax.plot(centers, rate.numpy(), "o-", color="tab:red", label="error rate")
        ax.set(
            xlim=(0, 1), ylim=(0, 1), xlabel="normalised entropy (H / log C)", ylabel="error rate"
        )
        ax.set_title(f"error rate vs uncertainty (ECE {ece:.3f})")
        ax.legend(loc="upper left")
        fig.tight_layout()
        return fig
