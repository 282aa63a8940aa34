"""The image layer's batch transform: pixels -> normalised float, random shifts, flips. Tensor
operations on the batch's own device, no per-image Python. Dense targets named in ``dense``
(masks N x H x W, float images N x C x H x W) move with their images: the same shift, the same
flip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from litforge.data.device import Fields, Seeds

FlipMode = Literal["none", "random", "alternate"]
"""How training images are mirrored left-right: 'none', 'random' (a fresh coin per image and
epoch) or 'alternate' (a coin per image on the first epoch, then every image flips on odd
epochs)."""


def translate(images: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """Shifts each image by ``shifts[n] = (dy, dx)`` pixels (each in [-pad, pad]), filling the
    border by reflection: pad by ``pad`` on every side, then crop back at offset pad + shift."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    rows = (pad - shifts[:, 0])[:, None] + torch.arange(h, device=images.device)  # N x H
    cols = (pad - shifts[:, 1])[:, None] + torch.arange(w, device=images.device)  # N x W
    batch = torch.arange(n, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2)


def random_shifts(
    n: int, pad: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> Tensor:
    """N random (dy, dx), each drawn uniformly from [-pad, pad]."""
    return torch.randint(-pad, pad + 1, (n, 2), generator=generator, device=device)


def random_translate(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shifts each image by a random (dy, dx) drawn uniformly from [-pad, pad]^2."""
    if pad == 0:
        return images
    return translate(images, random_shifts(len(images), pad, generator, images.device), pad)


def flip(images: Tensor, mask: Tensor) -> Tensor:
    """Mirrors left-right the images where ``mask`` is True."""
    where = mask.view(-1, *([1] * (images.dim() - 1)))
    return torch.where(where, images.flip(-1), images)


def to_pixels(values: Tensor) -> Tensor:
    """Float images with values in [0, 1] as uint8 pixels (outside values clamped)."""
    return values.float().mul(255).round().clamp(0, 255).to(torch.uint8)


def translate_dense(values: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """``translate`` for a dense target: N x H x W (a mask: rounded back to its dtype) or
    N x C x H x W (float images)."""
    source = values if values.is_floating_point() else values.float()
    moved = translate(source[:, None] if values.dim() == 3 else source, shifts, pad)
    moved = moved[:, 0] if values.dim() == 3 else moved
    return moved if values.is_floating_point() else moved.round().to(values.dtype)


class ImageTransform:
    """The image layer's per-batch transform, on the device: normalises ``image`` with
    per-channel statistics and, for training, shifts and flips it (and its dense targets alike).

    Args:
    mean, std: per channel, in [0, 1] pixel units: ``image`` becomes (x / 255 - mean) / std
      for uint8 pixels, (x - mean) / std for float images.
    translate: random shift in pixels with reflect padding (0: off).
    flip: 'random' (a fresh coin per image and epoch), 'alternate' (a coin per image on the
      first epoch, then every image flips on odd epochs: each view is seen every two epochs),
      or 'none'.
    field: the image field; dense: fields of N x H x W (masks) or N x C x H x W (float
      targets) shifted and flipped alike.
    """

    def __init__(
        self,
        mean: Tensor,
        std: Tensor,
        translate: int = 0,
        flip: FlipMode = "none",
        field: str = "image",
        dense: Sequence[str] = (),
    ) -> None:
        if flip not in ("none", "random", "alternate"):
            raise ValueError(f"flip must be 'none', 'random' or 'alternate', got {flip!r}")
        if translate < 0:
            raise ValueError(f"translate must be >= 0, got {translate}")
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
        self.translate, self.flip, self.field, self.dense = translate, flip, field, tuple(dense)
        self._flips: Tensor | None = None
        self._shift_rng: torch.Generator | None = None

    def normalize(self, images: Tensor) -> Tensor:
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        pixels = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        return (pixels - mean) / std

    def denormalize(self, images: Tensor) -> Tensor:
        """Normalised images back to uint8 pixels (float images: [0, 1] to 0-255, clamped)."""
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return to_pixels(images.float() * std + mean)

    def start_epoch(self, epoch: int, n_items: int, seeds: Seeds) -> None:
        self._shift_rng = seeds.generator(epoch, 1)
        if self.flip == "alternate":
            base = torch.rand(n_items, generator=seeds.generator(0, 2), device=seeds.device) < 0.5
            self._flips = base ^ bool(epoch % 2)
        elif self.flip == "random":
            draw = torch.rand(n_items, generator=seeds.generator(epoch, 2), device=seeds.device)
            self._flips = draw < 0.5

    def skip(self, index: Tensor) -> None:
        """The random draws of a batch of ``index``, made and dropped (a resumed epoch passes
        the batches read before its checkpoint so; the flips are per image, drawn at epoch
        start)."""
        if self.translate:
            random_shifts(len(index), self.translate, self._shift_rng, index.device)

    def __call__(self, fields: Fields, index: Tensor) -> Fields:
        out = dict(fields)
        x = self.normalize(fields[self.field])
        if self.translate:
            shifts = random_shifts(len(x), self.translate, self._shift_rng, x.device)
            x = translate(x, shifts, self.translate)
            for name in self.dense:
                out[name] = translate_dense(fields[name], shifts, self.translate)
        if self._flips is not None:
            x = flip(x, self._flips[index])
            for name in self.dense:
                out[name] = flip(out[name], self._flips[index])
        out[self.field] = x
        return out
