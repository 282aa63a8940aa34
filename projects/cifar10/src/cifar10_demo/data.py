"""CIFAR-10 on the device: the official archive, or a local image-folder copy.

``root`` decides the source:
- a folder with ``train/<class>/*`` and ``test/<class>/*`` images (e.g. the JPEG copy): read
  once, then cached as uint8 arrays;
- otherwise the official archive is downloaded into ``root`` (default: the litforge cache
  folder), checked against its md5, extracted and cached.

``stream: true`` trains from chunks on disk instead of memory
(``litforge.StreamedImageDataModule``): the images are written into chunks once, as 32 x 32
pixels, and read by the loader's worker processes. ``python -m cifar10_demo prepare`` writes them
ahead.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import torch

from cifar10_demo.download import CIFAR10_MD5, CIFAR10_URL, DownloadError, load_cifar10
from litforge import (
    FlipMode,
    ImageArrays,
    ImageFolderSource,
    LitforgeError,
    StreamedImageDataModule,
    check_same_classes,
    default_cache_dir,
    read_image_folder,
)


class DataUnavailableError(LitforgeError, RuntimeError):
    """Neither a local copy nor the download is available."""


class Cifar10Data(StreamedImageDataModule):
    """CIFAR-10 held on the device as uint8 (or streamed from chunks), augmented per batch there.

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
        stream: read the images from chunks on disk, by worker processes, instead of holding
            them in memory (``python -m cifar10_demo prepare`` writes the chunks).
        cache_dir: where the chunks are written (default ``~/.cache/litforge/streams``).
        num_workers: processes that read and decode batches when streaming (default: one per
            CPU but one, at most 8).
    """

    name = "cifar10"
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
        stream: bool = False,
        cache_dir: str | None = None,
        num_workers: int | None = None,
    ) -> None:
        super().__init__(
            batch_size,
            eval_batch_size,
            val_size,
            translate=translate,
            flip=flip,
            seed=seed,
            stream=stream,
            cache_dir=cache_dir,
            num_workers=num_workers,
        )
        self.root = Path(root).expanduser() if root else default_cache_dir().parent / "cifar10"
        self.url = url
        self.limit = limit
        self.given_root = bool(root)
        if root and not self.root.exists():
            raise DataUnavailableError(self._help(f"the data folder {self.root} does not exist"))

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        """10 for the official archive; for an image folder, its class folders in ``train/``
        (listed, not read: the model is built before the data is read), at least 2. The
        model's head is sized to it; train/ and test/ must hold the same classes
        (``check_same_classes``, when they are read). Restored from a checkpoint: its own."""
        if self._learned("num_classes") is not None:  # litforge.load, predict --data.predict
            return int(self._learned("num_classes"))
        if not self.is_image_folder():
            return 10
        train = self.root / "train"
        classes = sorted(p.name for p in train.iterdir() if p.is_dir() and p.name[:1] != ".")
        if len(classes) < 2:
            raise DataUnavailableError(
                f"{train} holds {len(classes)} class folder{'s' if len(classes) != 1 else ''}"
                f"{' (' + classes[0] + ')' if classes else ''}: a classifier needs at least 2 "
                "(train/<class>/*.png|jpg, one folder per class)"
            )
        return len(classes)

    def is_image_folder(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def prepare_data(self) -> None:
        if not self.is_image_folder():
            self._official()

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        if self.is_image_folder():
            train = read_image_folder(self.root, "train", size=(32, 32))
            test = read_image_folder(self.root, "test", size=(32, 32))
            check_same_classes(self.root, train, test)  # else test labels mean other classes
        else:
            train, test = self._official()
        if self.limit:
            train, test = _balanced(train, self.limit), _balanced(test, self.limit)
        return train, test

    def sources(self) -> dict[str, Any]:
        """What the streamed chunks are written from: an image folder's files, decoded (and
        resized to 32 x 32 where needed, as in memory) while they are written, stored as pixels
        (3 KB an image: nothing left to decode while training, the workers only read); the
        official archive, or a ``limit``, from ``load()``'s arrays."""
        if self.is_image_folder() and not self.limit:
            return {
                split: ImageFolderSource(self.root, split, size=(32, 32))
                for split in ("train", "test")
            }
        return super().sources()

    def _official(self) -> tuple[ImageArrays, ImageArrays]:
        try:
            return load_cifar10(self.root, url=self.url, md5=CIFAR10_MD5)
        except (DownloadError, urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise DataUnavailableError(
                self._help(f"{self._found()}could not download CIFAR-10 from {self.url}: {err}")
            ) from err

    def _found(self) -> str:
        """What a data folder the user gave holds, when it is not an image folder: said before
        the failed download, which was only the fallback."""
        if not self.given_root or not self.root.is_dir():
            return ""
        if not any(self.root.iterdir()):
            return (
                f"the data folder {self.root} is empty (no train/ and test/ image folders, no "
                "CIFAR-10 archive), and "
            )
        has = [split for split in ("train", "test") if (self.root / split).is_dir()]
        if has:
            missing = "test" if has == ["train"] else "train"
            return f"the data folder {self.root} has {has[0]}/ but no {missing}/, and "
        return (
            f"the data folder {self.root} holds no train/ and test/ image folders and no "
            "CIFAR-10 archive, and "
        )

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
