"""Calibration: does a predicted probability of 0.8 come true 80% of the time?

Two views of one epoch, for any number of classes C:

- the reliability diagram: examples in equal-width bins of confidence (the top-class
  probability); for each bin its accuracy against its mean confidence, with a 95% interval for
  the bin's count, beside y = x, and the count of each bin drawn under it. The expected
  calibration error ``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` is computed on exactly
  these bins (TorchMetrics' ``MulticlassCalibrationError`` with the same bins gives the same
  value) and logged as ``<stage>/<dataset>/ece``.
- error against uncertainty: examples in equal-width bins of normalised entropy (H / log C: 0 =
  certain, 1 = uniform); each bin's error rate beside the error a calibrated model would make
  on the same examples, the mean of ``1 - confidence`` in the bin. That reference is not y = x:
  a calibrated two-class model at entropy 1 errs half the time, a ten-class one 90%, and at a
  given entropy the error depends on how the probability is spread, so it is computed from the
  examples themselves.

A multi-label model (a multi-hot ``target`` and a sigmoid per label) is calibrated decision by
decision: every (example, label) pair counts once. The reliability diagram bins the predicted
probability that the label is present against how often it is (the ECE of these bins is
TorchMetrics' ``BinaryCalibrationError`` over all the pairs); the entropy view bins the binary
entropy of each decision (H / log 2) against how often the thresholded decision is wrong.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.diagnostics.base import EpochCallback, append, concat, gather_dedup
from litforge.diagnostics.labels import is_multilabel, label_decisions
from litforge.diagnostics.media import Scored, emit_figure, fmt, suptitle
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
    """Index of the equal-width bin on [0, 1] of each value: bins are [lo, hi), the last one
    [lo, 1] (1.0 falls in the last bin)."""
    return (values.double().clamp(0, 1) * n_bins).long().clamp(max=n_bins - 1)


def calibration_bins(confidence: Tensor, correct: Tensor, n_bins: int) -> dict[str, Tensor]:
    """Per equal-width confidence bin: ``count``, ``accuracy`` and mean ``confidence`` (NaN for
    an empty bin), and the bin ``edges`` (n_bins + 1)."""
    b = bin_of(confidence, n_bins)
    count = torch.bincount(b, minlength=n_bins)
    hits = torch.bincount(b, weights=correct.double(), minlength=n_bins)
    conf = torch.bincount(b, weights=confidence.double(), minlength=n_bins)
    some = count > 0
    return {
        "edges": torch.linspace(0, 1, n_bins + 1, dtype=torch.float64),
        "count": count,
        "accuracy": torch.where(some, hits / count.clamp_min(1), torch.nan),
        "confidence": torch.where(some, conf / count.clamp_min(1), torch.nan),
    }


def ece_of(bins: dict[str, Tensor]) -> Tensor:
    """The expected calibration error of ``calibration_bins``: sum over the bins of (share of
    the examples) x |accuracy - mean confidence|."""
    count = bins["count"].double()
    gap = (bins["accuracy"] - bins["confidence"]).abs().nan_to_num(0)
    return (count * gap).sum() / count.sum().clamp_min(1)


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int) -> Tensor:
    """The ECE over ``n_bins`` equal-width confidence bins."""
    return ece_of(calibration_bins(confidence, correct, n_bins))


def entropy_bins(
    entropy: Tensor, correct: Tensor, confidence: Tensor, n_bins: int
) -> dict[str, Tensor]:
    """Per equal-width bin of normalised entropy: ``count``, error ``rate`` and the error a
    calibrated model would make on those examples, ``expected`` = mean(1 - confidence) (NaN for
    an empty bin)."""
    b = bin_of(entropy, n_bins)
    count = torch.bincount(b, minlength=n_bins)
    errors = torch.bincount(b, weights=(~correct.bool()).double(), minlength=n_bins)
    doubt = torch.bincount(b, weights=1 - confidence.double(), minlength=n_bins)
    some = count > 0
    return {
        "edges": torch.linspace(0, 1, n_bins + 1, dtype=torch.float64),
        "count": count,
        "rate": torch.where(some, errors / count.clamp_min(1), torch.nan),
        "expected": torch.where(some, doubt / count.clamp_min(1), torch.nan),
    }


def error_by_entropy(entropy: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
    """(count, error rate) per entropy bin; the error rate of an empty bin is NaN."""
    bins = entropy_bins(entropy, correct, torch.ones_like(entropy), n_bins)
    return bins["count"], bins["rate"]


def wilson_interval(rate: Tensor, count: Tensor, z: float = 1.96) -> tuple[Tensor, Tensor]:
    """The Wilson score interval (95% for z = 1.96) of a proportion ``rate`` seen in ``count``
    trials: where the true rate lies, given the bin's sampling error."""
    n = count.double().clamp_min(1)
    p = rate.double().nan_to_num(0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * torch.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


class Uncertainty(EpochCallback):
    """The reliability diagram and error against entropy, with the ECE logged.

    Args:
        n_bins: equal-width bins on [0, 1] of confidence (the ECE's bins) and of entropy.
        stages: 'val' and/or 'test'.
        **kwargs: the cadence of validation pictures and the files kept (EpochCallback).
    """

    def __init__(
        self,
        n_bins: int = 10,
        stages: tuple[str, ...] | list[str] = ("val", "test"),
        **kwargs: Any,
    ) -> None:
        super().__init__(stages, **kwargs)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = n_bins
        self.num_classes = 0  # C, seen in the first batch
        # (stage, dataset) -> what the last epoch's bins were: "reliability" and "entropy"
        # (calibration_bins, entropy_bins), the "ece", "n" examples and "classes" (tests read it)
        self.last_bins: dict[tuple[str, str], dict[str, Any]] = {}

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        if not is_multilabel(example, prediction):
            class_probabilities("Uncertainty", example, prediction)

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        if is_multilabel(example, prediction):  # every label decision: N x K
            probs, target, pred = label_decisions("Uncertainty", example, prediction)
            self.num_classes = 2
            p = probs.double().clamp(1e-12, 1 - 1e-12)  # float32 rounds 1 - 1e-12 to 1
            entropy = (-(p * p.log() + (1 - p) * (1 - p).log()) / math.log(2)).float()
            self.state[key] = append(
                self.state.get(key),
                index=example.index,
                probs=probs,
                present=target.float(),
                entropy=entropy,
                correct=(pred == target).float(),
            )
            return
        probs, label = class_probabilities("Uncertainty", example, prediction)
        confidence, pred = probs.max(dim=-1)
        self.num_classes = classes = probs.shape[-1]
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1) / math.log(max(classes, 2))
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
    ) -> dict[str, Any]:
        data = {k: v.cpu() for k, v in gather_dedup(pl_module, concat(state)).items()}
        labels = 0
        if "probs" in data:  # multi-label: each (example, label) decision on its own
            labels = data["probs"].shape[1]
            probs = data["probs"].flatten()
            data["confidence"] = torch.maximum(probs, 1 - probs)  # of the decision taken
            reliability = calibration_bins(probs, data["present"].flatten(), self.n_bins)
            data = {k: data[k].flatten() for k in ("entropy", "correct", "confidence")} | {
                "index": data["index"]
            }
        else:
            reliability = calibration_bins(data["confidence"], data["correct"], self.n_bins)
        ece = ece_of(reliability)
        summary = {
            "reliability": reliability,
            "entropy": entropy_bins(
                data["entropy"], data["correct"], data["confidence"], self.n_bins
            ),
            "ece": ece,
            "n": len(data["index"]),
            "classes": self.num_classes,
            "labels": labels,  # > 0: multi-label, the bins count label decisions
        }
        self.last_bins[(stage, dataset)] = summary
        pl_module.log(f"{stage}/{dataset}/ece", ece.float().to(pl_module.device))
        return summary

    def draw(
        self, trainer: pl.Trainer, stage: str, dataset: str, summary: Any, shown: Scored
    ) -> None:
        fig = figure(summary, self.title(stage, dataset, "calibration", shown))
        emit_figure(
            trainer,
            f"{stage}/{dataset}/uncertainty",
            fig,
            step=shown.step,
            facts=facts(summary, shown),
            keep=self.keep_files,
        )


def facts(summary: dict[str, Any], shown: Scored) -> dict[str, Any]:
    """What the picture shows, as numbers: the model, the ECE and every bin of both views."""

    def rows(bins: dict[str, Tensor], names: dict[str, str]) -> list[dict[str, Any]]:
        edges = bins["edges"].tolist()
        out = []
        for b in range(len(edges) - 1):
            row: dict[str, Any] = {"from": round(edges[b], 6), "to": round(edges[b + 1], 6)}
            for key, name in names.items():
                value = bins[key][b].item()
                row[name] = None if isinstance(value, float) and math.isnan(value) else value
            out.append(row)
        return out

    return {
        "model": shown.facts(),
        "examples": summary["n"],
        "classes": summary["classes"],
        "labels": summary.get("labels", 0),
        "ece": float(summary["ece"]),
        "confidence_bins": rows(
            summary["reliability"],
            {"count": "count", "accuracy": "accuracy", "confidence": "mean_confidence"},
        ),
        "entropy_bins": rows(
            summary["entropy"],
            {"count": "count", "rate": "error_rate", "expected": "error_if_calibrated"},
        ),
    }


def _below_above(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Error bar lengths below and above each value (never negative from rounding)."""
    return np.stack([np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)])


def _counts(
    ax: Any, edges: np.ndarray, count: np.ndarray, xlabel: str, ylabel: str = "examples"
) -> None:
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    ax.bar(centers, count, width=width * 0.9, color="0.75")
    if count.max() > 0 and count[count > 0].min() * 50 < count.max():
        ax.set_yscale("log")
    top = ax.get_ylim()[1]
    for x, c in zip(centers, count):
        if c > 0:
            ax.text(x, c, str(int(c)), ha="center", va="bottom", fontsize=7, clip_on=True)
    ax.set_ylim(top=top * (3 if ax.get_yscale() == "log" else 1.25))
    ax.set(xlim=(0, 1), xlabel=xlabel, ylabel=ylabel)


def figure(summary: dict[str, Any], title: str) -> plt.Figure:
    """Reliability diagram (left) and error against entropy (right), counts under each."""
    rel, ent = summary["reliability"], summary["entropy"]
    classes, ece = summary["classes"], float(summary["ece"])
    labels = summary.get("labels", 0)
    fig, axes = plt.subplots(
        2,
        2,
        figsize=(11, 6.2),
        gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08},
        sharex="col",
    )
    lines = suptitle(fig, title, 10)
    top = 1 - (0.15 + 0.2 * lines) / fig.get_figheight()  # the title's lines, then one note
    fig.subplots_adjust(
        left=0.07, right=0.98, top=top - 0.5 / fig.get_figheight(), bottom=0.1, wspace=0.22
    )
    what = (
        f"{summary['n']} examples x {labels} labels, each label decision counted"
        if labels
        else f"{summary['n']} examples, {classes} classes"
    )
    fig.text(
        0.01,
        top - 0.1 / fig.get_figheight(),
        f"{what}. Points: each bin's observed rate with its 95% interval (wide where the bin "
        "holds few examples).",
        fontsize=8,
        ha="left",
        color="0.3",
    )

    ax = axes[0, 0]
    edges = rel["edges"].numpy()
    some = rel["count"].numpy() > 0
    acc, conf = rel["accuracy"].numpy(), rel["confidence"].numpy()
    lo, hi = wilson_interval(rel["accuracy"], rel["count"])
    if classes > 1 and not labels:
        ax.axvspan(0, 1 / classes, color="0.9", zorder=0, label="below 1/C: never the top class")
    for e in edges:
        ax.axvline(e, color="0.9", lw=0.6, zorder=0)
    ax.plot([0, 1], [0, 1], "--", color="0.45", label="perfect calibration (y = x)")
    ax.vlines(conf[some], np.minimum(acc[some], conf[some]), np.maximum(acc[some], conf[some]),
              color="tab:red", lw=3, alpha=0.35, label="gap (what the ECE averages)")  # fmt: skip
    ax.errorbar(
        conf[some],
        acc[some],
        yerr=_below_above(acc[some], lo.numpy()[some], hi.numpy()[some]),
        fmt="o",
        color="tab:blue",
        ms=5,
        capsize=2,
        label="how often the label is present" if labels else "accuracy of the bin",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="share present" if labels else "accuracy")
    ax.set_title(
        f"reliability: ECE {fmt(ece)} on these {len(edges) - 1} confidence bins", fontsize=9
    )
    ax.legend(
        loc="lower right",
        fontsize=7,
        title="below y = x: overconfident; above: underconfident",
        title_fontsize=7,
    )
    x_label = "probability of the label" if labels else "confidence (probability of the top class)"
    counted = "decisions" if labels else "examples"
    _counts(axes[1, 0], edges, rel["count"].numpy(), x_label, counted)

    ax = axes[0, 1]
    edges = ent["edges"].numpy()
    some = ent["count"].numpy() > 0
    centers = (edges[:-1] + edges[1:]) / 2
    rate, expected = ent["rate"].numpy(), ent["expected"].numpy()
    lo, hi = wilson_interval(ent["rate"], ent["count"])
    for e in edges:
        ax.axvline(e, color="0.9", lw=0.6, zorder=0)
    ax.plot(centers[some], expected[some], "D--", color="0.45", mfc="white", ms=5,
            label="if calibrated: mean of 1 - confidence")  # fmt: skip
    ax.errorbar(
        centers[some],
        rate[some],
        yerr=_below_above(rate[some], lo.numpy()[some], hi.numpy()[some]),
        fmt="o",
        color="tab:red",
        ms=5,
        capsize=2,
        label="error rate of the bin",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="error rate")
    ax.set_title("error against uncertainty (is it unsure where it is wrong?)", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    x_label = (
        "binary entropy of the decision (H / log 2)" if labels else "normalised entropy (H / log C)"
    )
    _counts(axes[1, 1], edges, ent["count"].numpy(), x_label, counted)
    for a in axes.flat:
        a.tick_params(labelsize=8)
    return fig
