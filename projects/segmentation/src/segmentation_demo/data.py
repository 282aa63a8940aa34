"""The data: pictures of one to three shapes on noise, and the class of every pixel.

Made in memory (no download): each shape is a disk, a square or a triangle of random place, size
and colour, drawn over a noisy background (a later shape covers an earlier one). The mask holds
the class of each pixel: 0 for the background, then one class per kind of shape. The colours say
nothing about the class: the network has to learn the outlines.

``ImageDataModule`` does the rest: validation split, normalisation, batches on the device, and
augmentation: ``dense = ("mask",)`` shifts and flips each mask with its image (a mirrored
disk, square or upright triangle is still one, so flips are safe here).
"""

from __future__ import annotations

import torch

from litforge import FlipMode, ImageArrays, ImageDataModule, SegmentationExample

CLASS_NAMES = ("background", "disk", "square", "triangle")


def make_shapes(n: int, size: int = 32, max_shapes: int = 3, seed: int = 0) -> ImageArrays:
    """``n`` RGB images (uint8, n x 3 x size x size) with 1 to ``max_shapes`` shapes each, and
    their masks (int64, n x size x size, values index CLASS_NAMES)."""
    g = torch.Generator().manual_seed(seed)
    tint = torch.rand(n, 3, 1, 1, generator=g) * 120 + 60
    images = tint + torch.randn(n, 3, size, size, generator=g) * 45
    masks = torch.zeros(n, size, size, dtype=torch.long)
    count = torch.randint(1, max_shapes + 1, (n,), generator=g)
    y = torch.arange(size).float().view(1, -1, 1)
    x = torch.arange(size).float().view(1, 1, -1)
    for slot in range(max_shapes):
        cls = torch.randint(1, len(CLASS_NAMES), (n,), generator=g)
        r = (torch.rand(n, generator=g) * size / 6 + size / 8).view(-1, 1, 1)
        cy, cx = (torch.rand(2, n, 1, 1, generator=g) * (size - 2 * r) + r).unbind(0)
        dy, dx = y - cy, x - cx
        disk = dy**2 + dx**2 <= r**2
        square = dy.abs().maximum(dx.abs()) <= 0.8 * r
        triangle = (dy >= -r) & (dy <= r) & (dx.abs() <= (dy + r) / 2)  # apex up
        inside = torch.stack([disk, square, triangle])[cls - 1, torch.arange(n)]
        inside &= (slot < count).view(-1, 1, 1)
        colour = torch.rand(n, 3, 1, 1, generator=g) * 255
        shape = colour + torch.randn(n, 3, size, size, generator=g) * 12
        images = torch.where(inside[:, None], shape, images)
        masks = torch.where(inside, cls.view(-1, 1, 1), masks)
    return ImageArrays(images.clamp(0, 255).to(torch.uint8), None, CLASS_NAMES, mask=masks)


class ShapesMasks(ImageDataModule):
    """Pictures of shapes and their masks, made in memory; tested on images of another seed.

    Args:
        n_train: training images made (the validation set is taken from them).
        n_test: test images made (from another seed than the training images).
        size: height and width of the images in pixels.
        max_shapes: at most this many shapes per image (at least one).
        batch_size: training batch size (per process).
        eval_batch_size: batch size of validation, test and predict.
        val_size: training images held out for validation, a fraction (0.1) or a count (256).
        translate: random shift of training images and their masks in pixels, reflect padding
            (0: off).
        flip: left-right flips of training images and their masks: 'random', 'alternate' or
            'none'.
        seed: the split, the data order and the augmentation depend on (seed, epoch) only.
    """

    name = "shapes"  # metrics are logged as <stage>/shapes/<metric>
    example_type = SegmentationExample
    dense = ("mask",)

    def __init__(
        self,
        n_train: int = 4096,
        n_test: int = 512,
        size: int = 32,
        max_shapes: int = 3,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        val_size: float = 256,
        translate: int = 2,
        flip: FlipMode = "random",
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            translate=translate,
            flip=flip,
            seed=seed,
        )
        if max_shapes < 1:
            raise ValueError(f"max_shapes must be >= 1, got {max_shapes}")
        self.n_train, self.n_test, self.size, self.max_shapes = n_train, n_test, size, max_shapes

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        return (
            make_shapes(self.n_train, self.size, self.max_shapes, seed=0),
            make_shapes(self.n_test, self.size, self.max_shapes, seed=1),
        )
