"""The model: a small fully convolutional network, the clean image from the noisy one.
``Regressor`` does the loss (mean squared error), the metrics (MSE, MAE, PSNR) and the
per-example error the diagnostics rank by; ``BaseModel`` under it does the steps, logging and
optimizer."""

from typing import Any

from torch import nn

from litforge import RegressionExample, RegressionPrediction, Regressor


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapeModel(Regressor):
    """Args: ``in_channels`` and ``out_channels`` (both linked from the data: not in the config),
    ``width`` of the convs; the rest: Regressor and BaseModel (optimizer, lr_schedule)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.body = nn.Sequential(
            block(in_channels, width), block(width, width), block(width, width)
        )
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, example: RegressionExample) -> RegressionPrediction:  # type: ignore[override]
        return RegressionPrediction(self.head(self.body(example.image)))  # shaped as the target
