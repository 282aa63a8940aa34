"""The data: the rows of a CSV file (``read_table``): float feature columns and one target
column, or several (a model with several outputs), e.g. ``x1,x2,...,price``. Give the file with
``make train-mytask DATA=path/to/table.csv``.
"""

from pathlib import Path
from typing import Any

import torch

from litforge import ArrayDataModule, Arrays, RegressionExample, read_table


class TableData(ArrayDataModule):
    """Args: ``root``: the CSV file; ``target``: its target column, or a list of them (several
    outputs); the rest: ArrayDataModule (val_size, test_size, standardize, ...)."""

    name = "table"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    example_type = RegressionExample  # a batch: features (N x F) and target (N, or N x T)

    def __init__(
        self, root: str = "data/table.csv", target: str | list[str] = "target", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.root, self.target = root, target

    def load(self) -> Arrays:  # features: every column that is not a target
        return read_table(self.root, target=self.target)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # a tiny CSV in the same format, for the tests: 60 rows, 3 features, 1 target
        x = torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
        rows = [",".join(f"{v:.3f}" for v in (*r, r[0] - r[1] * r[2])) for r in x.tolist()]
        (folder / "tiny.csv").write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
        return {"root": str(folder / "tiny.csv"), "target": "y", "batch_size": 16}


ShapesData = TableData  # the name cli.py imports
