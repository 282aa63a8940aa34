"""The model: a network and its forward. ``Classifier`` does the loss (cross-entropy), the
metrics (accuracy, macro accuracy, top-5) and the per-example error the diagnostics rank by;
``BaseModel`` under it does the steps, logging and optimizer."""

from typing import Any

from torch import nn

from litforge import ClassificationExample, ClassificationPrediction, Classifier


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapeModel(Classifier):
    """Args: ``num_classes`` and ``in_channels`` (both linked from the data: not in the config),
    ``width`` of the first conv; the rest: Classifier and BaseModel (optimizer, lr_schedule)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, **kwargs: Any):
        super().__init__(num_classes, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction. Three conv
        # blocks with batch norm, each pooled: enough for small real images (16 to 64 pixels).
        self.body = nn.Sequential(
            block(in_channels, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        features = self.body(example.image).mean(dim=(2, 3))  # any image size
        return ClassificationPrediction(self.head(features))
