"""The model: an MLP from a row of features to class logits. ``Classifier`` does the loss
(cross-entropy), the metrics (accuracy, macro accuracy, top-5) and the per-example error the
diagnostics rank by; ``BaseModel`` under it does the steps, logging and optimizer."""

from typing import Any

from torch import nn

from litforge import ClassificationExample, ClassificationPrediction, Classifier


class MLP(Classifier):
    """Args: ``num_classes`` and ``num_features`` (both linked from the data: not in the config),
    ``hidden`` units per layer; the rest: Classifier and BaseModel (optimizer, lr_schedule)."""

    def __init__(self, num_classes: int, num_features: int, hidden: int = 64, **kwargs: Any):
        super().__init__(num_classes, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.body = nn.Sequential(
            nn.Linear(num_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        return ClassificationPrediction(self.head(self.body(example.features)))


ShapeModel = MLP  # the name cli.py imports
