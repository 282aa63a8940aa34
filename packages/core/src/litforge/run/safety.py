"""Callbacks that keep a run's work safe: stop on a non-finite loss, checkpoint on interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from litforge.errors import LitforgeError


class NonFiniteLossError(LitforgeError, RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFinite(Callback):
    """Checks the training loss every ``every_n_steps`` steps (a host sync, hence not every step),
    before each validation during fit and at each epoch end; a NaN or inf stops training with a
    NonFiniteLossError. Checking before validation matters: the diagnostics would otherwise meet
    NaN predictions, and a checkpoint written at the end of that validation would hold the bad
    weights. The checkpoint written before is kept: ``SaveOnInterrupt`` does not save over it."""

    def __init__(self, every_n_steps: int = 25) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self._last: torch.Tensor | None = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self._last = loss.detach()
        if (trainer.global_step % self.every_n_steps) == 0:
            self._check(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        if self._last is not None and not bool(torch.isfinite(self._last)):
            raise NonFiniteLossError(
                f"the training loss is {float(self._last)} at step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); training stopped. The last good checkpoint "
                "is kept; lower the learning rate or check the data, then resume from it."
            )


class SaveOnInterrupt(Callback):
    """On SIGTERM, Ctrl-C or a crash, saves ``<dirpath>/last.ckpt`` so that the documented resume
    command continues the run (mid-epoch, with the step count). Not for a non-finite loss, nor
    when the weights hold a NaN or inf (an interruption after a NaN step that was not yet
    noticed): the weights are bad then, and the last good checkpoint must stay. Nor before this
    fit took a step (a resume that fails while setting up): there is nothing new to save, and a
    checkpoint written then could replace the one being resumed with untrained weights."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._start_step: int | None = None  # the global step when this fit began training

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_step = None  # a later fit with this trainer starts afresh

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        start, self._start_step = self._start_step, None
        if isinstance(exception, NonFiniteLossError) or trainer.state.fn != "fit":
            return
        path = self.dirpath / "last.ckpt"
        if start is None or trainer.global_step == start:
            pl.utilities.rank_zero_info(
                f"Interrupted ({type(exception).__name__}) before a training step: nothing saved"
            )
            return
        if not all(bool(torch.isfinite(v).all()) for v in pl_module.state_dict().values()):
            pl.utilities.rank_zero_warn(
                f"Interrupted ({type(exception).__name__}) with non-finite weights: {path} "
                "was not overwritten; it holds the last good checkpoint"
            )
            return
        trainer.save_checkpoint(path, weights_only=False)  # the full state, to resume from
        pl.utilities.rank_zero_info(f"Interrupted ({type(exception).__name__}): saved {path}")
