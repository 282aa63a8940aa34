"""Multi-label classification, label by label: what was found, missed and added, and which labels
are predicted in place of which. ``ConfusionMatrix`` draws this for a multi-label model (a
multi-hot ``example.target`` and ``prediction.pred`` of N x K); ``Uncertainty`` draws the
calibration of every label decision (``label_decisions``).

- per label: the true positives (found), false negatives (missed) and false positives (added)
  of the epoch, as bars, with each label's precision, recall and F1;
- missed -> added: for every example, each true label it missed against each false label it
  added, counted over the epoch (a K x K matrix, row: the label missed, column: the label added
  in its place): a model that calls a wolf a dog fills the cell (wolf, dog).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from litforge.diagnostics.media import fmt, suptitle
from litforge.tasks.contracts import ContractError
from litforge.tasks.structs import Example, Prediction


def is_multilabel(example: Example, prediction: Prediction) -> bool:
    """Whether the batch is multi-label: an integer ``example.target`` of N x K and a
    ``prediction.probs`` (and ``pred``) of the same shape."""
    target = getattr(example, "target", None)
    probs = getattr(prediction, "probs", None)
    return (
        isinstance(target, Tensor)
        and isinstance(probs, Tensor)
        and target.dim() == 2
        and not target.is_floating_point()
        and probs.shape == target.shape
        and isinstance(getattr(prediction, "pred", None), Tensor)
    )


def label_decisions(who: str, example: Example, prediction: Prediction) -> tuple[Tensor, ...]:
    """(probs, target, pred), each N x K, of a multi-label batch, or a ContractError naming
    ``who``."""
    if not is_multilabel(example, prediction):
        raise ContractError(
            f"{who} needs a multi-hot example.target (integer N x K) and prediction.probs and "
            f"pred of the same shape, from {type(example).__name__} and "
            f"{type(prediction).__name__}"
        )
    target = example.target  # type: ignore[attr-defined]
    return prediction.probs.float(), target, prediction.pred  # type: ignore[attr-defined]


def label_counts(target: Tensor, pred: Tensor) -> dict[str, Tensor]:
    """Per label (K): ``found`` (true positives), ``missed`` (false negatives), ``added`` (false
    positives), ``support`` (examples with the label); and ``missed_added`` (K x K): for each
    pair (i, j), the examples that missed label i and added label j."""
    t, p = target.bool(), pred.bool()
    missed, added = (t & ~p).double(), (~t & p).double()
    return {
        "found": (t & p).sum(0).long(),
        "missed": missed.sum(0).long(),
        "added": added.sum(0).long(),
        "support": t.sum(0).long(),
        "missed_added": (missed.T @ added).long(),
    }


def label_scores(counts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each label's precision, recall and F1 from ``label_counts`` (0 where undefined, as
    TorchMetrics' F1 with its default ``zero_division``)."""
    tp, fn, fp = (counts[k].double() for k in ("found", "missed", "added"))
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), 0.0)
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), 0.0)
    f1 = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1}


def label_facts(counts: dict[str, Tensor], names: list[str]) -> dict[str, Any]:
    """What the picture shows, as data: per label its counts and scores, and the missed ->
    added pairs (every nonzero one, largest first)."""
    scores = label_scores(counts)
    labels = [
        {
            "label": name,
            **{k: int(counts[k][i]) for k in ("support", "found", "missed", "added")},
            **{k: round(float(scores[k][i]), 6) for k in ("precision", "recall", "f1")},
        }
        for i, name in enumerate(names)
    ]
    matrix = counts["missed_added"]
    pairs = [
        {"missed": names[i], "added": names[j], "count": int(matrix[i, j])}
        for i, j in zip(*np.nonzero(matrix.numpy()))
    ]
    pairs.sort(key=lambda r: -r["count"])
    return {"labels": labels, "missed_added": pairs, "matrix": matrix.tolist()}


def label_figure(counts: dict[str, Tensor], names: list[str], title: str) -> plt.Figure:
    """Left: per label, bars of found | missed | added, its F1 at the right. Right: the missed ->
    added matrix (row: the true label missed; column: the false label added in the same
    example), each cell's count, coloured by its share of the row's misses."""
    k = len(names)
    scores = label_scores(counts)
    row = float(np.clip(6.0 / k, 0.3, 0.6))  # inches per label
    side = k * row
    width, height = 5.5 + side + 0.6, max(3.2, side + 2.0)
    fig = plt.figure(figsize=(width, height), dpi=100)
    bottom = 1.3 / height
    ax = fig.add_axes((1.6 / width, bottom, 3.4 / width, side / height))
    found, missed, added = (counts[key].numpy() for key in ("found", "missed", "added"))
    y = np.arange(k)
    ax.barh(y, found, color="tab:green", label="found (true positive)")
    ax.barh(y, missed, left=found, color="tab:orange", label="missed (false negative)")
    ax.barh(y, added, left=found + missed, color="tab:red", label="added (false positive)")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_ylim(k - 0.5, -0.5)
    top = max(int((found + missed + added).max()), 1)
    ax.set_xlim(0, top * 1.25)
    for i in range(k):
        ax.text(top * 1.02, i, f"F1 {fmt(float(scores['f1'][i]))}", va="center", fontsize=7)
    ax.set_xlabel("examples", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=2, frameon=False)
    ax.set_title("per label: found, missed, added", fontsize=9)

    matrix = counts["missed_added"].numpy()
    share = matrix / np.maximum(counts["missed"].numpy()[:, None], 1)
    mx = fig.add_axes(((5.5 + 0.2) / width, bottom, side / width, side / height))
    mx.imshow(share, cmap="Reds", vmin=0, vmax=1)
    rotate = max(len(n) for n in names) > 3
    mx.set_xticks(y, names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  fontsize=7)  # fmt: skip
    mx.set_yticks(y, [])
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                color = "white" if share[i, j] > 0.5 else "black"
                mx.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    mx.set_xlabel("added (false) in the same example", fontsize=8)
    mx.set_title("missed (row) -> added (column)", fontsize=9)
    suptitle(fig, title)
    return fig
