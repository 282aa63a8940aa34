"""The data: the rows of a CSV file (``read_table``): an id column, float feature columns and a
label column of class names, e.g. ``id,radius,texture,...,diagnosis``. Give the file with
``make train-mytask DATA=path/to/table.csv``.
"""

from pathlib import Path
from typing import Any

import torch

from litforge import ArrayDataModule, Arrays, ClassificationExample, read_table


class TableData(ArrayDataModule):
    """Args: ``root``: the CSV file; ``label``: its column of class names; ``ids``: its id
    columns (shown in the diagnostics); the rest: ArrayDataModule (val_size, standardize, ...)."""

    name = "table"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    example_type = ClassificationExample  # a batch: features (N x F), label (N), id

    def __init__(
        self, root: str = "data/table.csv", label: str = "label", ids: str = "id", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.root, self.label, self.ids = root, label, ids

    def load(self) -> Arrays:  # features: every column that is not the label or an id
        return read_table(self.root, label=self.label, ids=self.ids)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # a tiny CSV in the same format, for the tests: 60 rows, 4 features, 2 classes
        x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
        rows = [
            f"r{i},{','.join(f'{v:.3f}' for v in r)},{'yes' if r[0] + r[1] > 0 else 'no'}"
            for i, r in enumerate(x.tolist())
        ]
        (folder / "tiny.csv").write_text("id,a,b,c,d,label\n" + "\n".join(rows) + "\n")
        return {"root": str(folder / "tiny.csv"), "label": "label", "ids": "id", "batch_size": 16}


ShapesData = TableData  # the name cli.py imports
