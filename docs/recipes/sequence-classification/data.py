"""The data: lines of a table (``read_table``, CSV or TSV): a text column of token strings of any
length and a label column of class names, e.g. ``text<TAB>label`` / ``(()())<TAB>balanced``. The
texts become token ids, padded, with their lengths and vocabulary. Give the file with
``make train-mytask DATA=path/to/lines.tsv``.
"""

import random
from pathlib import Path
from typing import Any

from litforge import ArrayDataModule, Arrays, ClassificationExample, read_table


class LinesData(ArrayDataModule):
    """Args: ``root``: the file; the rest: ArrayDataModule (val_size, test_size, ...)."""

    name = "lines"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    example_type = ClassificationExample  # a batch: tokens (N x L), lengths (N), label (N)

    def __init__(self, root: str = "data/lines.tsv", **kwargs: Any):
        super().__init__(**kwargs)
        self.root = root

    def load(self) -> Arrays:  # tokenize="words" splits at spaces; the default: characters
        return read_table(self.root, text="text", label="label")

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        # a tiny file in the same format, for the tests: 60 lines of 1 to 12 letters a/b
        rng = random.Random(0)
        texts = ["".join(rng.choices("ab", k=rng.randint(1, 12))) for _ in range(60)]
        lines = [f"{t}\t{'more a' if t.count('a') > len(t) / 2 else 'not'}" for t in texts]
        (folder / "tiny.tsv").write_text("text\tlabel\n" + "\n".join(lines) + "\n")
        return {"root": str(folder / "tiny.tsv"), "batch_size": 16}


ShapesData = LinesData  # the name cli.py imports
