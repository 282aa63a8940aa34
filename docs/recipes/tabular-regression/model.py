"""The model: an MLP from a row of features to one value. ``Regressor`` does the loss (mean
squared error), the metrics (MSE, MAE, R^2) and the per-example error the diagnostics rank by;
``BaseModel`` under it does the steps, logging and optimizer."""

from typing import Any

from torch import nn

from litforge import RegressionExample, RegressionPrediction, Regressor


class MLP(Regressor):
    """Args: ``num_features`` (linked from the data: not in the config), ``hidden`` units per
    layer; the rest: Regressor and BaseModel (optimizer, scheduler)."""

    def __init__(self, num_features: int, hidden: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, example: RegressionExample) -> RegressionPrediction:  # type: ignore[override]
        return RegressionPrediction(self.head(self.net(example.features))[:, 0])  # N, as target


ShapeModel = MLP  # the name cli.py imports
