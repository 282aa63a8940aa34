"""The model: a small fully convolutional network, a class score for every pixel. ``Segmenter``
does the loss (cross-entropy per pixel), the metrics (mean IoU, pixel accuracy) and the
per-example error the diagnostics rank by; ``BaseModel`` under it does the steps, logging and
optimizer."""

from typing import Any

from torch import nn

from litforge import SegmentationExample, SegmentationPrediction, Segmenter


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapeModel(Segmenter):
    """Args: ``num_classes`` and ``in_channels`` (both linked from the data: not in the config),
    ``width`` of the first conv; the rest: Segmenter and BaseModel (optimizer, scheduler)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, **kwargs: Any):
        super().__init__(num_classes, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.body = nn.Sequential(
            block(in_channels, width),
            nn.MaxPool2d(2),  # half resolution: a wider view of each shape
            block(width, 2 * width),
            block(2 * width, 2 * width),
            nn.Upsample(scale_factor=2),
            block(2 * width, width),
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, example: SegmentationExample) -> SegmentationPrediction:  # type: ignore[override]
        return SegmentationPrediction(self.head(self.body(example.image)))  # N x K x H x W
