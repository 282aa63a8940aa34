"""CIFAR-10 on the device: the official archive, or a local image-folder copy.

``root`` decides the source:
- a folder with ``train/<class>/*`` and ``test/<class>/*`` images (e.g. the JPEG copy): read
  once, then cached as uint8 arrays;
- otherwise the official archive is downloaded into ``root`` (default: the litforge cache
  folder), checked against its md5, extracted and cached.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch

from cifar10_demo.download import CIFAR10_MD5, CIFAR10_URL, DownloadError, load_cifar10
from litforge import (
    FlipMode,
    ImageArrays,
    ImageDataModule,
    LitforgeError,
    default_cache_dir,
    read_image_folder,
)


class DataUnavailableError(LitforgeError, RuntimeError):
    """Neither a local copy nor the download is available."""


class Cifar10Data(ImageDataModule):
    """CIFAR-10 held on the device as uint8, augmented per batch there.

    Args:
        root: an image folder (``train/`` and ``test/`` inside) or where to download the archive.
        url: where the official archive is downloaded from.
        limit: use only the first ``limit`` images of each split, class-balanced (tests, quick
            looks).
        batch_size: training batch size (per process).
        eval_batch_size: batch size of validation, test and predict.
        val_size: training images held out for validation (a fraction or a count; 0: none).
        translate: random shift of training images in pixels, reflect padding (0: off).
        flip: 'alternate' (airbench's: each view every two epochs), 'random' or 'none'.
        seed: the split, the data order and the augmentation depend on (seed, epoch) only.
    """

    name = "cifar10"
    num_classes = 10  # known without reading the data (the model is built before it is read)
    in_channels = 3

    def __init__(
        self,
        root: str | None = None,
        url: str = CIFAR10_URL,
        limit: int | None = None,
        batch_size: int = 1024,
        eval_batch_size: int = 2000,
        val_size: float = 0,
        translate: int = 2,
        flip: FlipMode = "alternate",
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, val_size, translate=translate, flip=flip, seed=seed
        )
        self.root = Path(root).expanduser() if root else default_cache_dir().parent / "cifar10"
        self.url = url
        self.limit = limit
        if root and not self.root.exists():
            raise DataUnavailableError(self._help(f"the data folder {self.root} does not exist"))

    def is_image_folder(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def prepare_data(self) -> None:
        if not self.is_image_folder():
            self._official()

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        if self.is_image_folder():
            train = read_image_folder(self.root, "train", size=(32, 32))
            test = read_image_folder(self.root, "test", size=(32, 32))
        else:
            train, test = self._official()
        if self.limit:
            train, test = _balanced(train, self.limit), _balanced(test, self.limit)
        return train, test

    def _official(self) -> tuple[ImageArrays, ImageArrays]:
        try:
            return load_cifar10(self.root, url=self.url, md5=CIFAR10_MD5)
        except (DownloadError, urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise DataUnavailableError(
                self._help(f"could not download CIFAR-10 from {self.url}: {err}")
            ) from err

    @staticmethod
    def _help(problem: str) -> str:
        return (
            f"{problem}.\nTwo ways to get the data:\n"
            "  1. with internet access, run without DATA: the official archive is downloaded "
            "and cached;\n"
            "  2. point DATA at a local copy with train/<class>/*.png|jpg and test/<class>/*: "
            "make train-cifar10 DATA=path/to/cifar10-jpeg  (or --data.root=...)"
        )


def _balanced(arrays: ImageArrays, n: int) -> ImageArrays:
    """The first n images taken round-robin over the classes (stable, class-balanced)."""
    if n >= len(arrays):
        return arrays
    labels = arrays.labels
    rank_in_class = torch.zeros_like(labels)
    for c in range(len(arrays.class_names)):
        mask = labels == c
        rank_in_class[mask] = torch.arange(int(mask.sum()))
    order = torch.argsort(rank_in_class * len(arrays.class_names) + labels, stable=True)[:n]
    return arrays.subset(order.sort().values)
