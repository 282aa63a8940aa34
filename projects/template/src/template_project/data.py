"""The data: images of four shapes made in memory (no download), and a callback showing them."""

from typing import Any

import pytorch_lightning as pl
import torch

from litforge.data import ImageArrays, ImageDataModule
from litforge.media import emit_images
from litforge.structs import ClassificationExample
from template_project.structs import ShapeExample

SHAPES, GROUPS = ("disk", "ring", "square", "frame"), ("round", "angular")
GROUP_OF = torch.tensor([0, 0, 1, 1])  # the group of each shape


def make_shapes(n: int, size: int, seed: int) -> ImageArrays:
    """``n`` light shapes of random place and size on dark noise; labels cycle through SHAPES."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPES)
    centre = torch.rand(2, n, 1, 1, generator=g) * size / 2 + size / 4
    radius = torch.rand(n, 1, 1, generator=g) * size / 8 + size / 5
    dy, dx = torch.arange(size).view(-1, 1) - centre[0], torch.arange(size) - centre[1]
    dist = torch.where(labels.view(-1, 1, 1) < 2, dy.hypot(dx), dy.abs().maximum(dx.abs()))
    hollow = (labels % 2 == 1).view(-1, 1, 1) & (dist < radius - size / 10)  # ring, frame
    background, foreground = torch.rand(2, n, 3, 1, 1, generator=g) * 100
    images = torch.where(((dist <= radius) & ~hollow)[:, None], foreground + 90, background)
    images += torch.randn(n, 3, size, size, generator=g) * 40
    return ImageArrays(images.clamp(0, 255).to(torch.uint8), labels, SHAPES)


class ShapesData(ImageDataModule):
    """Args: ``n_train`` / ``n_test`` images of ``size`` pixels; the rest: ImageDataModule."""

    name = "shapes"  # metrics are logged as <stage>/shapes/<metric>

    def __init__(self, n_train: int = 2048, n_test: int = 512, size: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.size = n_train, n_test, size

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        # Real task: read your (train, test) images here, e.g. with litforge.data.image_folder.
        return make_shapes(self.n_train, self.size, 0), make_shapes(self.n_test, self.size, 1)

    def on_after_batch_transfer(self, batch: ClassificationExample, idx: int) -> ShapeExample:  # type: ignore[override]
        # Adds the task's field to each batch. Real task: gather per-item fields by batch.index.
        return ShapeExample(**vars(batch), group=GROUP_OF.to(batch.label.device)[batch.label])


class ShowBatch(pl.Callback):
    """Emits ``n`` images of the first training batch as the model sees them (augmented), with
    their labels. Real task: any pytorch_lightning Callback, listed in trainer.callbacks."""

    n = 16

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        data = trainer.datamodule  # type: ignore[attr-defined]
        if trainer.global_step == 0 and isinstance(data, ImageDataModule):
            x, labels, groups = batch.image[: self.n], batch.label.tolist(), batch.group.tolist()
            captions = [f"{SHAPES[s]} ({GROUPS[g]})" for s, g in zip(labels, groups)][: self.n]
            emit_images(trainer, f"train/{data.name}/batch", data.to_display(x), captions)
