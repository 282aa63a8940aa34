"""ImageDataModule: the image layer on ArrayDataModule.

Images are stored as uint8 (N x C x H x W) and turned into normalised floats per batch on the
device, with the per-channel mean and std of the training part; training batches are shifted and
flipped there (``ImageTransform``); dense targets (``dense``: masks of N x H x W) move with their
images. ``show`` draws pictures: the image with its caption, and for a dense target the image |
true mask | predicted mask side by side.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from litforge.data.augment import FlipMode, ImageTransform
from litforge.data.module import ArrayDataModule
from litforge.diagnostics.media import Images, fmt_prob, overlay, side_by_side
from litforge.tasks.contracts import Split
from litforge.tasks.structs import ClassificationExample, Example, Prediction


class ImageDataModule(ArrayDataModule):
    """Images held as uint8 on the device, normalised and augmented per batch there.

    The other arguments are ArrayDataModule's (``--help`` shows their help too).

    Args:
        translate: random shift of training images in pixels, reflect padding (0: off).
        flip: left-right flips of training images: 'random', 'alternate' or 'none' (the safe
            default: a mirrored digit or letter is another symbol).
    """

    example_type: ClassVar[type[Example]] = ClassificationExample
    provides: ClassVar[tuple[str, ...]] = ("num_classes", "in_channels", "image_size")
    image_field: ClassVar[str] = "image"
    dense: ClassVar[tuple[str, ...]] = ()  # fields of N x H x W that move with the image

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_size, test_size, stratify, (), seed)
        self.translate = translate
        self.flip: FlipMode = flip
        ImageTransform(torch.zeros(1), torch.ones(1), translate, flip)  # fail now on bad values
        self._display: ImageTransform | None = None

    @property
    def in_channels(self) -> int:
        """Channels of the images (1 for grayscale, 3 for RGB)."""
        return int(self._images("train").shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return tuple(self._images("train").shape[2:])  # type: ignore[return-value]

    def _images(self, split: str) -> Tensor:
        arrays = self.splits[split]
        if arrays is None:
            raise ValueError(f"{type(self).__name__} has no {split} set")
        images = arrays[self.image_field]
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"{type(self).__name__}: the {self.image_field!r} field must be uint8 "
                f"N x C x H x W, got {images.dtype} {tuple(images.shape)}"
            )
        return images

    def _statistics(self) -> ImageTransform:
        """Per-channel mean and std of the training images, in [0, 1] pixel units."""
        if self._display is None:
            pixels = self._images("train").float().div_(255)
            mean = pixels.mean(dim=(0, 2, 3))
            std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
            self._display = ImageTransform(mean, std, field=self.image_field)
        return self._display

    @property
    def mean(self) -> Tensor:
        return self._statistics().mean.view(-1)

    @property
    def std(self) -> Tensor:
        return self._statistics().std.view(-1)

    def transform(self, split: Split) -> ImageTransform:
        train = split == "train"
        return ImageTransform(
            self.mean,
            self.std,
            translate=self.translate if train else 0,
            flip=self.flip if train else "none",
            field=self.image_field,
            dense=self.dense,
        )

    def to_display(self, images: Tensor) -> Tensor:
        """Normalised images back to uint8 pixels."""
        return self._statistics().denormalize(images)

    def show(self, example: Example, prediction: Prediction) -> Images:
        """The images with captions (true -> predicted class, p(true)); with a dense target,
        image | true mask | predicted mask, the masks coloured over the image."""
        pixels = self.to_display(getattr(example, self.image_field))
        captions = [f"#{i}" for i in example.index.tolist()]
        label, probs = getattr(example, "label", None), getattr(prediction, "probs", None)
        if isinstance(label, Tensor) and label.dim() == 1 and isinstance(probs, Tensor):
            p_true = probs.gather(-1, label.long()[:, None])[:, 0]
            pred = probs.argmax(-1)
            captions = [
                f"{self.describe('label', t)} -> {self.describe('pred', p)}\np(true)={fmt_prob(float(q))}"
                for t, p, q in zip(label, pred, p_true)
            ]
        for name in self.dense:
            true, guess = getattr(example, name, None), getattr(prediction, "pred", None)
            if isinstance(true, Tensor) and isinstance(guess, Tensor) and guess.shape == true.shape:
                k = max(len(self.class_names or ()), int(true.max()) + 1, int(guess.max()) + 1)
                rgb = overlay(pixels, true, k, alpha=0.0)  # the image itself, as RGB
                pixels = side_by_side(rgb, overlay(pixels, true, k), overlay(pixels, guess, k))
                captions = [f"{c}\nimage | true | predicted" for c in captions]
        return Images(pixels, captions)
