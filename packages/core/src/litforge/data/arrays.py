"""An in-memory image classification set: uint8 pixels, int64 labels, class names."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor


@dataclasses.dataclass
class ImageArrays:
    """``images``: uint8, N x C x H x W. ``labels``: int64, N. ``class_names[label]`` names a class."""

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}"
            )
        self.labels = self.labels.long()
        self.class_names = tuple(self.class_names)

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: Tensor | slice) -> ImageArrays:
        return ImageArrays(self.images[index], self.labels[index], self.class_names)

    def split(self, n_holdout: int, seed: int = 0) -> tuple[ImageArrays, ImageArrays]:
        """A seeded random split: (the rest, ``n_holdout`` held-out items)."""
        if not 0 <= n_holdout < len(self):
            raise ValueError(f"n_holdout={n_holdout} must lie in [0, {len(self)})")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(perm[n_holdout:]), self.subset(perm[:n_holdout])
