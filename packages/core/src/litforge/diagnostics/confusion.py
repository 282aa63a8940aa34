"""Confusion matrix with class names: every (true, predicted) pair of the epoch counted once.

Up to ``max_classes`` classes (20 by default) it is drawn as a matrix: each cell's count, its
colour the share of the true class (rows sum to 1, recall on the diagonal), the numbers sized to
the cells, each row's recall and count at its right. With more classes a matrix cannot be read;
the largest confusions are listed instead (a table: true, predicted, count, share of the true
class). Either way ``<step>.json`` beside the picture holds the class names and the full matrix.

A multi-label model (a multi-hot ``target``, N x K) has no single (true, predicted) pair: for it
the picture is each label's found, missed and added examples, and which labels are added in
place of which (``litforge.diagnostics.labels``), with the same numbers in the JSON; above
``max_classes`` labels, a table of the labels with the most errors.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from litforge.diagnostics.base import EpochCallback, append, concat, gather_dedup
from litforge.diagnostics.labels import (
    is_multilabel,
    label_counts,
    label_decisions,
    label_facts,
    label_figure,
)
from litforge.diagnostics.media import Scored, Table, emit_figure, emit_table, suptitle
from litforge.diagnostics.uncertainty import class_probabilities
from litforge.tasks.contracts import task_data
from litforge.tasks.structs import Example, Prediction


class ConfusionMatrix(EpochCallback):
    """Counts every (true, predicted) pair of the epoch once, across ranks, without duplicates.

    Args:
        max_classes: up to this many classes, draw the matrix; above, list the largest
            confusions.
        top: how many confusions the list holds.
        stages: 'val' and/or 'test'.
        **kwargs: the cadence of validation pictures and the files kept (EpochCallback).
    """

    def __init__(
        self,
        max_classes: int = 20,
        top: int = 20,
        stages: tuple[str, ...] | list[str] = ("val", "test"),
        **kwargs: Any,
    ) -> None:
        super().__init__(stages, **kwargs)
        self.max_classes, self.top = max_classes, top
        self.num_classes = 0
        self.last_matrix: dict[tuple[str, str], Tensor] = {}

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        if not is_multilabel(example, prediction):
            class_probabilities("ConfusionMatrix", example, prediction)

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        if is_multilabel(example, prediction):
            _, target, pred = label_decisions("ConfusionMatrix", example, prediction)
            self.num_classes = target.shape[-1]
            self.state[key] = append(
                self.state.get(key), index=example.index, target=target, pred=pred
            )
            return
        probs, label = class_probabilities("ConfusionMatrix", example, prediction)
        self.num_classes = probs.shape[-1]
        self.state[key] = append(
            self.state.get(key), index=example.index, label=label, pred=probs.argmax(-1)
        )

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> Tensor | dict[str, Tensor]:
        data = gather_dedup(pl_module, concat(state))
        if "target" in data:  # multi-label: counts per label
            counts = label_counts(data["target"].cpu(), data["pred"].cpu())
            self.last_matrix[(stage, dataset)] = counts["missed_added"]
            return counts
        matrix = multiclass_confusion_matrix(
            data["pred"].cpu(), data["label"].cpu(), num_classes=self.num_classes
        )
        self.last_matrix[(stage, dataset)] = matrix
        return matrix

    def draw(
        self, trainer: pl.Trainer, stage: str, dataset: str, summary: Any, shown: Scored
    ) -> None:
        data = task_data(trainer)
        given = data.class_names if data is not None else None
        names = list(given) if given and len(given) == self.num_classes else None
        names = names or [str(i) for i in range(self.num_classes)]
        key = f"{stage}/{dataset}/confusion_matrix"
        if isinstance(summary, dict):  # multi-label
            title = self.title(stage, dataset, "labels: found, missed, added", shown)
            facts = {"model": shown.facts(), **label_facts(summary, names)}
            if len(names) <= self.max_classes:
                fig = label_figure(summary, names, title)
                emit_figure(trainer, key, fig, step=shown.step, facts=facts, keep=self.keep_files)
                return
            table = worst_labels(facts["labels"], self.top)
            title += f" · the {len(table)} labels with most errors ({len(names)} labels)"
            emit_table(
                trainer, key, table, step=shown.step, title=title, facts=facts, keep=self.keep_files
            )
            return
        matrix: Tensor = summary
        facts = {"model": shown.facts(), "classes": names, "matrix": matrix.tolist()}
        title = self.title(stage, dataset, "confusion matrix", shown)
        if len(names) <= self.max_classes:
            fig = figure(matrix, names, title)
            emit_figure(trainer, key, fig, step=shown.step, facts=facts, keep=self.keep_files)
        else:
            table = largest_confusions(matrix, names, self.top)
            title += f" · its {len(table)} largest confusions ({len(names)} classes)"
            emit_table(
                trainer, key, table, step=shown.step, title=title, facts=facts, keep=self.keep_files
            )


def worst_labels(labels: list[dict[str, Any]], top: int) -> Table:
    """The ``top`` labels with the most errors (missed + added), most first: each one's
    counts and F1 (``label_facts``' rows)."""
    rows = sorted(labels, key=lambda r: -(r["missed"] + r["added"]))[:top]
    keys = ("label", "support", "found", "missed", "added", "f1")
    return Table({k: [r[k] for r in rows] for k in keys})


def largest_confusions(matrix: Tensor, names: list[str], top: int) -> Table:
    """The ``top`` largest off-diagonal counts, largest first (ties by true, then predicted
    class): true class, predicted class, count, and their share of the true class."""
    counts = matrix.clone()
    counts.fill_diagonal_(0)
    flat = counts.flatten()
    order = sorted((i for i in range(len(flat)) if flat[i] > 0), key=lambda i: (-int(flat[i]), i))[
        :top
    ]
    support = matrix.sum(dim=1)
    n = len(names)
    return Table(
        {
            "true": [names[i // n] for i in order],
            "predicted": [names[i % n] for i in order],
            "count": [int(flat[i]) for i in order],
            "share of true": [percent(int(flat[i]) / max(int(support[i // n]), 1)) for i in order],
        }
    )


def figure(matrix: Tensor, names: list[str], title: str) -> plt.Figure:
    """The matrix: counts in the cells, coloured by the share of the true class; each row's
    recall and count at its right. Cells and numbers grow with fewer classes."""
    counts = matrix.numpy().astype(np.int64)
    support = counts.sum(axis=1)
    rows = counts / np.maximum(support[:, None], 1)
    n = len(names)
    cell = float(np.clip(7.0 / n, 0.42, 1.0))  # inches per cell
    font = float(np.clip(cell * 72 * 0.3, 6.5, 11))  # points: a third of a cell's side
    longest = max(len(name) for name in names)
    label_font = float(np.clip(cell * 72 * 0.45, 7, 9))
    label_w = min(2.2, longest * label_font * 0.6 / 72)  # inches of the longest class name
    rotate = longest > 3
    left = 0.5 + label_w  # the row names and "true"
    bottom = 0.55 + (0.75 * label_w if rotate else label_font / 72)  # the column names, "predicted"
    side = n * cell
    width, height = max(5.0, left + side + 1.3), bottom + side + 0.9
    fig = plt.figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  fontsize=label_font)  # fmt: skip
    ax.set_yticks(range(n), names, fontsize=label_font)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    two_lines = cell * 72 >= 3.2 * font
    for i in range(n):
        for j in range(n):
            if counts[i, j] == 0 and i != j:
                continue
            text = str(counts[i, j])
            if two_lines and support[i]:
                text += "\n" + percent(rows[i, j])
            color = "white" if rows[i, j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color=color)
        recall = f"{percent(rows[i, i])} of {support[i]}" if support[i] else "none"
        ax.text(n - 0.4, i, recall, ha="left", va="center", fontsize=min(font, 9), color="0.25")
    ax.text(n - 0.4, -0.75, "recall", ha="left", va="center", fontsize=min(font, 9), color="0.25")
    suptitle(fig, title)
    return fig


def percent(share: float) -> str:
    """A share as a whole percentage; a share that is not 0 never reads 0% (nor 1 100%)."""
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{100 * share:.0f}%"
