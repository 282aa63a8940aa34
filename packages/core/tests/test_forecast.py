"""Forecasting's parts, each against an independent computation: the series read from a CSV,
the windows, the split by time and its gap, the scaling from training rows only (and its
return from ``state_dict``), the seasonal-naive baseline, and the metrics in the series' units.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from litforge import (
    DataError,
    ForecastExample,
    ForecastPrediction,
    Images,
    SeriesDataModule,
    SettingError,
    decode_strings,
    forecast_metrics,
    read_series,
    seasonal_naive,
)

L, H, SEASON = 12, 5, 6


def hourly(path: Path, hours: int = 200, shops: tuple[str, ...] = ()) -> pd.DataFrame:
    """An hourly CSV (rows shuffled, to check the sort), one series or one per shop."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-03-01", periods=hours, freq="h")
    frames = []
    for k, shop in enumerate(shops or ("",)):
        frame = pd.DataFrame(
            {
                "timestamp": times.strftime("%Y-%m-%d %H:%M"),
                "load": (10 * k + np.sin(np.arange(hours) / 3) + rng.normal(0, 0.1, hours)).round(
                    4
                ),
                "temp": rng.normal(20, 5, hours).round(3),
            }
        )
        if shop:
            frame.insert(0, "shop", shop)
        frames.append(frame)
    table = pd.concat(frames).sample(frac=1, random_state=1)
    table.to_csv(path, index=False)
    return table


def module(path: Path, **kwargs: object) -> SeriesDataModule:
    settings = dict(input_length=L, horizon=H, season=SEASON, time="timestamp", target="load")
    return SeriesDataModule(root=str(path), **{**settings, **kwargs})  # type: ignore[arg-type]


def test_read_series_sorts_groups_and_keeps_the_units(tmp_path: Path) -> None:
    table = hourly(tmp_path / "s.csv", 50, shops=("north", "south"))
    series = read_series(
        tmp_path / "s.csv", time="timestamp", target="load", group="shop", inputs=["temp"]
    )
    assert [s.name for s in series] == list(pd.unique(table["shop"]))
    for s in series:
        own = table[table["shop"] == s.name].sort_values("timestamp")
        expected = pd.to_datetime(own["timestamp"]).to_numpy("datetime64[ns]").astype(np.int64)
        assert s.times.tolist() == expected.tolist() and s.step == 3600 * 10**9 and s.datetime
        np.testing.assert_allclose(s.values.numpy(), own[["load", "temp"]].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(index=7), "s.csv:9: time '2024-03-01 08:00' comes 2 h after"),
        (
            lambda t: t.assign(load=t["load"].astype(str).where(t.index != 3, "n/a")),
            "s.csv:5: column 'load' 'n/a' is not a number",
        ),
        (
            lambda t: t.assign(load=t["load"].astype(str).where(t.index != 3, "")),
            "s.csv:5: column 'load' is empty",
        ),
        (
            lambda t: t.assign(timestamp=t["timestamp"].where(t.index != 4, "yesterday")),
            "s.csv:6: column 'timestamp': 'yesterday' is not a time",
        ),
        (lambda t: t.rename(columns={"load": "power"}), "no column 'load'"),
    ],
)
def test_bad_series_are_named_by_file_line_and_column(tmp_path: Path, edit, message) -> None:  # type: ignore[no-untyped-def]
    hourly(tmp_path / "s.csv", 20).sort_values("timestamp").reset_index(drop=True).pipe(
        edit
    ).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError) as err:
        read_series(tmp_path / "s.csv", time="timestamp", target="load")
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_windows_hold_the_csv_values_around_their_start(tmp_path: Path) -> None:
    table = hourly(tmp_path / "s.csv", 120).sort_values("timestamp").reset_index(drop=True)
    data = module(tmp_path / "s.csv", inputs=["temp"], stride=3)
    stamps = pd.to_datetime(table["timestamp"]).to_numpy("datetime64[ns]").astype(np.int64)
    mean = torch.tensor(data.state_dict()["series"]["mean"]) if data.splits else None
    std = torch.tensor(data.state_dict()["series"]["std"])
    for split in ("train", "val", "test"):
        arrays = data.splits[split]
        assert arrays is not None
        for k in range(len(arrays)):
            p = int(np.flatnonzero(stamps == int(arrays["start"][k]))[0])  # first forecast row
            past = torch.tensor(table[["load", "temp"]].to_numpy()[p - L : p], dtype=torch.float32)
            torch.testing.assert_close(
                arrays["history"][k] * std + mean, past, rtol=1e-5, atol=1e-4
            )
            truth = torch.tensor(table["load"].to_numpy()[p : p + H], dtype=torch.float32)
            torch.testing.assert_close(arrays["target"][k], truth)
            when = pd.Timestamp(int(stamps[p])).strftime("%Y-%m-%d %H:%M")
            assert decode_strings(arrays["id"][k]) == [when]
        starts = arrays["start"].diff() // (3600 * 10**9)
        assert (starts == 3).all(), starts  # the stride


def window_steps(data: SeriesDataModule, split: str) -> list[set[int]]:
    """Every window's timestamps, inputs and targets, from its start and the step."""
    arrays = data.splits[split]
    assert arrays is not None
    return [{int(s) + data.step * j for j in range(-L, H)} for s in arrays["start"].tolist()]


@pytest.mark.parametrize("shops", [(), ("north", "south")])
def test_splits_by_time_share_no_timestamp_and_lose_only_the_gap(tmp_path: Path, shops) -> None:  # type: ignore[no-untyped-def]
    """The rule: a training window ends before c_val; a validation window starts at c_val or
    later and ends before c_test; a test window starts at c_test or later. So the later splits
    lie after every training target, and no window shares a timestamp with another split's.
    Every window that fits wholly inside a part is there (independent count)."""
    hours = 200
    hourly(tmp_path / "s.csv", hours, shops=shops)
    data = module(tmp_path / "s.csv", group="shop" if shops else None, val_size=0.2, test_size=40)
    train, val, test = (window_steps(data, s) for s in ("train", "val", "test"))
    last_train_target = max(max(w) for w in train)
    assert min(min(w) for w in val) > last_train_target
    assert min(min(w) for w in test) > max(max(w) for w in val)
    c_val, c_test = data.cuts
    step = data.step
    t0 = int(pd.Timestamp("2024-03-01").value)
    assert (c_test - t0) // step == hours - 40 and (c_val - t0) // step == hours - 40 - 40
    span = L + H
    for windows, first, last in ((train, 0, 120), (val, 120, 160), (test, 160, 200)):
        n_fit = last - first - span + 1  # windows wholly inside the part, stride 1
        assert len(windows) == n_fit * max(len(shops), 1)
        assert all(t0 + first * step <= min(w) and max(w) < t0 + last * step for w in windows)


def test_a_part_too_short_for_one_window_is_named(tmp_path: Path) -> None:
    hourly(tmp_path / "s.csv", 200)
    with pytest.raises(
        SettingError, match=r"--data.test_size=10 is too short for one test window of 17 steps"
    ):
        _ = module(tmp_path / "s.csv", test_size=10).splits
    with pytest.raises(SettingError, match=r"--data.season=13: .* input_length=12"):
        module(tmp_path / "s.csv", season=13)


def test_scaling_comes_from_training_rows_and_travels_in_the_state(tmp_path: Path) -> None:
    table = hourly(tmp_path / "s.csv", 200)
    data = module(tmp_path / "s.csv", inputs=["temp"])
    c_val, _ = data.cuts
    assert data.splits["train"] is not None
    stamps = pd.to_datetime(table["timestamp"]).to_numpy("datetime64[ns]").astype(np.int64)
    rows = table[["load", "temp"]][stamps < c_val]
    state = data.state_dict()["series"]
    np.testing.assert_allclose(state["mean"], rows.mean().to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(state["std"], rows.std().to_numpy(), rtol=1e-4)  # ddof 1, as torch
    test = data.splits["test"]
    assert test is not None
    torch.testing.assert_close(test["loc"], torch.full((len(test),), state["mean"][0]))
    # restored without reading any data: the file is gone
    fresh = module(tmp_path / "gone.csv", inputs=["temp"])
    fresh.load_state_dict(data.state_dict())
    assert fresh.state_dict() == data.state_dict()
    assert fresh.describe("start", test["start"][0]) == data.describe("start", test["start"][0])


def test_seasonal_naive_is_the_value_one_season_back_repeated() -> None:
    y = torch.randn(3, 20, dtype=torch.float64)
    for season, horizon in ((4, 10), (6, 6), (1, 3), (20, 25)):
        got = seasonal_naive(y, horizon, season)
        for h in range(horizon):  # step h forecasts y[20 + h]; k seasons back lands in 0..19
            k = math.ceil((h + 1) / season)
            torch.testing.assert_close(got[:, h], y[:, 20 + h - k * season])
    # the pandas view: over the first season, the series shifted by one season
    s = pd.Series(np.arange(30.0))
    history = torch.tensor(s.to_numpy()[None, :24])
    shifted = s.shift(6).to_numpy()[24:30]
    np.testing.assert_array_equal(seasonal_naive(history, 6, 6)[0].numpy(), shifted)


def test_the_data_modules_baseline_is_the_csv_value_one_season_back(tmp_path: Path) -> None:
    table = hourly(tmp_path / "s.csv", 120).sort_values("timestamp").reset_index(drop=True)
    data = module(tmp_path / "s.csv")
    arrays = data.splits["test"]
    assert arrays is not None
    by_time = pd.Series(table["load"].to_numpy(), index=pd.to_datetime(table["timestamp"]))
    for k in range(len(arrays)):
        start = pd.Timestamp(int(arrays["start"][k]))
        for h in range(H):
            back = pd.Timedelta(hours=SEASON * math.ceil((h + 1) / SEASON))
            expected = by_time[start + pd.Timedelta(hours=h) - back]
            assert float(arrays["naive"][k, h]) == pytest.approx(expected, abs=1e-4)


def test_metrics_in_units_per_step_and_beside_the_baseline() -> None:
    g = torch.Generator().manual_seed(0)
    metrics = forecast_metrics(H)
    targets, preds, naives = [], [], []
    for n in (7, 3):  # two batches of unequal size
        target = torch.randn(n, H, generator=g) * 50 + 300
        pred = target + torch.randn(n, H, generator=g) * 4
        naive = target + torch.randn(n, H, generator=g) * 9
        example = ForecastExample(
            index=torch.arange(n),
            history=torch.zeros(n, L, 1),
            target=target,
            loc=torch.full((n,), 300.0),
            scale=torch.full((n,), 50.0),
            naive=naive,
            start=torch.zeros(n, dtype=torch.int64),
            series=torch.zeros(n, dtype=torch.int64),
        )
        metrics.update(example, ForecastPrediction(pred))
        targets.append(target.numpy()), preds.append(pred.numpy()), naives.append(naive.numpy())
    t, p, b = (np.concatenate(x).astype(np.float64) for x in (targets, preds, naives))
    got = {k: v for k, v in metrics.compute().items()}
    assert float(got["mae"]) == pytest.approx(np.abs(p - t).mean(), rel=1e-5)
    assert float(got["rmse"]) == pytest.approx(np.sqrt(((p - t) ** 2).mean()), rel=1e-5)
    assert float(got["baseline/mae"]) == pytest.approx(np.abs(b - t).mean(), rel=1e-5)
    assert float(got["baseline/rmse"]) == pytest.approx(np.sqrt(((b - t) ** 2).mean()), rel=1e-5)
    ratio = np.abs(p - t).mean() / np.abs(b - t).mean()
    assert float(got["mae_vs_baseline"]) == pytest.approx(ratio, rel=1e-5)
    by_step = metrics["mae_by_step"].compute()
    assert list(by_step) == [f"h{h:02d}" for h in range(1, H + 1)]
    for h in range(H):
        assert float(by_step[f"h{h + 1:02d}"]) == pytest.approx(
            np.abs(p - t)[:, h].mean(), rel=1e-5
        )


def test_the_next_horizon_of_a_new_csv_from_a_checkpoints_state_alone(tmp_path: Path) -> None:
    """Prediction after the end of a given series: the data module restored from the state
    alone (its training file gone) reads a new CSV, batches it as the model sees it, and gives
    rows in the series' units with their times (a 'model' that forecasts the baseline here,
    checked against the CSV's value one season back)."""
    hourly(tmp_path / "train.csv", 200, shops=("north", "south"))
    trained = module(tmp_path / "train.csv", group="shop", inputs=["temp"])
    state = trained.state_dict()
    data = module(tmp_path / "gone.csv", group="shop", inputs=["temp"])
    data.load_state_dict(state)
    new = hourly(tmp_path / "new.csv", 30, shops=("south", "west"))
    inputs = data.read_inputs(tmp_path / "new.csv")
    names = dict(zip(decode_strings(inputs["id"]), inputs["series"].tolist()))
    assert names == {"south": trained.series_names.index("south"), "west": -1}  # -1: unseen
    (example,) = list(data.input_loader(inputs))
    assert isinstance(example, ForecastExample) and example.target is None
    torch.testing.assert_close(example.unscale(example.history[..., 0]), inputs["history"][..., 0])
    rows = data.readable(inputs, ForecastPrediction(example.naive))
    assert len(rows) == 2 * H and [r["step"] for r in rows[:H]] == list(range(1, H + 1))
    end = pd.Timestamp("2024-03-01") + pd.Timedelta(hours=29)
    for row in rows:
        when = end + pd.Timedelta(hours=row["step"])
        assert row["time"] == when.strftime("%Y-%m-%d %H:%M")
        back = when - pd.Timedelta(hours=SEASON * math.ceil(row["step"] / SEASON))
        own = new[(new["shop"] == row["id"]) & (pd.to_datetime(new["timestamp"]) == back)]
        assert row["prediction"] == pytest.approx(float(own["load"].iloc[0]), abs=1e-4)
        assert row["baseline"] == row["prediction"]
    with pytest.raises(DataError, match="series 'south' has 5 rows; the model reads the last 12"):
        hourly(tmp_path / "short.csv", 5, shops=("south",))
        data.read_inputs(tmp_path / "short.csv")


def test_show_draws_each_window_captioned_with_its_series_and_time(tmp_path: Path) -> None:
    hourly(tmp_path / "s.csv", 120, shops=("north", "south"))
    data = module(tmp_path / "s.csv", group="shop")
    example = data.sample("test", 2)
    assert isinstance(example, ForecastExample)
    view = data.show(example, ForecastPrediction(example.naive + 1))
    assert isinstance(view, Images) and view.pixels.shape[:2] == (2, 3)
    for i, caption in enumerate(view.captions):
        name = data.series_names[int(example.series[i])]
        when = pd.Timestamp(int(example.start[i])).strftime("%Y-%m-%d %H:%M")
        assert caption == f"{name} from {when}"
    assert view.pixels.float().std() > 10  # lines drawn, not a blank picture
