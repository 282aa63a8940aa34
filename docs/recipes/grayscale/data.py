"""The data: small grayscale images of the ten digits, made in memory (no download).

Real task: replace ``load()`` with your own images; everything else (validation split,
normalisation, batching on the device, class names in the diagnostics) comes from
``ImageDataModule``. ``in_channels`` and ``num_classes`` reach the model by themselves.
"""

from pathlib import Path
from typing import Any

import torch

from litforge import ImageArrays, ImageDataModule

DIGITS = tuple("0123456789")
# 5 x 3 pixel glyphs, three bits a row, top row first
FONT = (0x7B6F, 0x2C97, 0x73E7, 0x73CF, 0x5BC9, 0x79CF, 0x79EF, 0x7249, 0x7BEF, 0x7BCF)


def make_digits(n: int, size: int, seed: int) -> ImageArrays:
    """``n`` light 5 x 3 digits at random places on dark noise, 1 channel; labels cycle 0-9."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(DIGITS)
    glyphs = (torch.tensor(FONT)[labels, None] >> torch.arange(14, -1, -1) & 1).view(n, 5, 3)
    top = torch.randint(size - 4, (n,), generator=g)
    left = torch.randint(size - 2, (n,), generator=g)
    ink = torch.zeros(n, size, size)
    for i in range(n):
        ink[i, top[i] : top[i] + 5, left[i] : left[i] + 3] = glyphs[i]
    images = 40 + ink[:, None] * (torch.rand(n, 1, 1, 1, generator=g) * 80 + 100)
    images += torch.randn(n, 1, size, size, generator=g) * 30
    return ImageArrays(images.clamp(0, 255).to(torch.uint8), labels, DIGITS)


class DigitsData(ImageDataModule):
    """Args: ``n_train`` / ``n_test`` images of ``size`` pixels; the rest: ImageDataModule."""

    name = (
        "digits"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    )

    def __init__(self, n_train: int = 2048, n_test: int = 512, size: int = 8, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.size = n_train, n_test, size

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        # Real task: return your (train, test) images, e.g. from an image folder:
        #   return read_image_folder(root, "train"), read_image_folder(root, "test")
        # or one pool, ImageArrays(images, labels, class_names), split by val_size / test_size;
        # a folder of images of any sizes: subclass ImageFolderDataModule instead (docs/tasks/).
        return make_digits(self.n_train, self.size, 0), make_digits(self.n_test, self.size, 1)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # Real task: write a tiny sample of your data in its own format under `folder` (a few
        # rows of your CSV, a few images in your folders) and return the data arguments that
        # read it ({"root": str(folder / "tiny.csv")}): the tests then need no data set.
        # The digits are drawn in memory: nothing to write, only a smaller set.
        return {"n_train": 256, "n_test": 64, "val_size": 64, "batch_size": 32}


ShapesData = DigitsData  # the name cli.py imports
