"""The data: a customer table as people have it (``read_table``): an id column, number and
category columns (city, plan, ...) with empty cells, and a yes/no column to predict. Empty cells
and categories are filled and encoded with the training rows' statistics, kept in the
checkpoint. Give the file with ``make train-mytask DATA=path/to/customers.csv``.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from litforge import ArrayDataModule, Arrays, ClassificationExample, read_table


class CustomerData(ArrayDataModule):
    """Args: ``root``: the CSV file; ``label``: its yes/no column; ``ids``: its id column; the
    rest: ArrayDataModule (val_size, test_size, stratify, ...)."""

    name = "customers"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    example_type = ClassificationExample  # a batch: features (N x F), label (N), id, cells

    def __init__(
        self, root: str = "data/customers.csv", label: str = "churn", ids: str = "id", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.root, self.label, self.ids = root, label, ids

    def load(self) -> Arrays:  # text columns: categories; empty cells: filled (TablePreprocessor)
        return read_table(self.root, label=self.label, ids=self.ids)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # a tiny CSV in the same format, for the tests: 80 rows, empty cells, 2 categories
        rng, n = np.random.default_rng(0), 80
        age = np.where(rng.random(n) < 0.2, np.nan, rng.integers(18, 80, n))  # empty cells
        city, plan = rng.choice(["Lyon", "Nice", ""], n), rng.choice(["basic", "pro"], n)
        churn = np.where((plan == "basic") ^ (rng.random(n) < 0.1), "yes", "no")
        rows = pd.DataFrame(
            {"id": range(n), "age": age, "city": city, "plan": plan, "churn": churn}
        )
        rows.to_csv(folder / "tiny.csv", index=False)
        return {"root": str(folder / "tiny.csv"), "batch_size": 16}


ShapesData = CustomerData  # the name cli.py imports
