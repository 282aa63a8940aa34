"""The model: a tiny U-Net. ``Segmenter`` does the loss (cross-entropy per pixel), the metrics
(mean IoU, pixel accuracy) and the per-image error the diagnostics rank by; ``BaseModel`` under
it does the steps, logging and optimizer.

Encoder: two convs at full size, then twice (max-pool, two convs at double the width). Decoder:
twice (upsample, join the encoder's features of that size, two convs), then a 1x1 conv to one
logit per class and pixel. Fully convolutional: any image size (odd sizes included).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litforge import SegmentationExample, SegmentationPrediction, Segmenter


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SegModel(Segmenter):
    """A tiny U-Net: per-pixel class logits at the size of the input.

    Args:
        num_classes: classes per pixel, background included (linked from the data module).
        in_channels: channels of the images (linked from the data module).
        width: channels of the first convs, doubled at each downsampling.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, width: int = 16, **kwargs: Any
    ) -> None:
        super().__init__(num_classes, **kwargs)
        w = width
        self.enc1 = double_conv(in_channels, w)  # H
        self.enc2 = double_conv(w, 2 * w)  # H / 2
        self.enc3 = double_conv(2 * w, 4 * w)  # H / 4
        self.dec2 = double_conv(4 * w + 2 * w, 2 * w)  # H / 2
        self.dec1 = double_conv(2 * w + w, w)  # H
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, example: SegmentationExample) -> SegmentationPrediction:  # type: ignore[override]
        e1 = self.enc1(example.image)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([up(e3, e2), e2], dim=1))
        d1 = self.dec1(torch.cat([up(d2, e1), e1], dim=1))
        return SegmentationPrediction(logits=self.head(d1))


def up(x: Tensor, like: Tensor) -> Tensor:
    """``x`` upsampled (nearest) to the height and width of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")
