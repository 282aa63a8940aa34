"""The model: 1-D convolutions over the readings, a mean over time, a logit per class.
``Classifier`` does the loss, the metrics and the per-example error the diagnostics rank by."""

from typing import Any

from torch import nn

from litforge import ClassificationExample, ClassificationPrediction, Classifier


class ShapeModel(Classifier):
    """Args: ``num_classes`` and ``channels`` (linked from the data: not in the config),
    ``width`` of the convolutions; the rest: Classifier and BaseModel."""

    def __init__(self, num_classes: int, channels: int, width: int = 32, **kwargs: Any):
        super().__init__(num_classes, **kwargs)
        # Real task: your network; features is N x channels x readings
        self.net = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2),
            nn.BatchNorm1d(width),
            nn.GELU(),
            nn.Conv1d(width, width, 5, padding=2),
            nn.BatchNorm1d(width),
            nn.GELU(),
            nn.AdaptiveAvgPool1d(1),  # any number of readings
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        return ClassificationPrediction(self.net(example.features))
