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

    def _should_update(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        if current == total:
            return True
        if current % self.refresh_rate:
            return False
        now = time.monotonic()
        if now < self._next_draw:
            return False
        self._next_draw = now + self.min_interval_s
        return True
