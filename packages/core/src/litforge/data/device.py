"""Batches gathered from arrays held on the device: no DataLoader, no workers, no per-item Python.

The whole dataset lives in memory (on the GPU when training there) as ``Arrays``. Each epoch is
a seeded permutation; each batch is an index gather of every field, passed through an optional
``transform`` (the image layer's normalisation and augmentation, on the same device), then
turned into the task's ``Example`` by ``build(index, fields)``. The loader knows only indices,
seeds and ranks: what the fields mean is the task's business.

The order and every random draw of an epoch depend only on (seed, epoch), so a resumed run sees
the same batches. The loader also keeps its place in the epoch (``state_dict``: the batches
handed out so far; Lightning's fit loop saves it in every checkpoint and gives it back on
resume): a run resumed from a mid-epoch checkpoint continues with the next batch, and the
transform's draws for the batches it skips are made and dropped, so every later batch is the
very one an uninterrupted run gets. Under DDP every rank draws the same permutation and takes its own stride of
it: ranks never overlap; training shards are cut to the same length, evaluation shards are
exact (no padding, no duplicates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.tasks.structs import Example

Fields = dict[str, Tensor]


class Seeds:
    """Random generators on a device, one per (epoch, stream), all from one seed."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device = seed, device

    def generator(self, epoch: int, stream: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1_000_003 + epoch * 101 + stream)
        return g


class Transform(Protocol):
    """Changes a batch's fields on their device (normalise, augment). ``start_epoch`` is called
    before each epoch's first batch with the number of items in the whole set. Optional:
    ``skip(index)``, which makes and drops the random draws of a batch without transforming it
    (a resumed epoch passes the batches read before the checkpoint so); without it, such a
    batch is transformed and dropped."""

    def start_epoch(self, epoch: int, n_items: int, seeds: Seeds) -> None: ...

    def __call__(self, fields: Fields, index: Tensor) -> Fields: ...


class DeviceLoader:
    """Batches arrays that are already on the device, without a DataLoader: a seeded permutation
    per epoch, index gathers, an exact share per process under DDP, the task's ``Example`` built
    per batch. Its place in the epoch is saved in checkpoints, so a resumed run continues with
    the next batch.

    Args:
    arrays: the set, already on the device the batches should be on.
    build: makes the task's Example from (index, fields of the batch).
    batch_size, shuffle, drop_last: as a DataLoader's.
    transform: normalisation / augmentation of a batch's fields (None: the fields as stored).
    seed, epoch: the order and the transform's draws depend only on (seed, epoch()).
    rank, world_size: this process's share under DDP.
    """

    def __init__(
        self,
        arrays: Arrays,
        build: Callable[[Tensor, Fields], Example],
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: Transform | None = None,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.arrays, self.build, self.transform = arrays, build, transform
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.device = next(iter(arrays.values())).device
        self.seeds, self.epoch = Seeds(seed, self.device), epoch
        self.rank, self.world_size = rank, world_size
        self._position = (-1, 0)  # (epoch, batches handed out) of the iteration under way
        self._resume: dict[str, Any] | None = None  # a loaded state, for the next iteration

    def _shard(self, order: Tensor) -> Tensor:
        mine = order[self.rank :: self.world_size]
        if self.shuffle and self.world_size > 1:  # training: equal shards on every rank
            mine = mine[: len(order) // self.world_size]
        return mine

    def __len__(self) -> int:
        n = len(self._shard(torch.arange(len(self.arrays))))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # ------------------------------------------------------------------ the place in the epoch
    def _fingerprint(self) -> dict[str, Any]:
        """What fixes the order and the batches: a saved place means nothing for another."""
        return {
            "n_items": len(self.arrays),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seeds.seed,
            "world_size": self.world_size,  # every rank is at the same place: rank 0's is saved
        }

    def state_dict(self) -> dict[str, Any]:
        """The place in the epoch: its number and the batches handed out so far (plain ints).

        Lightning's fit loop stores it in every checkpoint (``loops.fit_loop.state_dict.
        combined_loader``). A batch counts as handed out once yielded: a checkpoint written
        while a training step was under way (a crash inside the step) counts that step's batch
        as read, as torchdata's StatefulDataLoader does."""
        epoch, batches = self._position
        return {"epoch": epoch, "batches": batches, **self._fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next iteration, if it is of the same epoch, starts after the batches the state
        says were handed out. A state saved by a loader with another set, batch size, seed or
        world size is ignored (with a warning): the epoch then starts from its first batch."""
        mismatch = {
            k: (state.get(k), v) for k, v in self._fingerprint().items() if state.get(k) != v
        }
        if mismatch:
            rank_zero_warn(
                "DeviceLoader: the checkpoint's place in the epoch is of another loader "
                f"(saved, now: {mismatch}); the epoch starts from its first batch"
            )
            self._resume = None
            return
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}

    def _skip(self, index: Tensor) -> None:
        """Moves the transform past one batch as if it had transformed it."""
        if self.transform is None:
            return
        skip = getattr(self.transform, "skip", None)
        if callable(skip):
            skip(index)
        else:
            self.transform({name: values[index] for name, values in self.arrays.items()}, index)

    def __iter__(self) -> Iterator[Example]:
        epoch, n = self.epoch(), len(self.arrays)
        resume, self._resume = self._resume, None  # a loaded place serves one iteration only
        skip = resume["batches"] if resume is not None and resume["epoch"] == epoch else 0
        self._position = (epoch, 0)
        if self.shuffle:
            order = torch.randperm(n, generator=self.seeds.generator(epoch, 0), device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        order = self._shard(order)
        if self.transform is not None:
            self.transform.start_epoch(epoch, n, self.seeds)
        for batch, start in enumerate(range(0, len(order), self.batch_size)):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            if batch < skip:  # handed out before the checkpoint: only the draws move on
                self._skip(index)
                self._position = (epoch, batch + 1)
                continue
            fields = {name: values[index] for name, values in self.arrays.items()}
            if self.transform is not None:
                fields = self.transform(fields, index)
            self._position = (epoch, batch + 1)
            yield self.build(index, fields)
