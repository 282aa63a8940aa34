"""The data: an evenly spaced series in a CSV with a time column, e.g. ``timestamp,load`` (or
several series keyed by a column: ``data.group``), cut into windows of ``input_length`` steps
in and ``horizon`` steps out, split by time. Give the file with
``make train-mytask DATA=path/to/series.csv``.
"""

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch

from litforge import SeriesDataModule


class LoadData(SeriesDataModule):
    """Args: ``root`` (the CSV), ``time``, ``target``, ``group``, ``input_length``,
    ``horizon``, ``season`` (of the seasonal-naive baseline), ...: see SeriesDataModule."""

    name = "load"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # 8 weeks of hourly values for the tests: daily and weekly seasons, a drift, noise
        n, g = 24 * 7 * 8, torch.Generator().manual_seed(0)
        hour = torch.arange(n) * 2 * math.pi
        y = 10 + 3 * torch.sin(hour / 24) + 2 * torch.sin(hour / 168) + torch.randn(n, generator=g)
        y += torch.randn(n, generator=g).cumsum(0) * 0.05
        t0 = datetime(2024, 1, 1)
        rows = [
            f"{t0 + timedelta(hours=i):%Y-%m-%d %H:%M},{v:.3f}" for i, v in enumerate(y.tolist())
        ]
        (folder / "series.csv").write_text("timestamp,load\n" + "\n".join(rows) + "\n")
        return {"root": str(folder / "series.csv"), "target": "load", "batch_size": 32}


ShapesData = LoadData  # the name cli.py imports
