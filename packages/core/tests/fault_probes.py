"""Callbacks that break a run from inside, for tests/test_faults.py (given with
``--trainer.callbacks+=...``; this folder is on the child's PYTHONPATH)."""

from __future__ import annotations

import errno
import shutil
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class FullDiskAt(Callback):
    """From training step ``step`` on, writing a checkpoint fails as on a full disk (ENOSPC:
    no small tmpfs can be mounted here without root, so the error is injected where the bytes
    are written, ``AtomicCheckpointIO.write``)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            from litforge.run.checkpoint_io import AtomicCheckpointIO

            def full(self: Any, checkpoint: Any, f: Any) -> None:
                f.write(b"\0" * 1024)
                raise OSError(errno.ENOSPC, "No space left on device")

            AtomicCheckpointIO.write = full  # type: ignore[method-assign]


class DeleteRunFolderAt(Callback):
    """Deletes the run folder at training step ``step`` (``rm -rf`` while it trains)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            shutil.rmtree(trainer.default_root_dir)


class KeepLastAt(Callback):
    """Copies ``checkpoints/last.ckpt`` to ``<run>/kept.ckpt`` at training step ``step``: what
    it held before a later fault."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            root = trainer.default_root_dir
            shutil.copy(f"{root}/checkpoints/last.ckpt", f"{root}/kept.ckpt")
