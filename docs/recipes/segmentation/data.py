"""The data: small images of four shapes with a mask that gives each pixel's class (background,
round, angular), made in memory (no download).

Real task: replace ``load()`` with your own images and masks; everything else (validation split,
normalisation, shifts and flips that move the mask with its image, batching on the device, the
masks drawn over the images in the diagnostics) comes from ``ImageDataModule``. ``in_channels``
and ``num_classes`` reach the model by themselves.
"""

from pathlib import Path
from typing import Any

import torch

from litforge import ImageArrays, ImageDataModule, SegmentationExample

SHAPES = ("disk", "ring", "square", "frame")
CLASSES = ("background", "round", "angular")  # per pixel; round: disk, ring; angular: the others


def make_shapes(n: int, size: int, seed: int) -> ImageArrays:
    """``n`` light shapes of random place and size on dark noise, and their masks."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPES)
    centre = torch.rand(2, n, 1, 1, generator=g) * size / 2 + size / 4
    radius = torch.rand(n, 1, 1, generator=g) * size / 8 + size / 5
    dy, dx = torch.arange(size).view(-1, 1) - centre[0], torch.arange(size) - centre[1]
    dist = torch.where(labels.view(-1, 1, 1) < 2, dy.hypot(dx), dy.abs().maximum(dx.abs()))
    hollow = (labels % 2 == 1).view(-1, 1, 1) & (dist < radius - size / 10)  # ring, frame
    inside = (dist <= radius) & ~hollow
    background, foreground = torch.rand(2, n, 3, 1, 1, generator=g) * 100
    images = torch.where(inside[:, None], foreground + 90, background)
    images += torch.randn(n, 3, size, size, generator=g) * 40
    mask = inside * (1 + labels.view(-1, 1, 1) // 2)  # int64, N x H x W: a class per pixel
    return ImageArrays(images.clamp(0, 255).to(torch.uint8), class_names=CLASSES, mask=mask)


class ShapesData(ImageDataModule):
    """Args: ``n_train`` / ``n_test`` images of ``size`` pixels; the rest: ImageDataModule."""

    name = (
        "shapes"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    )
    example_type = SegmentationExample  # a batch: image (N x C x H x W) and mask (N x H x W)
    dense = ("mask",)  # shifted and flipped with the image

    def __init__(self, n_train: int = 2048, n_test: int = 512, size: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.size = n_train, n_test, size

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        # Real task: return your (train, test) sets as ImageArrays(images, class_names=...,
        # mask=masks): uint8 N x C x H x W images, int64 N x H x W masks; or one pool, split by
        # val_size / test_size.
        return make_shapes(self.n_train, self.size, 0), make_shapes(self.n_test, self.size, 1)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # Real task: write a tiny sample of your data in its own format under `folder` (a few
        # rows of your CSV, a few images in your folders) and return the data arguments that
        # read it ({"root": str(folder / "tiny.csv")}): the tests then need no data set.
        # The shapes are drawn in memory: nothing to write, only a smaller set.
        return {"n_train": 256, "n_test": 64, "val_size": 64, "batch_size": 32}
