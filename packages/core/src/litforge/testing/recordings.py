"""A small network for recordings (``litforge.RecordingsDataModule``: N x C x L): 1-D
convolutions over the positions, pooled, then a linear head."""

from __future__ import annotations

from torch import nn

from litforge.tasks.bases import Classifier
from litforge.tasks.structs import ClassificationExample, ClassificationPrediction


class Conv1dClassifier(Classifier):
    """Two 1-D convolutions and a mean over the positions.

    Args:
        num_classes: linked from the data module.
        channels: the recordings' channels (linked from the data module).
        width: the convolutions' channels.
        **kwargs: Classifier's (optimizer, lr_schedule, ...).
    """

    def __init__(self, num_classes: int, channels: int, width: int = 16, **kwargs: object) -> None:
        super().__init__(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
        self.net = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(width, width, 5, padding=2),
            nn.GELU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        return ClassificationPrediction(self.net(example.features))
