"""The data: images of shapes with noise (the input) and without (the target), float images in
[0, 1], made in memory (no download): the model learns to remove the noise.

Real task: replace ``load()`` with your own (input, target) float images; everything else
(validation split, normalisation of the input, shifts and flips that move the target with its
input, batching on the device, input | prediction | target in the diagnostics) comes from
``ImageDataModule``. ``in_channels`` and ``target_shape`` reach the model by themselves.
"""

from pathlib import Path
from typing import Any

import torch

from litforge import ImageArrays, ImageDataModule, RegressionExample

SHAPES = ("disk", "ring", "square", "frame")


def make_shapes(n: int, size: int, seed: int) -> ImageArrays:
    """``n`` light shapes of random place and size on a dark background, with Gaussian noise
    (the input) and without (the target)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPES)
    centre = torch.rand(2, n, 1, 1, generator=g) * size / 2 + size / 4
    radius = torch.rand(n, 1, 1, generator=g) * size / 8 + size / 5
    dy, dx = torch.arange(size).view(-1, 1) - centre[0], torch.arange(size) - centre[1]
    dist = torch.where(labels.view(-1, 1, 1) < 2, dy.hypot(dx), dy.abs().maximum(dx.abs()))
    hollow = (labels % 2 == 1).view(-1, 1, 1) & (dist < radius - size / 10)  # ring, frame
    background, foreground = torch.rand(2, n, 3, 1, 1, generator=g) * 100
    images = torch.where(((dist <= radius) & ~hollow)[:, None], foreground + 90, background)
    noisy = images / 255 + torch.randn(n, 3, size, size, generator=g) * 0.2
    return ImageArrays(noisy, target=images / 255)  # float N x C x H x W, both


class ShapesData(ImageDataModule):
    """Args: ``n_train`` / ``n_test`` images of ``size`` pixels; the rest: ImageDataModule."""

    name = (
        "shapes"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    )
    example_type = RegressionExample  # a batch: image (the input) and target, N x C x H x W
    dense = ("target",)  # shifted and flipped with the image

    def __init__(self, n_train: int = 2048, n_test: int = 512, size: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.size = n_train, n_test, size

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        # Real task: return your (train, test) sets as ImageArrays(inputs, target=targets),
        # float N x C x H x W, or one pool, split by val_size / test_size.
        return make_shapes(self.n_train, self.size, 0), make_shapes(self.n_test, self.size, 1)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # Real task: write a tiny sample of your data in its own format under `folder` (a few
        # rows of your CSV, a few images in your folders) and return the data arguments that
        # read it ({"root": str(folder / "tiny.csv")}): the tests then need no data set.
        # The shapes are drawn in memory: nothing to write, only a smaller set.
        return {"n_train": 256, "n_test": 64, "val_size": 64, "batch_size": 32}
