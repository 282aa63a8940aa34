"""The data: an evenly spaced series in a CSV with a time column, e.g. ``timestamp,load`` (or
several, keyed by a column: ``data.group``), in windows split by time. Give the file with
``make train-mytask DATA=path/to/series.csv``.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from litforge import SeriesDataModule


class LoadData(SeriesDataModule):
    """Args: ``root`` (the CSV), ``time``, ``target``, ``group``, ``input_length``,
    ``horizon``, ``season`` (of the seasonal-naive baseline), ...: see SeriesDataModule."""

    name = "load"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # 8 weeks of hourly values for the tests: daily and weekly seasons, a drift, noise
        time = pd.date_range("2024-01-01", periods=24 * 7 * 8, freq="h")
        hour, rng = np.arange(len(time)) * 2 * np.pi, np.random.default_rng(0)
        noise, drift = rng.normal(size=(2, len(time)))
        load = 10 + 3 * np.sin(hour / 24) + 2 * np.sin(hour / 168) + noise + drift.cumsum() / 20
        path = folder / "series.csv"
        pd.DataFrame({"timestamp": time, "load": load.round(3)}).to_csv(path, index=False)
        return {"root": str(path), "target": "load", "batch_size": 32}


ShapesData = LoadData  # the name cli.py imports
