"""ImageDataModule: an image classification set held on the device, batched by DeviceLoader.

A task subclasses it and implements ``load() -> (train, test)`` returning ``ImageArrays``;
everything else (validation split, normalisation, device placement, DDP sharding, class names
for the diagnostics, turning normalised images back into pixels) is here.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.data.arrays import ImageArrays
from litforge.data.device import DeviceLoader, FlipMode


class ImageDataModule(pl.LightningDataModule):
    """Args:
    batch_size: training batch size (per process).
    eval_batch_size: batch size of validation, test and predict.
    val_size: images held out of the training set for validation (0: no validation set).
    translate: random shift in pixels with reflect padding (0: off).
    flip: 'random', 'alternate' or 'none'.
    seed: the data order and augmentation depend on (seed, epoch) only.
    """

    name = "data"

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: int = 0,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.translate = translate
        self.flip: FlipMode = flip
        self.seed = seed
        self.train: ImageArrays | None = None
        self.val: ImageArrays | None = None
        self.test: ImageArrays | None = None
        self.class_names: tuple[str, ...] = ()
        self.mean = torch.zeros(3)
        self.std = torch.ones(3)

    def load(self) -> tuple[ImageArrays, ImageArrays | None]:
        """The (train, test) sets; test may be None."""
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def dataset_names(self, stage: str) -> list[str]:
        return [self.name]

    def setup(self, stage: str) -> None:
        if self.train is not None:
            return
        train, test = self.load()
        if len(train) == 0:
            raise ValueError(f"{type(self).__name__}: the training set is empty")
        self.class_names = train.class_names
        if self.val_size:
            train, self.val = train.split(self.val_size, seed=self.seed)
        pixels = train.images.float().div_(255)
        self.mean = pixels.mean(dim=(0, 2, 3))
        self.std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        self.train, self.test = self._to(train, device), self._to(test, device)
        self.val = self._to(self.val, device)

    @staticmethod
    def _to(arrays: ImageArrays | None, device: torch.device) -> ImageArrays | None:
        if arrays is None:
            return None
        return ImageArrays(arrays.images.to(device), arrays.labels.to(device), arrays.class_names)

    def _loader(self, arrays: ImageArrays | None, split: str, train: bool) -> Any:
        if arrays is None:
            return []
        trainer = self.trainer
        return DeviceLoader(
            arrays.images,
            arrays.labels,
            batch_size=self.batch_size if train else self.eval_batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=train,
            drop_last=train,
            translate=self.translate if train else 0,
            flip=self.flip if train else "none",
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )

    def train_dataloader(self) -> Any:
        loader = self._loader(self.train, "train", train=True)
        if len(loader) == 0:
            raise ValueError(
                f"{type(self).__name__}: batch_size={self.batch_size} is larger than this "
                f"process's share of the training set ({len(self.train or ())} images): no batch"
            )
        return loader

    def val_dataloader(self) -> Any:
        return self._loader(self.val, "val", train=False)

    def test_dataloader(self) -> Any:
        return self._loader(self.test, "test", train=False)

    def predict_dataloader(self) -> Any:
        return self._loader(self.test, "test", train=False)

    def normalized_train_sample(self, n: int) -> Tensor:
        """The first ``n`` training images, normalised as the model sees them (no augmentation)."""
        assert self.train is not None, "call setup() first"
        return (
            self.train.images[:n].float().div(255)
            - self.mean.to(self.train.images.device).view(1, -1, 1, 1)
        ) / self.std.to(self.train.images.device).view(1, -1, 1, 1)

    def to_display(self, images: Tensor) -> Tensor:
        """Normalised images back to uint8 pixels."""
        mean = self.mean.to(images.device).view(1, -1, 1, 1)
        std = self.std.to(images.device).view(1, -1, 1, 1)
        return (images.float() * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)
