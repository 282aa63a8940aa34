"""Batches gathered from a dataset held on the device: the fast path for image tasks.

The whole dataset lives in memory as uint8 (on the GPU when training there). Each epoch is a
seeded permutation; each batch is an index gather, converted to float, normalised and augmented
on the same device. No DataLoader, no worker processes, no per-image Python.

Under DDP every rank draws the same permutation and takes its own stride of it, so ranks never
overlap; training shards are cut to the same length, evaluation shards are exact (no padding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor

from litforge.data.augment import flip, random_translate
from litforge.structs import ClassificationExample

FlipMode = Literal["none", "random", "alternate"]


class DeviceLoader:
    """Args:
    images: uint8 N x C x H x W, already on the device the batches should be on.
    labels: int64 N, same device.
    mean, std: per-channel, in [0, 1] pixel units.
    translate: random shift in pixels (reflect padding); 0 turns it off.
    flip: 'random' (a fresh coin per image and epoch), 'alternate' (a coin per image on the
      first epoch, then every image flips on odd epochs: each view is seen every two epochs),
      or 'none'.
    epoch: a callable giving the current epoch, so that the order and augmentation of an epoch
      depend only on (seed, epoch): a resumed run sees the same batches.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        mean: Tensor,
        std: Tensor,
        shuffle: bool = False,
        drop_last: bool = False,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if flip not in ("none", "random", "alternate"):
            raise ValueError(f"flip must be 'none', 'random' or 'alternate', got {flip!r}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.mean = mean.to(images.device).view(1, -1, 1, 1)
        self.std = std.to(images.device).view(1, -1, 1, 1)
        self.translate, self.flip = translate, flip
        self.seed, self.epoch = seed, epoch
        self.rank, self.world_size = rank, world_size

    def _shard(self, order: Tensor) -> Tensor:
        mine = order[self.rank :: self.world_size]
        if self.shuffle and self.world_size > 1:  # training: equal shards on every rank
            mine = mine[: len(order) // self.world_size]
        return mine

    def __len__(self) -> int:
        n = len(self._shard(torch.arange(len(self.images))))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        g = torch.Generator(device=self.images.device)
        g.manual_seed(self.seed * 1_000_003 + epoch * 101 + stream)
        return g

    def __iter__(self) -> Iterator[ClassificationExample]:
        epoch = self.epoch()
        n = len(self.images)
        device = self.images.device
        if self.shuffle:
            order = torch.randperm(n, generator=self._generator(epoch, 0), device=device)
        else:
            order = torch.arange(n, device=device)
        order = self._shard(order)
        aug = self._generator(epoch, 1)
        if self.flip == "alternate":
            base = torch.rand(n, generator=self._generator(0, 2), device=device) < 0.5
            flips = base ^ bool(epoch % 2)
        elif self.flip == "random":
            flips = torch.rand(n, generator=self._generator(epoch, 2), device=device) < 0.5
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            x = (self.images[index].float().div_(255) - self.mean) / self.std
            if self.translate:
                x = random_translate(x, self.translate, aug)
            if self.flip != "none":
                x = flip(x, flips[index])
            yield ClassificationExample(index=index, image=x, label=self.labels[index])
