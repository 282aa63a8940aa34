"""Lookahead with a growing pull (airbench's variant): an averaged copy of all float state.

Every ``every`` steps the averaged copy moves towards the live weights, ``avg = d * avg + (1 - d)
* live`` with ``d = base ** every * (t / T) ** power`` (t: the step, T: all steps of the run), and
the live weights are set to it. At the end of training the model becomes the averaged copy.
Unlike an EMA kept on the side, the average is copied back: it steers the run. Its state is
checkpointed, so a resumed run continues it exactly.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class Lookahead(Callback):
    """Lookahead with a growing pull (airbench's): every ``every`` steps an averaged copy of all
    float state moves towards the live weights, with decay ``base ** every * (t / T) ** power``,
    and is copied back; the model ends as the averaged copy. Checkpointed, so resumes exactly.
    """

    def __init__(self, every: int = 5, base: float = 0.95, power: float = 3.0) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.base, self.power = every, base, power
        self.average: dict[str, torch.Tensor] = {}
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    def _float_state(self, pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return {
            k: v
            for k, v in pl_module.state_dict(keep_vars=True).items()
            if v.dtype.is_floating_point
        }

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = self._float_state(pl_module)
        if not self.average:
            self.average = {k: v.detach().clone() for k, v in state.items()}
        else:  # restored from a checkpoint: put it on the model's device
            self.average = {k: v.to(pl_module.device) for k, v in self.average.items()}
        # the pairs blended, found once: a blend is then two fused ops, not a walk of the model
        keys = list(state)
        self._pairs = ([self.average[k] for k in keys], [state[k].detach() for k in keys])

    @torch.no_grad()
    def _blend(self, pl_module: pl.LightningModule, decay: float) -> None:
        averages, lives = self._pairs
        torch._foreach_lerp_(averages, lives, 1 - decay)
        torch._foreach_copy_(lives, averages)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if step % self.every == 0:  # the run's length is read only then (Python work)
            total = max(1, int(trainer.estimated_stepping_batches))
            self._blend(pl_module, self.base**self.every * (step / total) ** self.power)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step >= trainer.estimated_stepping_batches:
            self._blend(pl_module, 1.0)  # the final model is the averaged copy

    def state_dict(self) -> dict[str, Any]:
        return {"average": {k: v.detach().cpu() for k, v in self.average.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.average = dict(state_dict["average"])
