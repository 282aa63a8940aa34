"""Counting the calls that make the host wait for a GPU, on any machine: ``host_syncs`` wraps
them for a while and records each with the training step under way (``StepWindow``).

On a GPU, every call that reads a device value on the host (``.item()``, ``bool(tensor)``,
``float(tensor)``, ``.tolist()``, ``.cpu()``, ``torch.cuda.synchronize``) and every op whose
output size depends on the data (``torch.unique``, ``torch.nonzero``, ``torch.bincount``, which
reads the input's min and max) waits for the GPU: the host cannot queue the next step while the
GPU runs this one. On a CPU nothing waits, but the same calls are made: counting them there
shows what would sync on a GPU (a tensor that stays on the host even on a GPU, such as Adam's
step count, is counted too)."""

from __future__ import annotations

import collections
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

# (owner, name) of every call that syncs with a GPU when its tensor is on one
TENSOR_CALLS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy")
SYNCING: list[tuple[Any, str]] = [(torch.Tensor, n) for n in (*TENSOR_CALLS, "nonzero", "unique")]
SYNCING += [(torch, n) for n in ("unique", "nonzero", "bincount", "masked_select")]
SYNCING += [(torch.cuda, "synchronize")]


@contextmanager
def host_syncs(calls: list[tuple[int, str]], step: Callable[[], int]) -> Iterator[None]:
    """Wraps every SYNCING call to record (the training step under way, where it was made)."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in SYNCING]

    def counted(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if step() >= 0:
                frame = traceback.extract_stack(limit=2)[0]  # the caller
                calls.append((step(), f"{name} at {Path(frame.filename).name}:{frame.lineno}"))
            return original(*args, **kwargs)

        return call

    try:
        for owner, name, original in saved:
            setattr(owner, name, counted(name, original))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


class StepWindow(pl.Callback):
    """The training step under way, from its batch's start to the next one's (-1 outside
    training: put it first among the callbacks); the steps that ended an epoch (validation and
    diagnostics follow them); a classifier's hits per epoch (``hits``)."""

    def __init__(self) -> None:
        self.step, self.epoch_ends = -1, set[int]()
        self.hits: dict[int, list[torch.Tensor]] = collections.defaultdict(list)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:  # a classifier's hits, kept on the device (no sync): its accuracy by hand
        logits, label = (
            getattr(outputs["prediction"], "logits", None),
            getattr(batch, "label", None),
        )
        if logits is not None and label is not None:
            self.hits[trainer.current_epoch].append(logits.argmax(1) == label)

    def on_train_epoch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.epoch_ends.add(self.step)

    def on_train_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.step = -1


def quiet_steps(steps: int, window: StepWindow, *every: int) -> set[int]:
    """The steps of a fit of ``steps`` that end no epoch and are no multiple of any of
    ``every`` (counted from 1: Lightning's ``log_every_n_steps``, a check's period); the first
    step (set-up work) is left out too."""
    busy = {s for s in range(steps) for n in every if (s + 1) % n == 0}
    return set(range(1, steps)) - busy - window.epoch_ends
