"""Test-only pieces for test_stream.py, importable in the pytest process (the test puts this
folder on ``sys.path``) and in subprocesses (``PYTHONPATH``): a callback that records which
examples each rank saw, and a slow source to interrupt a prepare with."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from litforge.data.prepare import ArraysSource, Listing, prepare_stream
from litforge.testing.images import synthetic_images


class RecordIndices(Callback):
    """Appends ``{"stage", "epoch", "rank", "step", "index": [...]}`` for every batch of every
    stage to ``<folder>/rank<r>.jsonl``: which examples each process saw."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _record(self, trainer: pl.Trainer, stage: str, batch: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        row = {
            "stage": stage,
            "epoch": trainer.current_epoch,
            "rank": trainer.global_rank,
            "step": trainer.global_step,
            "index": batch.index.tolist(),
        }
        with (self.folder / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._record(trainer, "train", batch)

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val", batch)

    def on_test_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._record(trainer, "test", batch)


class SlowSource(ArraysSource):
    """Synthetic images whose reading takes ``delay`` s each, and writes ``marker`` once
    ``after`` of them are read: a prepare to kill in the middle."""

    def __init__(self, n: int, seed: int, delay: float, marker: str, after: int) -> None:
        super().__init__(synthetic_images(n, seed=seed), f"slow synthetic images seed={seed}")
        self.delay, self.marker, self.after = delay, marker, after

    def scan(self) -> Listing:
        listing = super().scan()
        read, count = listing.reader, [0]

        def slow(position: int) -> Any:
            count[0] += 1
            if count[0] == self.after:
                Path(self.marker).write_text("reading")
            time.sleep(self.delay)
            return read(position)

        listing.reader = slow
        return listing


if __name__ == "__main__":  # python stream_probes.py FOLDER MARKER: a prepare to kill -9
    folder, marker = sys.argv[1], sys.argv[2]
    source = SlowSource(64, seed=5, delay=0.5, marker=marker, after=4)
    prepare_stream({"train": source}, folder, val_size=8, progress=False)
