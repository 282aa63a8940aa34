"""Forecasting: the next ``horizon`` values of a series from its last ``input_length`` ones.

    ForecastExample      history (scaled, N x L x C: the target first, then any extra input
                         columns), target (the series' units, N x H), loc and scale (N: what
                         un-scales the target), naive (the seasonal-naive forecast, N x H), start
                         (the time of the first forecast step), series (which series)
    ForecastPrediction   value: the forecast in the series' units, N x H
    Forecaster           the base: a subclass maps the scaled history to H scaled values and
                         returns ``ForecastPrediction(example.unscale(out))``; the loss is the
                         MSE in scaled units, every metric in the series' own units
    forecast_metrics     MAE and RMSE over every step, MAE per horizon step (one metric, a dict
                         ``{"h01": ..., "h24": ...}``), and the seasonal-naive baseline's MAE and
                         RMSE on the same windows, with the model's MAE relative to it
    seasonal_naive       the value one season earlier, repeated over the horizon

The windows, splits by time and scaling are ``litforge.data.series``'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from litforge.tasks.bases import PerExampleLossModel
from litforge.tasks.structs import Example, Prediction


@dataclasses.dataclass
class ForecastExample(Example):
    """A batch of windows: ``history`` (float, N x L x C, scaled: the target column first, then
    the extra input columns), ``target`` (float, N x H, the series' units), ``loc`` and
    ``scale`` (N: the target's training mean and std, so ``target ~ loc + scale * z``),
    ``naive`` (N x H: the seasonal-naive forecast, in units), ``start`` (int64 N: the time of
    the first forecast step, nanoseconds since 1970 for dates, else the time column's integer)
    and ``series`` (int64 N: which series, an index into the data's series names)."""

    history: Tensor
    target: Tensor
    loc: Tensor
    scale: Tensor
    naive: Tensor
    start: Tensor
    series: Tensor

    def unscale(self, z: Tensor) -> Tensor:
        """Scaled values (N x H) back in the series' units: ``loc + scale * z``."""
        return self.loc[:, None].to(z.dtype) + self.scale[:, None].to(z.dtype) * z


@dataclasses.dataclass
class ForecastPrediction(Prediction):
    """The forecast in the series' units, N x H (step 1 first)."""

    value: Tensor


def seasonal_naive(history: Tensor, horizon: int, season: int) -> Tensor:
    """The seasonal-naive forecast of each row of ``history`` (N x L, in time order): step h
    (0-based) takes the value ``season * (h // season + 1)`` steps before it, i.e. the last
    observed season repeated. ``season`` must not exceed L."""
    length = history.shape[-1]
    if not 1 <= season <= length:
        raise ValueError(f"season={season} must lie in [1, input_length={length}]")
    h = torch.arange(horizon, device=history.device)
    return history[..., length + h - season * (h // season + 1)]


class HorizonMAE(Metric):
    """The mean absolute error at each horizon step, as a dict ``{"h01": ..., "h24": ...}``
    (keys zero-padded to two digits, or more for a longer horizon): one logged scalar per step."""

    full_state_update = False
    higher_is_better = False
    total: Tensor
    count: Tensor

    def __init__(self, horizon: int, pred_field: str = "value", target_field: str = "target"):
        super().__init__()
        self.horizon, self.pred_field, self.target_field = horizon, pred_field, target_field
        self.add_state("total", torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, example: Example, prediction: Prediction) -> None:
        source = {"example": example, "prediction": prediction}
        pred = _read(source, self.pred_field, prediction)
        target = _read(source, self.target_field, example)
        self.total += (pred.double() - target.double()).abs().sum(0)
        self.count += len(target)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        width = max(2, len(str(self.horizon)))
        mae = (self.total / self.count).float()
        return {f"h{h + 1:0{width}d}": mae[h] for h in range(self.horizon)}


class ForecastError(Metric):
    """MAE or RMSE (``kind``) over every step of every window, of ``pred_field`` (a
    prediction field, or ``example.<field>`` for the baseline) against ``example.target``;
    with ``relative_to`` the ratio of this MAE to the MAE of that field instead (below 1: better
    than it)."""

    full_state_update = False
    higher_is_better = False
    total: Tensor
    reference: Tensor
    count: Tensor

    def __init__(
        self, kind: str = "mae", pred_field: str = "value", relative_to: str | None = None
    ) -> None:
        super().__init__()
        if kind not in ("mae", "rmse"):
            raise ValueError(f"kind must be 'mae' or 'rmse', got {kind!r}")
        self.kind, self.pred_field, self.relative_to = kind, pred_field, relative_to
        for name in ("total", "reference", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, example: Example, prediction: Prediction) -> None:
        source = {"example": example, "prediction": prediction}
        target = example.target.double()  # type: ignore[attr-defined]
        error = _read(source, self.pred_field, prediction).double() - target
        self.total += (error.abs() if self.kind == "mae" else error**2).sum()
        if self.relative_to is not None:
            other = _read(source, self.relative_to, prediction).double()
            self.reference += (other - target).abs().sum()
        self.count += target.numel()

    def compute(self) -> Tensor:
        if self.relative_to is not None:
            return (self.total / self.reference).float()
        mean = self.total / self.count
        return (mean if self.kind == "mae" else mean.sqrt()).float()


def _read(source: dict[str, Any], field: str, default: Any) -> Tensor:
    """``example.naive`` / ``prediction.value`` / a bare name, read from ``default``."""
    owner, _, name = field.rpartition(".")
    struct = source[owner] if owner else default
    return getattr(struct, name)  # type: ignore[no-any-return]


def forecast_metrics(horizon: int) -> MetricCollection:
    """The metrics of forecasting, all in the series' units: ``mae`` and ``rmse`` over every
    step, ``mae_by_step`` (one value per horizon step, ``h01``...), the seasonal-naive
    baseline's ``baseline/mae`` and ``baseline/rmse`` on the same windows, and
    ``mae_vs_baseline``, the model's MAE divided by the baseline's (below 1: it beats it)."""
    metrics: dict[str, Metric | MetricCollection] = {
        "mae": ForecastError("mae"),
        "rmse": ForecastError("rmse"),
        "mae_by_step": HorizonMAE(horizon),
        "baseline/mae": ForecastError("mae", "example.naive"),
        "baseline/rmse": ForecastError("rmse", "example.naive"),
        "mae_vs_baseline": ForecastError("mae", relative_to="example.naive"),
    }
    return MetricCollection(metrics, compute_groups=False)


class Forecaster(PerExampleLossModel):
    """A subclass builds a network from ``example.history`` (N x L x C, scaled) to H scaled
    values and returns ``ForecastPrediction(example.unscale(out))``: the forecast in the
    series' units. The loss is the mean squared error in scaled units (each window's error
    divided by its ``scale``), so training sees values near 1 whatever the series' units;
    every metric and the error the diagnostics rank by (each window's MAE) are in its units.

    Args:
        input_length: L, the steps of history per window (linked from the data module).
        horizon: H, the steps forecast (linked from the data module).
        num_inputs: C, the columns of the history: the target and the extra inputs (linked).
    """

    loss_name = "mse"
    best_metric = "mae"
    train_metrics = ("mae",)

    def __init__(self, input_length: int, horizon: int, num_inputs: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_length, self.horizon, self.num_inputs = input_length, horizon, num_inputs

    def per_example_loss(self, example: ForecastExample, prediction: ForecastPrediction) -> Tensor:  # type: ignore[override]
        z = (prediction.value.float() - example.target.float()) / example.scale[:, None].float()
        return (z**2).mean(dim=1)

    def example_error(self, example: ForecastExample, prediction: ForecastPrediction) -> Tensor:  # type: ignore[override]
        return (prediction.value.float() - example.target.float()).abs().mean(dim=1).detach()

    def build_metrics(self) -> MetricCollection:
        return forecast_metrics(self.horizon)
