"""RngState: the global random generators travel in every checkpoint, so that a resumed run
draws what an uninterrupted one draws (dropout masks, ``torch.rand`` in a model, numpy or
``random`` in a callback). Lightning's checkpoints hold no generator state of their own, and a
resumed run would otherwise start from the seed's state of step 0."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


def collect_rng_state() -> dict[str, Any]:
    """The state of torch's CPU generator, the current CUDA device's (when CUDA is in use),
    numpy's and Python's global generators, as tensors and plain values: a checkpoint holding
    it loads with ``torch.load(weights_only=True)``."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device (its rank's)
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Sets the generators back to a state from ``collect_rng_state``."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    numpy = state["numpy"]
    keys = numpy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    )
    python = state["python"]
    internal = tuple(int(v) for v in python["state"].tolist())
    random.setstate((python["version"], internal, python["gauss_next"]))


class RngState(Callback):
    """Saves the global generators' state in every checkpoint; a fit resumed from one sets them
    back at the start of training (``on_train_start``: after the set-up, whose own draws, e.g.
    a model's initialisation, are thereby overwritten, and before the first batch).

    Under DDP rank 0's state is saved and every rank gets it back: as with
    ``seed_everything``, the ranks draw alike. The LitforgeCLI adds it to every fit."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None:
            restore_rng_state(self._loaded)
            self._loaded = None
