"""Test-only pieces for test_resume.py, given to the real CLI by class path, so importable both
in the pytest process (the test puts this folder on ``sys.path``) and in a ``python -m
litforge.testing`` subprocess (``PYTHONPATH``)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import IO, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from litforge.run.checkpoint_io import AtomicCheckpointIO

HANG_S = 120.0  # how long a hung write waits to be killed before it fails the run


class RecordBatches(Callback):
    """Appends ``{"step": .., "index": [..]}`` to the JSON-lines file ``path`` at the start of
    every training batch: which examples each step trained on."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        row = {"step": trainer.global_step, "index": batch.index.tolist()}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


class HangingCheckpointIO(AtomicCheckpointIO):
    """AtomicCheckpointIO whose ``hang_at``-th write of a file named ``name`` stops halfway:
    it writes the first half of the checkpoint's bytes into the temporary file, flushes them,
    writes ``marker`` and sleeps, so that the test can ``kill -9`` the process mid-write. The
    other writes are the real ones."""

    def __init__(self, marker: str, name: str = "last.ckpt", hang_at: int = 2) -> None:
        super().__init__()
        self.marker, self.name, self.hang_at = Path(marker), name, hang_at
        self._writes = 0
        self._target = ""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        self._target = Path(str(path)).name
        super().save_checkpoint(checkpoint, path, storage_options)

    def write(self, checkpoint: dict[str, Any], f: IO[bytes]) -> None:
        if self._target != self.name:
            super().write(checkpoint, f)
            return
        self._writes += 1
        if self._writes != self.hang_at:
            super().write(checkpoint, f)
            return
        buffer = io.BytesIO()
        super().write(checkpoint, buffer)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        self.marker.write_text("half written")
        time.sleep(HANG_S)
        raise RuntimeError(f"HangingCheckpointIO: not killed within {HANG_S} s")
