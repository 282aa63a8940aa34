"""Batches gathered from arrays held on the device: no DataLoader, no workers, no per-item Python.

The whole dataset lives in memory (on the GPU when training there) as ``Arrays``. Each epoch is
a seeded permutation; each batch is an index gather of every field, passed through an optional
``transform`` (the image layer's normalisation and augmentation, on the same device), then
turned into the task's ``Example`` by ``build(index, fields)``. The loader knows only indices,
seeds and ranks: what the fields mean is the task's business.

The order and every random draw of an epoch depend only on (seed, epoch), so a resumed run sees
the same batches. Under DDP every rank draws the same permutation and takes its own stride of
it: ranks never overlap; training shards are cut to the same length, evaluation shards are
exact (no padding, no duplicates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.structs import Example

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
    before each epoch's first batch with the number of items in the whole set."""

    def start_epoch(self, epoch: int, n_items: int, seeds: Seeds) -> None: ...

    def __call__(self, fields: Fields, index: Tensor) -> Fields: ...


class DeviceLoader:
    """Args:
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

    def _shard(self, order: Tensor) -> Tensor:
        mine = order[self.rank :: self.world_size]
        if self.shuffle and self.world_size > 1:  # training: equal shards on every rank
            mine = mine[: len(order) // self.world_size]
        return mine

    def __len__(self) -> int:
        n = len(self._shard(torch.arange(len(self.arrays))))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Example]:
        epoch, n = self.epoch(), len(self.arrays)
        if self.shuffle:
            order = torch.randperm(n, generator=self.seeds.generator(epoch, 0), device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        order = self._shard(order)
        if self.transform is not None:
            self.transform.start_epoch(epoch, n, self.seeds)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            fields = {name: values[index] for name, values in self.arrays.items()}
            if self.transform is not None:
                fields = self.transform(fields, index)
            yield self.build(index, fields)
