"""The model: a network and its forward, a logit per label. ``MultiLabelClassifier`` does the
loss (binary cross-entropy per label), the metrics (micro, macro and per-label F1, exact match,
mAP) and the per-example error the diagnostics rank by; ``BaseModel`` under it does the steps,
logging and optimizer."""

from typing import Any

from torch import nn

from litforge import MultiLabelClassifier, MultiLabelExample, MultiLabelPrediction


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapeModel(MultiLabelClassifier):
    """Args: ``num_labels`` and ``in_channels`` (both linked from the data: not in the config),
    ``width`` of the first conv; the rest: MultiLabelClassifier (threshold) and BaseModel."""

    def __init__(self, num_labels: int, in_channels: int = 3, width: int = 16, **kwargs: Any):
        super().__init__(num_labels, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction. Three conv
        # blocks with batch norm, each pooled: enough for small real images (16 to 64 pixels).
        self.body = nn.Sequential(
            block(in_channels, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, num_labels)

    def forward(self, example: MultiLabelExample) -> MultiLabelPrediction:  # type: ignore[override]
        features = self.body(example.image).amax(dim=(2, 3))  # any image size; is a tag anywhere?
        return MultiLabelPrediction(self.head(features))
