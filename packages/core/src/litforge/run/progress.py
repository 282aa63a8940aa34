"""The progress bar core adds to every command: Lightning's ``TQDMProgressBar``, redrawn every
``refresh_rate`` steps and at most every ``min_interval_s`` seconds.

A redraw costs the host about a millisecond (the logged values read, the line formatted and
written), and on a GPU each one waits for the device: every 10 steps of a 5 ms GPU step, or of
a tiny network's step on a CPU, that is a tenth of the training's time. Paced by the clock,
the bar costs the same whatever the step's length, and still moves twice a second; the last
batch of each bar is always drawn.
"""

from __future__ import annotations

import time
from typing import Any

from pytorch_lightning.callbacks import TQDMProgressBar


class PacedProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` (``refresh_rate`` steps between redraws) whose redraws are also at
    least ``min_interval_s`` seconds apart, except at the end of a bar."""

    def __init__(self, refresh_rate: int = 10, min_interval_s: float = 0.5, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.min_interval_s = min_interval_s
        self._next_draw = 0.0

    def _skip(self, current: int, bar: Any) -> bool:
        """Whether this batch's redraw is left out: not a ``refresh_rate``-th batch, or too soon
        after the last redraw; a bar's last batch is always drawn. (Lightning's hooks below
        redraw every ``refresh_rate``-th batch when it is not left out.)"""
        total = getattr(bar, "total", None)
        if not self.is_enabled or current == total or current % self.refresh_rate:
            return False  # Lightning's own rule decides
        now = time.monotonic()
        if now < self._next_draw:
            return True
        self._next_draw = now + self.min_interval_s
        return False

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._skip(batch_idx + 1, self._train_progress_bar):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._skip(batch_idx + 1, self._val_progress_bar):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def on_test_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._skip(batch_idx + 1, self._test_progress_bar):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._skip(batch_idx + 1, self._predict_progress_bar):
            super().on_predict_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )
