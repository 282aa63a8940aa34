"""Batch augmentation with tensor operations on the batch's own device: no per-image Python."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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


def random_translate(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shifts each image by a random (dy, dx) drawn uniformly from [-pad, pad]^2."""
    if pad == 0:
        return images
    shifts = torch.randint(
        -pad, pad + 1, (images.shape[0], 2), generator=generator, device=images.device
    )
    return translate(images, shifts, pad)


def flip(images: Tensor, mask: Tensor) -> Tensor:
    """Mirrors left-right the images where ``mask`` is True."""
    return torch.where(mask[:, None, None, None], images.flip(-1), images)
