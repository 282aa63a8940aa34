"""The model: an MLP from a row of features to the target's values. ``Regressor`` does the loss
(mean squared error), the metrics (MSE, MAE, R^2) and the per-example error the diagnostics
rank by; ``BaseModel`` under it does the steps, logging and optimizer."""

import math
from typing import Any

from torch import nn

from litforge import RegressionExample, RegressionPrediction, Regressor


class MLP(Regressor):
    """Args: ``num_features`` and ``target_shape`` (both linked from the data: not in the
    config), ``hidden`` units per layer; the rest: Regressor and BaseModel (optimizer, ...)."""

    def __init__(
        self, num_features: int, target_shape: tuple[int, ...], hidden: int = 64, **kwargs: Any
    ):
        super().__init__(target_shape, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.body = nn.Sequential(
            nn.Linear(num_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.head = nn.Linear(hidden, math.prod(target_shape))  # one output per target value

    def forward(self, example: RegressionExample) -> RegressionPrediction:  # type: ignore[override]
        value = self.head(self.body(example.features))
        return RegressionPrediction(value.reshape(len(value), *self.target_shape))  # as target


ShapeModel = MLP  # the name cli.py imports
