"""The model: an MLP from the scaled history to the next ``horizon`` values. ``Forecaster``
does the loss (MSE on the scaled series), the metrics in the series' units (MAE, RMSE, MAE per
step, and the seasonal-naive baseline's beside them) and the error the diagnostics rank by."""

from typing import Any

from torch import nn

from litforge import Forecaster, ForecastExample, ForecastPrediction


class MLP(Forecaster):
    """Args: ``input_length``, ``horizon`` and ``num_inputs`` (linked from the data: not in
    the config), ``hidden`` units; the rest: Forecaster and BaseModel (optimizer, ...)."""

    def __init__(
        self, input_length: int, horizon: int, num_inputs: int = 1, hidden: int = 128, **kwargs: Any
    ):
        super().__init__(input_length, horizon, num_inputs, **kwargs)
        # Real task: your network; it maps N x L x C scaled values to N x H scaled values.
        size = input_length * num_inputs
        self.linear = nn.Linear(size, horizon)
        self.mlp = nn.Sequential(nn.Linear(size, hidden), nn.SiLU(), nn.Linear(hidden, horizon))

    def forward(self, example: ForecastExample) -> ForecastPrediction:  # type: ignore[override]
        last = example.history[:, -1:]  # N x 1 x C: each column's last value, the level
        x = (example.history - last).flatten(1)
        z = self.linear(x) + self.mlp(x) + last[:, :, 0]
        return ForecastPrediction(example.unscale(z))  # back in the series' units


ShapeModel = MLP  # the name cli.py imports
