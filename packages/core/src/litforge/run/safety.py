"""Callbacks that keep a run's work safe: stop on a non-finite loss, checkpoint on interrupt,
and Ctrl-C that stops at a step's end as SIGTERM does."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from litforge.errors import LitforgeError
from litforge.run.checkpoint_io import StorageError

CTRL_C_EXIT = 128 + signal.SIGINT  # 130, a shell's status for a command stopped by Ctrl-C
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143


class NonFiniteLossError(LitforgeError, RuntimeError):
    """Training produced a NaN or infinite loss."""


def last_good_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest checkpoint file this fit can go back to: one its ModelCheckpoints wrote, or
    the one it resumed from; None when there is none (a NaN in the first epoch)."""
    found: list[str] = []
    for callback in trainer.checkpoint_callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, ModelCheckpoint):
            found += [callback.last_model_path, callback.best_model_path]
    found.append(str(trainer.ckpt_path or ""))
    files = [Path(f) for f in dict.fromkeys(found) if f and Path(f).is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None


def lower_lr_hint(trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
    """'--model.optimizer.init_args.lr=0.001' (a tenth of the configured one) for a model with
    an ``optimizer`` setting (litforge's BaseModel); else a plain description."""
    optimizers = trainer.optimizers
    if optimizers and optimizers[0].param_groups:
        group = optimizers[0].param_groups[0]
        base = group.get("initial_lr", group.get("lr"))
        if isinstance(base, float | int) and base > 0 and hasattr(pl_module, "optimizer_factory"):
            return f"--model.optimizer.init_args.lr={base / 10:.3g}"
    return "a lower learning rate for the model's optimizer"


class StopOnNonFinite(Callback):
    """Checks the training loss every ``every_n_steps`` steps (a host sync, hence not every step),
    before each validation during fit and at each epoch end; a NaN or inf stops training with a
    NonFiniteLossError. Checking before validation matters: the diagnostics would otherwise meet
    NaN predictions, and a checkpoint written at the end of that validation would hold the bad
    weights. The checkpoint written before is kept: ``SaveOnInterrupt`` does not save over it.

    The message names that checkpoint and how to resume from it with a lower learning rate
    (optimizer settings given on the resume command replace the checkpoint's:
    ``litforge.run.resume.OptimizerSettings``), or says that there is none yet."""

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
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last is None or bool(torch.isfinite(self._last)):
            return
        what = (
            f"the training loss is {float(self._last)} at step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}); training stopped."
        )
        lower = lower_lr_hint(trainer, pl_module)
        good = last_good_checkpoint(trainer)
        if good is None:
            raise NonFiniteLossError(
                f"{what} No checkpoint was written before it: start again with {lower}, "
                "or check the data."
            )
        raise NonFiniteLossError(
            f"{what} The last good checkpoint, {good}, is kept: resume from it (the resume "
            f"command printed at the start) with {lower} added, or check the data; optimizer "
            "settings given on the resume command replace the checkpoint's."
        )


# Lightning's SIGTERM handler logs "Received SIGTERM" on this logger; after Ctrl-C it misleads.
SIGNAL_LOGGER = "pytorch_lightning.trainer.connectors.signal_connector"


class _NotSigtermAfterCtrlC(logging.Filter):
    def __init__(self, owner: SaveOnInterrupt) -> None:
        super().__init__()
        self.owner = owner

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.owner.ctrl_c and "Received SIGTERM" in record.getMessage())


class SaveOnInterrupt(Callback):
    """On SIGTERM, Ctrl-C or a crash, saves ``<dirpath>/last.ckpt`` so that the documented resume
    command continues the run (mid-epoch, with the step count). Not for a non-finite loss, nor
    when the weights hold a NaN or inf (an interruption after a NaN step that was not yet
    noticed): the weights are bad then, and the last good checkpoint must stay. Nor before this
    fit took a step (a resume that fails while setting up): there is nothing new to save, and a
    checkpoint written then could replace the one being resumed with untrained weights.

    Ctrl-C while training asks for the stop SIGTERM asks for: the step under way finishes, then
    the run stops with ``last.ckpt`` at that step and exit status 130. A KeyboardInterrupt
    raised anywhere in a step would leave Lightning's loop counters and the optimizer's state
    half-way through it, and a resume would not be exact. Further Ctrl-C are ignored (with a
    line that says so) until the process ends; ``kill -9`` stops it at once. Where Ctrl-C was
    ignored when the process started (``nohup``, a background job), it stays ignored."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._start_step: int | None = None  # the global step when this fit began training
        self._previous_handler: Any = None  # SIGINT's handler before training began
        self._installed = False
        self.ctrl_c = False  # Ctrl-C asked for the stop under way
        self._rank_zero = True
        self._quiet = _NotSigtermAfterCtrlC(self)

    # ------------------------------------------------------------------ Ctrl-C
    def _install_ctrl_c(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        if sys.platform == "win32":
            return  # Lightning sets no SIGTERM handler there: Ctrl-C stays a KeyboardInterrupt
        previous = signal.getsignal(signal.SIGINT)
        if previous in (signal.SIG_IGN, None):
            return
        self._previous_handler, self._installed = previous, True
        signal.signal(signal.SIGINT, self._on_ctrl_c)
        logging.getLogger(SIGNAL_LOGGER).addFilter(self._quiet)

    def _restore_ctrl_c(self) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_handler)
            logging.getLogger(SIGNAL_LOGGER).removeFilter(self._quiet)
        self._installed = False

    def _on_ctrl_c(self, signum: int, frame: FrameType | None) -> None:
        if self.ctrl_c:
            self._say(
                "Ctrl-C again: ignored, the run is saving its checkpoint and stopping "
                f"(kill -9 {os.getpid()} stops it at once, losing the steps since the last "
                "checkpoint)"
            )
            return
        self.ctrl_c = True
        self._say(f"Ctrl-C: stopping after the step under way, saving {self.dirpath / 'last.ckpt'}")
        # Lightning's own stop at a step's end: its SIGTERM handler sets the flag its loops check
        signal.raise_signal(signal.SIGTERM)

    def _say(self, line: str) -> None:
        """One line on stderr, from a signal handler: a raw write, which cannot collide with a
        print under way (a buffered write there could raise 'reentrant call')."""
        if self._rank_zero:
            os.write(2, f"\n{line}\n".encode())

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_step = trainer.global_step
        self._rank_zero = trainer.is_global_zero
        self.ctrl_c = False
        self._install_ctrl_c()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start_step = None  # a later fit with this trainer starts afresh
        self._restore_ctrl_c()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        start, self._start_step = self._start_step, None
        try:
            self._save(trainer, pl_module, exception, start)
        finally:
            if self.ctrl_c and isinstance(exception, SIGTERMException):
                exception.code = CTRL_C_EXIT  # the status of a Ctrl-C, not of a SIGTERM
            else:  # after Ctrl-C the handler stays: a further one is ignored, not raised
                self._restore_ctrl_c()

    def _save(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        exception: BaseException,
        start: int | None,
    ) -> None:
        if isinstance(exception, NonFiniteLossError | StorageError) or trainer.state.fn != "fit":
            return  # (a checkpoint that could not be written: writing another fails alike)
        path = self.dirpath / "last.ckpt"
        what = "Ctrl-C" if self.ctrl_c else type(exception).__name__
        if start is None or trainer.global_step == start:
            rank_zero_info(f"Interrupted ({what}) before a training step: nothing saved")
            return
        if not all(bool(torch.isfinite(v).all()) for v in pl_module.state_dict().values()):
            pl.utilities.rank_zero_warn(
                f"Interrupted ({what}) with non-finite weights: {path} "
                "was not overwritten; it holds the last good checkpoint"
            )
            return
        trainer.save_checkpoint(path, weights_only=False)  # the full state, to resume from
        rank_zero_info(f"Interrupted ({what}): saved {path}")
