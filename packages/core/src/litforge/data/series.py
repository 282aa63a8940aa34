"""Time series: a CSV with a time column read into series, cut into windows, split by time.

    read_series("load.csv", time="timestamp", target="load")          one series
    read_series("shops.csv", time="date", target="sales", group="shop")  one per shop
      -> [TimeSeries(name, times, values, columns, datetime, step), ...]

A window is ``input_length`` steps of history followed by ``horizon`` steps to forecast;
windows start every ``stride`` steps. ``SeriesDataModule`` turns the series into
``ForecastExample`` batches (``litforge.tasks.forecast``).

Splits by time. With T the sorted timestamps of all series, the test part is the last
``test_size`` of T and the validation part the ``val_size`` before it (fractions of T, or
counts of time steps); ``c_val`` and ``c_test`` are the first timestamps of each part. A window
covers every timestamp from its first input step to its last target step, and:

- a training window ends (last target) before ``c_val``;
- a validation window starts (first input) at or after ``c_val`` and ends before ``c_test``;
- a test window starts at or after ``c_test``.

So no timestamp of a window of one split lies in a window of another: validation and test
windows, their history included, lie wholly after every training target, and the windows that
would straddle a cut (``input_length + horizon - 1`` starts at each) belong to no split: that is
the gap. Each part must hold at least one window (``input_length + horizon`` steps).

Scaling: every column of the history is standardised with the mean and std of the training
rows (timestamps before ``c_val``), over all series; the target stays in the series' units
and each example carries the target's ``loc`` and ``scale``, so a model trains on scaled values
and reports in units. The statistics travel in the checkpoint (``state_dict``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.data.device import DeviceLoader
from litforge.data.module import ArrayDataModule
from litforge.data.split import count
from litforge.data.text import decode_strings, encode_strings
from litforge.diagnostics.media import View, line_plots
from litforge.errors import DataError, SettingError
from litforge.tasks.forecast import ForecastExample, ForecastPrediction, seasonal_naive
from litforge.tasks.structs import Example, Prediction

if TYPE_CHECKING:
    import pandas as pd  # imported where a series is read: every run would pay for it


@dataclasses.dataclass
class TimeSeries:
    """One evenly spaced series: ``times`` (int64 n, increasing by ``step``: nanoseconds since
    1970 when ``datetime``, else the time column's integers), ``values`` (float32 n x C: the
    target column first, then the extra input columns, named by ``columns``)."""

    name: str
    times: Tensor
    values: Tensor
    columns: tuple[str, ...]
    datetime: bool
    step: int

    def __len__(self) -> int:
        return len(self.times)


def format_time(value: int, datetime: bool) -> str:
    """A time as a person reads it: ``2024-03-04 05:00`` (seconds when there are any), or the
    integer of a time column that holds no dates."""
    if not datetime:
        return str(value)
    import pandas as pd

    stamp = pd.Timestamp(int(value))
    return stamp.strftime("%Y-%m-%d %H:%M:%S" if stamp.second else "%Y-%m-%d %H:%M")


def format_step(step: int, datetime: bool) -> str:
    """The spacing of a series: ``1 h``, ``15 min``, ``1 day``; an integer without dates."""
    if not datetime:
        return str(step)
    for unit, ns in (("day", 86_400e9), ("h", 3_600e9), ("min", 60e9), ("s", 1e9)):
        if step % ns == 0:
            return f"{step // int(ns)} {unit}"
    return f"{step} ns"


def read_series(
    path: str | Path,
    *,
    time: str,
    target: str,
    group: str | None = None,
    inputs: Sequence[str] = (),
) -> list[TimeSeries]:
    """The series of a CSV file (a header line first), read with pandas.

    Args:
        path: the file.
        time: the time column: dates and times (``2024-03-04 05:00``) or integers (steps).
        target: the column to forecast (numbers).
        group: a column naming the series, for a file holding several (one per shop, per
            sensor); None: the whole file is one series, named after ``target``.
        inputs: extra number columns given to the model beside the target's history.

    Each series is sorted by time and must be evenly spaced, without repeated times or empty
    cells: a ``DataError`` names the file, the line and the column otherwise.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no series at {path} (a CSV file with a header line and a time column)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = [time, target, *inputs, *([group] if group else [])]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path} holds no rows after its header line")
    line = np.arange(len(frame)) + 2  # the file's line of each row (the header is line 1)
    numbers = {}
    for column in (target, *inputs):
        text = frame[column].str.strip()
        parsed = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            cell = text.iloc[bad[0]]
            what = "is empty" if cell == "" else f"{cell!r} is not a number"
            raise DataError(
                f"{path}:{line[bad[0]]}: column {column!r} {what}: fill or drop the row "
                "(pandas: interpolate())"
            )
        numbers[column] = parsed.to_numpy(dtype=np.float32)
    stamps, datetime = _times(frame[time].str.strip(), path, time, line)
    names = frame[group].str.strip().to_numpy() if group else np.full(len(frame), target)
    out = []
    for name in pd.unique(names):
        rows = np.flatnonzero(names == name)
        rows = rows[np.argsort(stamps[rows], kind="stable")]
        times = stamps[rows]
        diffs = np.diff(times)
        if len(diffs) and (diffs == 0).any():
            i = int(np.flatnonzero(diffs == 0)[0])
            raise DataError(
                f"{path}:{line[rows[i + 1]]}: time {frame[time].iloc[rows[i + 1]]!r} repeats "
                f"line {line[rows[i]]}" + (f" in series {name!r}" if group else "")
            )
        step = int(pd.Series(diffs).mode().min()) if len(diffs) else 1
        if len(diffs) and (diffs != step).any():
            i = int(np.flatnonzero(diffs != step)[0])
            raise DataError(
                f"{path}:{line[rows[i + 1]]}: time {frame[time].iloc[rows[i + 1]]!r} comes "
                f"{format_step(int(diffs[i]), datetime)} after the one before; the series "
                + (f"{name!r} " if group else "")
                + f"must be evenly spaced (every {format_step(step, datetime)}): fill the gap "
                "(pandas: resample().interpolate())"
            )
        values = np.stack([numbers[c][rows] for c in (target, *inputs)], axis=1)
        out.append(
            TimeSeries(
                str(name),
                torch.from_numpy(times.astype(np.int64)),
                torch.from_numpy(values),
                (target, *inputs),
                datetime,
                step,
            )
        )
    return out


def _times(text: pd.Series, path: Path, column: str, line: np.ndarray) -> tuple[np.ndarray, bool]:
    """The time column as int64 (nanoseconds since 1970 for dates) and whether it holds dates."""
    import pandas as pd

    as_int = pd.to_numeric(text, errors="coerce")
    if not as_int.isna().any() and (as_int == as_int.round()).all():
        return as_int.to_numpy(dtype=np.int64), False
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        parsed = pd.Series(pd.NaT, index=text.index)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise DataError(
            f"{path}:{line[bad[0]]}: column {column!r}: {text.iloc[bad[0]]!r} is not a time "
            "(write it as 2024-03-04 05:00, or as an integer step)"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64), True


def window_starts(n: int, input_length: int, horizon: int, stride: int = 1) -> Tensor:
    """The first positions of the windows of a series of ``n`` steps: 0, stride, ... while a
    whole window (``input_length + horizon`` steps) fits."""
    return torch.arange(0, max(n - input_length - horizon + 1, 0), stride)


def cut_times(series: Sequence[TimeSeries], val_size: float, test_size: float) -> tuple[int, int]:
    """``(c_val, c_test)``: the first timestamps of the validation and test parts (the module
    docstring states the rule); a part of size 0 starts after the last timestamp."""
    stamps = torch.unique(torch.cat([s.times for s in series]))  # sorted
    n = len(stamps)
    n_test, n_val = count(test_size, n, "test_size"), count(val_size, n, "val_size")
    if n_val + n_test >= n:
        raise SettingError(
            f"val_size={val_size:g} and test_size={test_size:g} leave no training time steps of {n}"
        )
    end = int(stamps[-1]) + 1
    c_test = int(stamps[n - n_test]) if n_test else end
    c_val = int(stamps[n - n_test - n_val]) if n_val else c_test
    return c_val, c_test


def split_windows(
    series: Sequence[TimeSeries],
    input_length: int,
    horizon: int,
    stride: int,
    c_val: int,
    c_test: int,
) -> dict[str, list[tuple[int, Tensor]]]:
    """Per split, ``(series index, window starts)``, by the rule of the module docstring; the
    windows of validation and test are laid from each part's first step."""
    out: dict[str, list[tuple[int, Tensor]]] = {"train": [], "val": [], "test": []}
    for i, s in enumerate(series):
        bounds = {
            "train": (s.times < c_val).nonzero()[:, 0],
            "val": ((s.times >= c_val) & (s.times < c_test)).nonzero()[:, 0],
            "test": (s.times >= c_test).nonzero()[:, 0],
        }
        for split, rows in bounds.items():
            if len(rows):
                first = int(rows[0])
                starts = first + window_starts(len(rows), input_length, horizon, stride)
                assert int(rows[-1]) - first + 1 == len(rows)  # contiguous: times increase
                if len(starts):
                    out[split].append((i, starts))
    return out


class SeriesDataModule(ArrayDataModule):
    """Forecasting windows from a CSV with a time column (``read_series``): the last
    ``input_length`` steps in, the next ``horizon`` steps out, split by time (module docstring).

    Args:
        root: the CSV file.
        time: its time column.
        target: the column to forecast.
        group: a column naming the series of a file holding several; None: one series.
        inputs: extra number columns the model reads beside the target's history.
        input_length: steps of history per window.
        horizon: steps forecast.
        stride: steps between the starts of two windows.
        season: the seasonal-naive baseline's season in steps (24: a day of hourly values,
            168: a week); at most ``input_length``.
        val_size: the part of the timeline just before the test part held out for
            validation, a fraction (0.15) or a count of time steps.
        test_size: the last part of the timeline held out for testing, likewise.
        **kwargs: ArrayDataModule's (batch_size, eval_batch_size, seed).

    The CSV's series are given by ``load()``; override it to give series from elsewhere.
    """

    name = "series"
    example_type = ForecastExample
    provides: ClassVar[tuple[str, ...]] = ("input_length", "horizon", "num_inputs")

    def __init__(
        self,
        root: str = "data/series.csv",
        time: str = "timestamp",
        target: str = "value",
        group: str | None = None,
        inputs: list[str] | None = None,
        input_length: int = 168,
        horizon: int = 24,
        stride: int = 1,
        season: int = 168,
        val_size: float = 0.15,
        test_size: float = 0.15,
        **kwargs: Any,
    ) -> None:
        for key, value in (
            ("input_length", input_length),
            ("horizon", horizon),
            ("stride", stride),
        ):
            if value < 1:
                raise SettingError(f"--data.{key}={value}: it must be at least 1")
        if not 1 <= season <= input_length:
            raise SettingError(
                f"--data.season={season}: the baseline reads one season back in the history, "
                f"so it must lie in [1, input_length={input_length}]"
            )
        self.root, self.time, self.target, self.group = root, time, target, group
        self.inputs = list(inputs or [])
        self.input_length, self.horizon, self.stride = input_length, horizon, stride
        self.season = season
        self.columns: tuple[str, ...] = (target, *self.inputs)
        self.series_names: list[str] = []
        self.datetime, self.step = False, 1
        self.mean: Tensor | None = None  # per history column, of the training rows
        self.std: Tensor | None = None
        self._cuts: tuple[int, int] | None = None
        # last: ArrayDataModule restores a checkpoint's state here when one is being loaded
        super().__init__(val_size=val_size, test_size=test_size, **kwargs)

    @property
    def cuts(self) -> tuple[int, int]:
        """``(c_val, c_test)``: the first timestamps of the validation and test parts (the
        module docstring states the rule); read from the data on first use."""
        if self._cuts is None:
            _ = self.splits
        assert self._cuts is not None
        return self._cuts

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """None: a series has no classes (known without reading the data)."""
        return None

    @property
    def num_inputs(self) -> int:
        """The columns of the history: the target and the extra inputs."""
        return 1 + len(self.inputs)

    def load(self) -> list[TimeSeries]:  # type: ignore[override]
        """The series to window: the CSV's, by default."""
        return read_series(
            self.root, time=self.time, target=self.target, group=self.group, inputs=self.inputs
        )

    # ------------------------------------------------------------------ windows and splits
    def _load_and_split(self) -> dict[str, Arrays | None]:
        series = self.load()
        if not series:
            raise DataError(f"{type(self).__name__}: load() gave no series")
        self.series_names = [s.name for s in series]
        self.datetime, self.step = series[0].datetime, series[0].step
        try:
            c_val, c_test = cut_times(series, self.val_size, self.test_size)
        except ValueError as err:
            raise SettingError(f"{type(self).__name__}: {err}") from err
        self._cuts = (c_val, c_test)
        rows = torch.cat([s.values[s.times < c_val] for s in series])
        if len(rows) < 2:
            raise DataError(f"{type(self).__name__}: fewer than 2 training rows before the cut")
        self.mean, self.std = rows.mean(0), rows.std(0).clamp_min(1e-8)
        windows = split_windows(series, self.input_length, self.horizon, self.stride, c_val, c_test)
        sets: dict[str, Arrays | None] = {}
        for split, size in (("train", None), ("val", self.val_size), ("test", self.test_size)):
            if not windows[split]:
                if size == 0:
                    sets[split] = None
                    continue
                span = self.input_length + self.horizon
                key = "the series are" if split == "train" else f"--data.{split}_size={size:g} is"
                raise SettingError(
                    f"{type(self).__name__}: {key} too short for one {split} window of "
                    f"{span} steps (input_length + horizon): give the {split} part at least "
                    f"{span} steps, or a shorter input_length or horizon"
                )
            sets[split] = self.windows(series, windows[split])
        return sets

    def windows(self, series: Sequence[TimeSeries], starts: list[tuple[int, Tensor]]) -> Arrays:
        """The fields of ``ForecastExample`` for the windows ``(series index, starts)``."""
        assert self.mean is not None and self.std is not None
        length, horizon = self.input_length, self.horizon
        fields: dict[str, list[Tensor]] = {k: [] for k in ("history", "target", "start", "series")}
        for i, first in starts:
            s = series[i]
            steps = first[:, None] + torch.arange(length + horizon)
            values = s.values[steps]  # W x (L + H) x C
            fields["history"].append((values[:, :length] - self.mean) / self.std)
            fields["target"].append(values[:, length:, 0])
            fields["start"].append(s.times[first + length])
            fields["series"].append(torch.full((len(first),), i, dtype=torch.int64))
        joined = {k: torch.cat(v) for k, v in fields.items()}
        n = len(joined["target"])
        loc, scale = self.mean[0].expand(n).clone(), self.std[0].expand(n).clone()
        history_units = loc[:, None] + scale[:, None] * joined["history"][..., 0]
        naive = seasonal_naive(history_units, horizon, self.season)
        ids = [self._window_name(int(k), int(t)) for k, t in zip(joined["series"], joined["start"])]
        return Arrays(**joined, loc=loc, scale=scale, naive=naive, id=encode_strings(ids))

    def _window_name(self, series: int, start: int) -> str:
        when = format_time(start, self.datetime)
        return when if len(self.series_names) == 1 else f"{self.series_names[series]} {when}"

    # ------------------------------------------------------------------ what the data taught
    def state_dict(self) -> dict[str, Any]:
        """What the training rows taught, as plain values: the history columns' mean and std,
        the series' names, spacing and whether their times are dates."""
        if self.mean is None:
            _ = self.splits  # read from the training rows, loaded if they are not yet
        state = dict(super().state_dict())
        if self.mean is not None and self.std is not None:
            state["series"] = {
                "columns": list(self.columns),
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "names": list(self.series_names),
                "step": self.step,
                "datetime": self.datetime,
            }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores ``state_dict()``'s values without reading any data."""
        state = dict(state_dict)
        taught = state.pop("series", None)
        super().load_state_dict(state)
        if taught is not None:
            self.columns = tuple(taught["columns"])
            self.mean = torch.tensor(taught["mean"], dtype=torch.float32)
            self.std = torch.tensor(taught["std"], dtype=torch.float32)
            self.series_names = list(taught["names"])
            self.step, self.datetime = int(taught["step"]), bool(taught["datetime"])

    # ------------------------------------------------------------------ new inputs
    def read_inputs(self, source: Any) -> Arrays:
        """The window that follows each series of ``source`` (a CSV with the training's
        columns, or ``TimeSeries``): its last ``input_length`` rows as history (in units, as
        ``load()`` gives them), the time of the first step to forecast, and the series' name
        as the ``id``. Needs what the training taught (``state_dict``), not its data."""
        if isinstance(source, Arrays):
            return source
        if isinstance(source, str | Path):
            where = str(source)
            series = read_series(
                source, time=self.time, target=self.target, group=self.group, inputs=self.inputs
            )
        elif isinstance(source, Sequence) and all(isinstance(s, TimeSeries) for s in source):
            where, series = "the series", list(source)
        else:
            raise DataError(
                f"{type(self).__name__} cannot read {type(source).__name__} inputs: give a CSV "
                f"file with the columns {[self.time, *self.columns]} or a list of TimeSeries"
            )
        length = self.input_length
        for s in series:
            if len(s) < length:
                raise DataError(
                    f"{where}: series {s.name!r} has {len(s)} rows; the model reads the last "
                    f"{length} (input_length) to forecast what follows"
                )
            if s.step != self.step or s.datetime != self.datetime:
                raise DataError(
                    f"{where}: series {s.name!r} is spaced every {format_step(s.step, s.datetime)}"
                    f"; the model was trained on steps of {format_step(self.step, self.datetime)}"
                )
        known = {name: i for i, name in enumerate(self.series_names)}
        return Arrays(
            history=torch.stack([s.values[-length:] for s in series]),
            start=torch.tensor([int(s.times[-1]) + s.step for s in series]),
            series=torch.tensor([known.get(s.name, -1) for s in series]),
            id=encode_strings([s.name for s in series]),
        )

    def input_loader(self, inputs: Arrays, device: torch.device | str = "cpu") -> DeviceLoader:
        """Batches of ``read_inputs``' windows as ``ForecastExample``: the history scaled as
        in training, the target's ``loc`` and ``scale``, the seasonal-naive forecast; no
        target (None)."""
        if self.mean is None or self.std is None:
            raise DataError(
                f"{type(self).__name__}: no scaling statistics: load a checkpoint's state "
                "(load_state_dict) or the training data first"
            )
        n = len(inputs)
        history = inputs["history"].float()
        fields = {
            "history": (history - self.mean) / self.std,
            "loc": self.mean[0].expand(n).clone(),
            "scale": self.std[0].expand(n).clone(),
            "naive": seasonal_naive(history[..., 0], self.horizon, self.season),
            "start": inputs["start"],
            "series": inputs["series"],
        }
        if "id" in inputs:
            fields["id"] = inputs["id"]

        def build(index: Tensor, batch: Mapping[str, Tensor]) -> Example:
            return ForecastExample(index=index, target=None, **batch)  # type: ignore[arg-type]

        return DeviceLoader(
            Arrays(**fields).to(torch.device(device)), build, batch_size=self.eval_batch_size
        )

    def readable(self, inputs: Arrays, prediction: Prediction) -> list[dict[str, Any]]:
        """One row per series and forecast step: the series (``id``), the step's ``time``,
        its ``step`` (1 to horizon), the forecast and the seasonal-naive baseline, in the
        series' units."""
        assert isinstance(prediction, ForecastPrediction)
        value = prediction.value.detach().float().cpu()
        naive = seasonal_naive(inputs["history"][..., 0].float(), self.horizon, self.season)
        names = (
            decode_strings(inputs["id"]) if "id" in inputs else [str(i) for i in range(len(value))]
        )
        rows = []
        for i, name in enumerate(names):
            for h in range(self.horizon):
                when = int(inputs["start"][i]) + h * self.step
                rows.append(
                    {
                        "id": name,
                        "time": format_time(when, self.datetime),
                        "step": h + 1,
                        "prediction": float(value[i, h]),
                        "baseline": float(naive[i, h]),
                    }
                )
        return rows

    # ------------------------------------------------------------------ showing windows
    def describe(self, field: str, value: Tensor) -> str | float | int:
        """``start`` as a time, ``series`` by its name; the rest as ArrayDataModule does."""
        if field == "start" and value.numel() == 1:
            return format_time(int(value), self.datetime)
        if field == "series" and value.numel() == 1 and 0 <= int(value) < len(self.series_names):
            return self.series_names[int(value)]
        return super().describe(field, value)

    def show(self, example: Example, prediction: Prediction) -> View:
        """Each window as a line plot in the series' units: its history, the truth and the
        forecast over the horizon, and the seasonal-naive baseline (dashed), along the time
        axis; captioned with the series and the time of the first forecast step."""
        assert isinstance(example, ForecastExample) and isinstance(prediction, ForecastPrediction)
        ex, pred = example.cpu(), prediction.cpu()
        history = ex.unscale(ex.history[..., 0].float())
        offsets = torch.arange(-self.input_length, self.horizon) * self.step
        plots, captions, facts = [], [], []
        for i in range(len(ex)):
            when = ex.start[i] + offsets
            x = when.numpy().astype("datetime64[ns]") if self.datetime else when.numpy()
            past, future = x[: self.input_length], x[self.input_length :]
            plots.append(
                {
                    "history": (past, history[i]),
                    "truth": (future, ex.target[i]),
                    "forecast": (future, pred.value[i].float()),
                    "baseline": (future, ex.naive[i]),
                }
            )
            series, start = (
                self.describe("series", ex.series[i]),
                self.describe("start", ex.start[i]),
            )
            captions.append(f"{series} from {start}")
            facts.append({"series": series, "start": start})
        return line_plots(
            plots,
            captions,
            facts,
            size=(360, 220),
            styles={
                "history": {"color": "0.45", "linewidth": 0.8},
                "baseline": {"linestyle": "--"},
            },
            ylabel=self.columns[0],
        )
