"""The k highest-error and k lowest-error examples of an epoch, as captioned image grids.

error = 1 - p(true class). Exact over the whole epoch and every rank: each rank keeps its own
running top-k (free of repeated indices), the candidates are gathered and ranked once more.
Ties are broken by dataset index, so the choice is deterministic.
"""

from __future__ import annotations

import json
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.callbacks.base import EpochCallback, class_names, dedup, display_images, gather_dedup
from litforge.media import emit_images
from litforge.structs import ClassificationExample, ClassificationPrediction


def select(data: dict[str, Tensor], k: int, highest: bool) -> dict[str, Tensor]:
    """The k rows with the highest (or lowest) ``error``, ties broken by ascending ``index``."""
    order = torch.argsort(data["index"], stable=True)
    order = order[torch.argsort(data["error"][order], descending=highest, stable=True)][:k]
    return {key: v[order] for key, v in data.items()}


class Extremes(EpochCallback):
    """Args:
    k: how many examples on each side.
    stages: 'val' and/or 'test'.
    """

    def __init__(self, k: int = 16, stages: tuple[str, ...] | list[str] = ("val", "test")) -> None:
        super().__init__(stages)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.num_classes = 0
        # What was last shown, per (stage, dataset, side): for tests and for programmatic use.
        self.last_selection: dict[tuple[str, str, str], dict[str, Tensor]] = {}

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(example, ClassificationExample)
        assert isinstance(prediction, ClassificationPrediction)
        probs = prediction.probs
        self.num_classes = probs.shape[-1]
        batch = {
            "error": 1 - probs.gather(-1, example.label[:, None].long())[:, 0],
            "index": example.index,
            "label": example.label,
            "pred": probs.argmax(-1),
            "position": torch.arange(len(example.index), device=example.index.device),
        }
        # Only this batch's own k highest and k lowest can reach the epoch's extremes: turn
        # just those (at most 2k) into pixels, not the whole batch.
        batch = dedup(batch)
        keep = torch.cat(
            [select(batch, self.k, True)["position"], select(batch, self.k, False)["position"]]
        )
        keep = torch.unique(keep)
        rows = {k: v[torch.isin(batch["position"], keep)] for k, v in batch.items()}
        rows["image"] = display_images(trainer, example.image.detach()[rows.pop("position")])
        batch = rows
        state = self.state.get(key)
        new_state = {}
        for side, highest in (("high", True), ("low", False)):
            merged = (
                batch
                if state is None
                else {k: torch.cat([state[side][k], v]) for k, v in batch.items()}
            )
            new_state[side] = select(dedup(merged), self.k, highest)
        self.state[key] = new_state

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> None:
        for side, highest, name in (
            ("high", True, "highest_error"),
            ("low", False, "lowest_error"),
        ):
            chosen = select(gather_dedup(pl_module, state[side]), self.k, highest)
            self.last_selection[(stage, dataset, name)] = {k: v.cpu() for k, v in chosen.items()}
            names = class_names(trainer, self.num_classes)
            captions = [
                f"{names[int(t)]} -> {names[int(p)]}\np(true)={1 - float(e):.2f}"
                for t, p, e in zip(chosen["label"], chosen["pred"], chosen["error"])
            ]
            png = emit_images(
                trainer, f"{stage}/{dataset}/extremes/{name}", chosen["image"], captions
            )
            if png is not None:  # what was shown, as data: index in the dataset, label, pred, error
                rows = {k: v.tolist() for k, v in chosen.items() if k != "image"}
                png.with_suffix(".json").write_text(json.dumps(rows))
