"""A table's feature columns as a model's inputs, learned from the training rows only.

``TablePreprocessor`` turns the cells of a table (text, as the file has them) into float rows,
with scikit-learn's transformers:

- number columns: empty cells filled with the column's median (``SimpleImputer``), then
  standardised with the mean and std of the training rows (``StandardScaler``);
- every column with empty cells among the training rows: a 0/1 column "<name> missing"
  (``MissingIndicator``), so the model can tell a filled cell from a real one;
- category columns (text: a city, a plan): empty cells filled with the most frequent value,
  then one-hot encoded (``OneHotEncoder``: a value never seen in training gives all zeros), or
  with ``encode="index"`` one column of category indices each (``OrdinalEncoder``, shifted by
  one: 0 is a value never seen in training) for an ``nn.Embedding`` of ``category_sizes``.

The output is [scaled numbers | missing indicators | categories], named by ``feature_names``.

``ArrayDataModule`` fits it after the split, on the training rows alone, and transforms every
split with it. ``state_dict()`` holds what it learned as plain values (lists, numbers, text: a
checkpoint loads with ``weights_only=True``) and ``load_state_dict()`` rebuilds the
transformers from them, so that new rows, read from a checkpoint, get exactly the same
treatment. A fresh fit goes through the same rebuild, so training and prediction share one path.

pandas and scikit-learn are imported on first use: ``import litforge`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

Encode = Literal["onehot", "index"]
# The text of an empty cell. pandas would also read "None" and "NA" as missing: a plan called
# "None" or Namibia's country code would vanish, so these are left to the user's choice.
MISSING = ("", "N/A", "n/a", "NaN", "nan", "null", "NULL")


def parse_numbers(
    cells: Sequence[str], missing: Sequence[str] = MISSING
) -> tuple[np.ndarray, np.ndarray]:
    """One column's cells as float64 (pandas' ``to_numeric``; NaN where a cell is empty or not
    a number), and the mask of its empty cells (``missing``)."""
    import pandas as pd

    text = pd.Series(list(cells), dtype=object)
    empty = text.isin(list(missing))
    values = pd.to_numeric(text.mask(empty), errors="coerce").to_numpy(dtype=np.float64)
    return values, empty.to_numpy()


class TablePreprocessor:
    """Fills, flags, encodes and scales a table's feature columns, fitted on training rows.

    Args:
        columns: the feature columns, in the file's order.
        categorical: which of them hold categories (the others hold numbers).
        encode: 'onehot' (a 0/1 column per category) or 'index' (one column of category
            indices per category column, last in the rows: see ``category_sizes``).
        missing: the cell texts that mean "empty" (default ``MISSING``: "", "N/A", "nan", ...).
    """

    def __init__(
        self,
        columns: Sequence[str],
        categorical: Sequence[str] = (),
        *,
        encode: Encode = "onehot",
        missing: Sequence[str] = MISSING,
    ) -> None:
        if encode not in ("onehot", "index"):
            raise ValueError(f"encode must be 'onehot' or 'index', got {encode!r}")
        unknown = [c for c in categorical if c not in columns]
        if unknown:
            raise ValueError(f"categorical {unknown} not among the columns {list(columns)}")
        self.columns = list(columns)
        self.categorical = [c for c in self.columns if c in set(categorical)]
        self.numeric = [c for c in self.columns if c not in set(categorical)]
        self.encode: Encode = encode
        self.missing = tuple(missing)
        self.fitted: dict[str, Any] | None = None  # what the training rows taught (state_dict)
        self._steps: dict[str, Any] = {}  # the scikit-learn transformers, rebuilt from it

    # ------------------------------------------------------------------ reading cells
    def _arrays(self, cells: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(numbers N x Fn float64, categories N x Fc object), NaN where a cell is empty."""
        n = len(next(iter(cells.values()))) if cells else 0
        numeric = np.empty((n, len(self.numeric)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            values, empty = parse_numbers(cells[name], self.missing)
            bad = ~empty & np.isnan(values)
            if bad.any():
                i = int(bad.argmax())
                raise ValueError(f"column {name!r}: {cells[name][i]!r} is not a number (row {i})")
            numeric[:, j] = values
        categories = np.empty((n, len(self.categorical)), dtype=object)
        for j, name in enumerate(self.categorical):
            categories[:, j] = [np.nan if c in self.missing else c for c in cells[name]]
        return numeric, categories

    # ------------------------------------------------------------------ fit / transform
    def fit(self, cells: Mapping[str, Sequence[str]]) -> TablePreprocessor:
        """Learns the medians, indicators, scaling and categories from these (training) rows,
        given as ``{column: [cell text, ...]}``; returns itself."""
        from sklearn.impute import MissingIndicator, SimpleImputer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric, categories = self._arrays(cells)
        state: dict[str, Any] = {"median": [], "mean": [], "scale": [], "var": []}
        state |= {"n_samples": len(numeric), "most_frequent": [], "categories": []}
        if self.numeric:
            imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(numeric)
            scaler = StandardScaler().fit(imputer.transform(numeric))
            state["median"] = imputer.statistics_.tolist()
            state["mean"], state["scale"] = scaler.mean_.tolist(), scaler.scale_.tolist()
            state["var"] = scaler.var_.tolist()
        everything = np.concatenate([numeric.astype(object), categories], axis=1)
        indicator = MissingIndicator(features="missing-only", error_on_new=False).fit(everything)
        names = [*self.numeric, *self.categorical]
        state["missing_columns"] = [names[j] for j in indicator.features_.tolist()]
        if self.categorical:
            imputer = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
            filled = imputer.fit_transform(categories)
            encoder = OneHotEncoder(handle_unknown="ignore").fit(filled)
            state["most_frequent"] = [str(v) for v in imputer.statistics_.tolist()]
            state["categories"] = [[str(v) for v in c.tolist()] for c in encoder.categories_]
        self.load_state_dict({**self.settings(), **state})
        return self

    def transform(self, cells: Mapping[str, Sequence[str]]) -> Tensor:
        """The rows as float32 N x F: [scaled numbers | missing indicators | categories]."""
        if self.fitted is None:
            raise ValueError("TablePreprocessor: fit it on the training rows first")
        numeric, categories = self._arrays(cells)
        steps, parts = self._steps, []
        if self.numeric:
            parts.append(steps["scaler"].transform(steps["median"].transform(numeric)))
        if self.fitted["missing_columns"]:
            everything = np.concatenate([numeric.astype(object), categories], axis=1)
            parts.append(steps["indicator"].transform(everything).astype(np.float64))
        if self.categorical:
            encoded = steps["encoder"].transform(steps["most_frequent"].transform(categories))
            parts.append(encoded + 1 if self.encode == "index" else encoded)
        if not parts:
            return torch.zeros(len(numeric), 0)
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))

    # ------------------------------------------------------------------ what the model sees
    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the output columns: a number column's own name, "<name> missing",
        "<name>=<category>" (one-hot) or the category column's name (index)."""
        fitted = self._require_fitted()
        names = [*self.numeric, *(f"{c} missing" for c in fitted["missing_columns"])]
        for column, values in zip(self.categorical, fitted["categories"]):
            names += [column] if self.encode == "index" else [f"{column}={v}" for v in values]
        return tuple(names)

    @property
    def category_sizes(self) -> tuple[int, ...]:
        """With ``encode="index"``: each category column's number of indices (its training
        categories plus 0, the unseen value), in the order of the last columns; else ()."""
        fitted = self._require_fitted()
        return tuple(len(c) + 1 for c in fitted["categories"]) if self.encode == "index" else ()

    def _require_fitted(self) -> dict[str, Any]:
        if self.fitted is None:
            raise ValueError("TablePreprocessor: fit it on the training rows first")
        return self.fitted

    # ------------------------------------------------------------------ state
    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, as plain values."""
        return {
            "columns": list(self.columns),
            "categorical": list(self.categorical),
            "encode": self.encode,
            "missing": list(self.missing),
        }

    def state_dict(self) -> dict[str, Any]:
        """The settings and everything fitted, as plain values (no scikit-learn object)."""
        return {**self.settings(), **self._require_fitted()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TablePreprocessor:
        """A fitted preprocessor from ``state_dict()``'s values, without any row."""
        out = cls(
            state["columns"], state["categorical"], encode=state["encode"], missing=state["missing"]
        )
        out.load_state_dict(state)
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rebuilds the fitted scikit-learn transformers from ``state_dict()``'s values: each
        is fitted on one row made of the learned values (the median of one value is itself)
        or given its categories, and the scaler its mean and scale."""
        from sklearn.impute import MissingIndicator, SimpleImputer
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

        if state["columns"] != self.columns or state["categorical"] != self.categorical:
            raise ValueError(
                f"TablePreprocessor: the state is of columns {state['columns']} (categories "
                f"{state['categorical']}), not {self.columns} ({self.categorical})"
            )
        steps: dict[str, Any] = {}
        if self.numeric:
            median = np.asarray([state["median"]], dtype=np.float64)
            steps["median"] = SimpleImputer(strategy="median", keep_empty_features=True).fit(median)
            scaler = StandardScaler().fit(median)
            scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
            scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
            scaler.var_ = np.asarray(state["var"], dtype=np.float64)
            scaler.n_samples_seen_ = int(state["n_samples"])
            steps["scaler"] = scaler
        names = [*self.numeric, *self.categorical]
        flagged = np.zeros((1, len(names)), dtype=object)
        for name in state["missing_columns"]:
            flagged[0, names.index(name)] = np.nan
        steps["indicator"] = MissingIndicator(features="missing-only", error_on_new=False)
        if names:
            steps["indicator"].fit(flagged)
        if self.categorical:
            frequent = np.asarray([state["most_frequent"]], dtype=object)
            steps["most_frequent"] = SimpleImputer(
                strategy="most_frequent", keep_empty_features=True
            ).fit(frequent)
            categories = [list(c) for c in state["categories"]]
            encoder = (
                OrdinalEncoder(
                    categories=categories, handle_unknown="use_encoded_value", unknown_value=-1
                )
                if self.encode == "index"
                else OneHotEncoder(
                    categories=categories, handle_unknown="ignore", sparse_output=False
                )
            )
            steps["encoder"] = encoder.fit(frequent)
        self._steps = steps
        keys = ("median", "mean", "scale", "var", "n_samples", "most_frequent", "categories")
        self.fitted = {k: state[k] for k in (*keys, "missing_columns")}

    def __repr__(self) -> str:
        return (
            f"TablePreprocessor({len(self.numeric)} number columns, {len(self.categorical)} "
            f"category columns, encode={self.encode!r}, fitted={self.fitted is not None})"
        )


# ---------------------------------------------------------------------- cells as a field
def encode_cells(cells: Mapping[str, Sequence[str]]) -> Tensor:
    """A table's cells as one uint8 field, N x L x C (column c: each cell's UTF-8 bytes,
    zero-padded to the longest cell, as ``encode_strings`` gives them), so that they are split
    and batched with the other fields, and ``decode_cells`` gives them back."""
    columns = [
        np.array([c.encode("utf-8") for c in values], dtype=bytes) for values in cells.values()
    ]
    n = len(columns[0]) if columns else 0
    width = max([1, *(col.dtype.itemsize for col in columns if n)])
    out = np.zeros((n, width, len(columns)), dtype=np.uint8)
    for j, col in enumerate(columns):
        if n:
            out[:, :, j] = col.astype(f"S{width}").view(np.uint8).reshape(n, width)
    return torch.from_numpy(out)


def decode_cells(cells: Tensor, names: Sequence[str]) -> dict[str, list[str]]:
    """``{column: [cell text, ...]}`` of ``encode_cells``' field (N x L x C), for the columns
    ``names`` in order."""
    array = cells.cpu().numpy()
    width = array.shape[1]
    out = {}
    for j, name in enumerate(names):
        column = np.ascontiguousarray(array[:, :, j]).view(f"S{width}").reshape(-1)
        out[name] = [b.decode("utf-8", errors="replace") for b in column.tolist()]
    return out
