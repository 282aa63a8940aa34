"""Confusion matrix with class names: counts, and rows normalised to sum to 1."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from litforge.diagnostics.base import EpochCallback, append, concat, gather_dedup
from litforge.diagnostics.media import emit_figure
from litforge.diagnostics.uncertainty import class_probabilities
from litforge.tasks.contracts import task_data
from litforge.tasks.structs import Example, Prediction


class ConfusionMatrix(EpochCallback):
    """Counts every (true, predicted) pair of the epoch once, across ranks, without duplicates."""

    def __init__(self, stages: tuple[str, ...] | list[str] = ("val", "test")) -> None:
        super().__init__(stages)
        self.num_classes = 0
        self.last_matrix: dict[tuple[str, str], Tensor] = {}

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        class_probabilities("ConfusionMatrix", example, prediction)

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
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
    ) -> None:
        data = gather_dedup(pl_module, concat(state))
        matrix = multiclass_confusion_matrix(
            data["pred"].cpu(), data["label"].cpu(), num_classes=self.num_classes
        )
        self.last_matrix[(stage, dataset)] = matrix
        data = task_data(trainer)
        given = data.class_names if data is not None else None
        names = list(given) if given and len(given) == self.num_classes else None
        names = names or [str(i) for i in range(self.num_classes)]
        emit_figure(trainer, f"{stage}/{dataset}/confusion_matrix", figure(matrix, names))


def figure(matrix: Tensor, names: list[str]) -> plt.Figure:
    counts = matrix.numpy()
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(names)
    size = max(4.0, 0.45 * n + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, title, fmt in (
        (axes[0], counts, "counts", "{:d}"),
        (axes[1], rows, "row-normalised (recall on the diagonal)", "{:.2f}"),
    ):
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(title)
        ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true")
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_yticklabels(names, fontsize=7)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    value = int(values[i, j]) if fmt == "{:d}" else float(values[i, j])
                    color = "white" if rows[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, fmt.format(value), ha="center", va="center", fontsize=6, color=color
                    )
    fig.tight_layout()
    return fig
