"""Test-only callbacks for test_reliability.py and test_ddp.py.

They are given to the real CLI by class path (``--trainer.callbacks+=...``), so they must be
importable both in the pytest process (the tests put this folder on ``sys.path``) and in a
``python -m litforge.testing`` subprocess and its DDP children (``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from litforge import ConfusionMatrix, Uncertainty
from litforge.run.checkpoint_io import AtomicCheckpointIO

WAIT_S = 60.0  # the longest a probe waits for a signal before failing the run


class RecordStart(Callback):
    """Appends ``{"step": .., "epoch": ..}`` to the JSON-lines file ``path`` at every fit start."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            row = {"step": trainer.global_step, "epoch": trainer.current_epoch}
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


class PauseForSignal(Callback):
    """After training step ``step``: writes ``marker`` and waits (at most WAIT_S) for a signal.

    ``send``: 'SIGTERM' or 'SIGINT' to signal this very process (else the test sends one).
    Lightning's SIGTERM handler only sets a flag, so the wait ends when it is set; a SIGINT
    raises KeyboardInterrupt out of ``time.sleep``.
    """

    def __init__(self, step: int, marker: str, send: str | None = None) -> None:
        self.step, self.marker, self.send = step, Path(marker), send

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step != self.step:
            return
        self.marker.write_text(str(trainer.global_step))
        if self.send:
            os.kill(os.getpid(), getattr(signal, self.send))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if trainer.received_sigterm:
                return
            time.sleep(0.01)
        raise RuntimeError(f"PauseForSignal: no signal within {WAIT_S} s")


class PoisonBatch(Callback):
    """Fills the images of the batch of training step ``step`` with NaN: the loss becomes NaN
    and so, after the optimizer step, do the weights."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            batch.image.fill_(float("nan"))


class CrashAt(Callback):
    """Raises RuntimeError('probe crash at step N') after training step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"probe crash at step {self.step}")


class DumpTestState(Callback):
    """At test end, every rank writes ``<folder>/rank<r>.json``: its run folder, the test
    confusion matrix that the ConfusionMatrix callback computed and the count per bin of the
    Uncertainty callback's plot (both gathered over all ranks)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]
        confusion = next(c for c in callbacks if isinstance(c, ConfusionMatrix))
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "default_root_dir": str(trainer.default_root_dir),
            "confusion": {"/".join(k): v.tolist() for k, v in confusion.last_matrix.items()},
        }
        uncertainty = next((c for c in callbacks if isinstance(c, Uncertainty)), None)
        if uncertainty is not None:
            state["uncertainty_counts"] = {
                "/".join(k): v["reliability"]["count"].tolist()
                for k, v in uncertainty.last_bins.items()
            }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(state))


class SignalMidStep(Callback):
    """Sends ``send`` (SIGINT: Ctrl-C) to this very process in the middle of training step
    ``step``: after the backward pass, before the optimizer steps. A KeyboardInterrupt raised
    there would stop the run with the batch read and no step taken."""

    def __init__(self, step: int, send: str = "SIGINT") -> None:
        self.step, self.send = step, send

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.send))


class PoisonAboveLr(Callback):
    """From training step ``step`` on, fills the batch's images with NaN while the first param
    group's learning rate is above ``lr``: a rate too high for the model, which a resume with a
    lower one must get past."""

    def __init__(self, step: int, lr: float) -> None:
        self.step, self.lr = step, lr

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        rate = trainer.optimizers[0].param_groups[0]["lr"]
        if trainer.global_step >= self.step and rate > self.lr:
            batch.image.fill_(float("nan"))


class RecordLr(Callback):
    """Appends ``{"step": .., "lr": [..]}`` (every param group's rate) to the JSON-lines file
    ``path`` before every optimizer step."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        row = {"step": trainer.global_step, "lr": [g["lr"] for g in optimizer.param_groups]}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


class ReportSteps(Callback):
    """At the end of training every rank writes ``<folder>/rank<r>.json``: the steps it trained
    and the step count it was set to (``max_steps``), as that rank saw them."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "max_steps": trainer.max_steps,
        }
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(state))


class PausedCheckpointIO(AtomicCheckpointIO):
    """AtomicCheckpointIO whose ``pause_at``-th write of ``last.ckpt`` first writes ``marker``
    and waits until the file ``go`` exists (at most WAIT_S): the test sends a further Ctrl-C
    while the checkpoint is being saved. Every write is the real one."""

    def __init__(self, marker: str, go: str, pause_at: int = 2) -> None:
        super().__init__()
        self.marker, self.go, self.pause_at = Path(marker), Path(go), pause_at
        self._writes = 0

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if Path(str(path)).name == "last.ckpt":
            self._writes += 1
            if self._writes == self.pause_at:
                self.marker.write_text("saving")
                deadline = time.monotonic() + WAIT_S
                while not self.go.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
        super().save_checkpoint(checkpoint, path, storage_options)


class PauseInTest(Callback):
    """At the first test batch: writes ``marker`` and sleeps (at most WAIT_S), for the test to
    send Ctrl-C while the run tests (after fit: no training step is under way)."""

    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    def on_test_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and not self.marker.exists():
            self.marker.write_text("testing")
            time.sleep(WAIT_S)
