"""Tables as people have them: empty cells, category columns, an id, a yes/no target.

``TablePreprocessor`` is fitted by ``ArrayDataModule`` on the training rows only: its medians,
scaling, most frequent values and categories are checked against pandas on those rows (and
shown to differ from the whole pool's); its state survives ``torch.save`` / ``torch.load(...,
weights_only=True)`` and transforms rows exactly as before; new rows without the target column
read through it give the same features; bad cells and files stop with one line naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from litforge import (
    ArrayDataModule,
    Arrays,
    ClassificationExample,
    ClassificationPrediction,
    DataError,
    InputError,
    SettingError,
    Table,
    TablePreprocessor,
    decode_cells,
    read_table,
)
from litforge.diagnostics.extremes import example_facts

COLUMNS = ["customer", "age", "income", "city", "plan", "channel", "tenure", "churn"]


def customers(path: Path, n: int = 90, seed: int = 0) -> pd.DataFrame:
    """A customer table: an id, numbers and categories with empty cells, a yes/no target."""
    rng = np.random.default_rng(seed)

    def holes(values: list[Any], p: float) -> list[Any]:
        return ["" if rng.random() < p else v for v in values]

    frame = pd.DataFrame(
        {
            "customer": [f"C{i:05d}" for i in range(n)],
            "age": holes(rng.integers(18, 80, n).tolist(), 0.15),
            "income": holes(np.round(rng.lognormal(3.5, 0.5, n), 1).tolist(), 0.2),
            "city": holes(rng.choice(["Paris", "Lyon", "Nice", "Lille"], n).tolist(), 0.1),
            "plan": rng.choice(["basic", "pro", "family"], n).tolist(),
            "channel": holes(rng.choice(["web", "shop", "phone"], n).tolist(), 0.1),
            "tenure": rng.integers(0, 72, n).tolist(),
            "churn": rng.choice(["yes", "no"], n).tolist(),
        }
    )
    frame.to_csv(path, index=False)
    return pd.read_csv(path)  # empty cells: NaN


class Customers(ArrayDataModule):
    name = "customers"
    example_type = ClassificationExample

    def __init__(self, root: str = "", encode: str = "onehot", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.encode = root, encode

    def load(self) -> Arrays:
        return read_table(self.root, label="churn", ids="customer", encode=self.encode)  # type: ignore[arg-type]


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    return tmp_path / "customers.csv", customers(tmp_path / "customers.csv")


def train_rows(data: ArrayDataModule, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the file that the split put in the training part, found by their ids."""
    ids = decode_ids(data.splits["train"])
    return frame.set_index("customer").loc[ids].reset_index()


def decode_ids(arrays: Arrays) -> list[str]:
    from litforge import decode_strings

    return decode_strings(arrays["id"])


def test_statistics_come_from_the_training_rows_only(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    data = Customers(str(path), val_size=0.2, test_size=0.3, stratify="label")
    train = train_rows(data, frame)
    assert len(train) == len(data.splits["train"]) < len(frame)
    state = data.state_dict()["table"]
    assert state["categorical"] == ["city", "plan", "channel"]  # text columns found
    numbers = ["age", "income", "tenure"]
    # independent: pandas on the training rows (pandas' std is ddof=1; the scaler's ddof=0)
    medians = train[numbers].median()
    filled = train[numbers].fillna(medians)
    np.testing.assert_allclose(state["median"], medians.to_numpy())
    np.testing.assert_allclose(state["mean"], filled.mean().to_numpy())
    np.testing.assert_allclose(state["scale"], filled.std(ddof=0).to_numpy())
    assert state["n_samples"] == len(train)
    cats = train[["city", "plan", "channel"]]
    assert state["categories"] == [sorted(cats[c].dropna().unique()) for c in cats]
    modes = [cats[c].value_counts().sort_index().idxmax() for c in cats]  # ties: the first
    assert state["most_frequent"] == modes
    assert state["missing_columns"] == [c for c in train.columns[1:-1] if train[c].isna().any()]
    # the whole pool would have given other numbers: the test rows did not leak in
    assert not np.allclose(state["median"], frame[numbers].median().to_numpy())
    assert not np.allclose(state["mean"], frame[numbers].fillna(frame[numbers].median()).mean())

    # the features every split gets, computed by hand from those statistics
    test = data.splits["test"]
    rows = frame.set_index("customer").loc[decode_ids(test)]
    expected = [(rows[numbers].fillna(medians) - filled.mean()) / filled.std(ddof=0)]
    expected.append(rows[state["missing_columns"]].isna().astype(float))
    for column, values, mode in zip(cats, state["categories"], modes):
        cells = rows[column].fillna(mode)
        expected.append(pd.DataFrame({v: (cells == v).astype(float) for v in values}))
    by_hand = np.concatenate([e.to_numpy(dtype=np.float64) for e in expected], axis=1)
    np.testing.assert_allclose(test["features"].numpy(), by_hand, rtol=1e-5, atol=1e-6)
    assert data.num_features == by_hand.shape[1] and "city=Lille" in (data.feature_names or ())


def test_the_state_round_trips_and_new_rows_get_the_same_treatment(
    table: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, frame = table
    data = Customers(str(path), test_size=0.3)
    test = data.splits["test"]
    torch.save(data.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # plain values only
    restored = Customers()  # no data read
    restored.load_state_dict(state)
    assert restored.table is not None and restored.table.state_dict() == state["table"]
    cells = decode_cells(test["cells"], test.columns["cells"])
    assert torch.equal(restored.table.transform(cells), test["features"])
    # new rows, without the target column, in another column order
    ids = decode_ids(test)
    new = frame.set_index("customer").loc[ids].reset_index().drop(columns="churn")
    new[["tenure", "customer", "plan", "age", "income", "city", "channel"]].to_csv(
        tmp_path / "new.csv", index=False
    )
    rows = read_table(tmp_path / "new.csv", ids="customer", preprocess=restored.table)
    assert torch.equal(rows["features"], test["features"]) and "label" not in rows
    assert rows.columns["features"] == data.feature_names
    # the prediction hooks: read_inputs (the other columns make the id), then input_loader
    inputs = restored.read_inputs(tmp_path / "new.csv")
    assert restored.item_names(inputs) == ids
    (batch,) = list(restored.input_loader(inputs))
    assert torch.equal(batch.features, test["features"]) and batch.label is None
    assert batch.cells is None  # the model's input only
    given = [{"age": 40, "income": None, "city": "Rome", "plan": "pro", "channel": ""}]
    with pytest.raises(InputError, match=r"rows\[0\]: no column 'tenure'"):
        restored.read_inputs(given)
    one = restored.read_inputs([{**given[0], "tenure": "12"}])
    expected = restored.table.transform(
        {"age": ["40"], "income": [""], "city": ["Rome"], "plan": ["pro"], "channel": [""]}
        | {"tenure": ["12"]}
    )
    assert torch.equal(one["features"], expected)
    with pytest.raises(InputError, match=r"new\.csv:3: column 'age': 'forty' is not a number"):
        new.assign(age=["40", "forty", *new["age"][2:].astype(str)]).to_csv(
            tmp_path / "new.csv", index=False
        )
        restored.read_inputs(tmp_path / "new.csv")


def test_unseen_categories_and_category_indices(tmp_path: Path) -> None:
    cells = {"size": ["1.5", "", "2.5", "3"], "city": ["Paris", "Lyon", "", "Paris"]}
    one_hot = TablePreprocessor(["size", "city"], ["city"]).fit(cells)
    assert one_hot.feature_names == (
        "size",
        "size missing",
        "city missing",
        "city=Lyon",
        "city=Paris",
    )
    new = {"size": ["2.5"], "city": ["Rome"]}  # never seen: no one-hot column set
    assert one_hot.transform(new)[0, -2:].tolist() == [0.0, 0.0]
    index = TablePreprocessor(["size", "city"], ["city"], encode="index").fit(cells)
    assert index.category_sizes == (3,) and index.feature_names[-1] == "city"
    assert index.transform(cells)[:, -1].tolist() == [2.0, 1.0, 2.0, 2.0]  # empty: Paris
    assert index.transform(new)[0, -1].item() == 0.0  # 0: unseen
    path = tmp_path / "t.csv"
    customers(path, n=40)
    data = Customers(str(path), encode="index", test_size=0.25)
    assert data.category_sizes == (5, 4, 4)  # 4 cities, 3 plans, 3 channels, each + unseen
    with pytest.raises(SettingError, match="category indices"):
        Customers(str(path), encode="index", standardize=("features",)).splits  # noqa: B018


@pytest.mark.parametrize(
    ("text", "kwargs", "error"),
    [
        (
            "id,age,plan,y\na,30,x,yes\nb,4O,y,no\nc,51,x,no\n",
            {"label": "y", "ids": "id"},
            r"t\.csv:3: column 'age': '4O' is not a number, in a column of numbers \(2 of 3\)",
        ),
        (
            "id,age,y\na,30,yes\nb,40,yes\nc,51,yes\n",
            {"label": "y", "ids": "id"},
            r"t\.csv: column 'y' holds one class \('yes'\) in all its 3 rows",
        ),
        (
            "id,age,y\na,30,yes\nb,,no\nc,inf,no\n",
            {"label": "y", "ids": "id"},
            r"t\.csv:4: column 'age': 'inf' is not finite",
        ),
    ],
)
def test_bad_tables_stop_with_one_line(
    tmp_path: Path, text: str, kwargs: dict[str, Any], error: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=error) as err:
        read_table(path, **kwargs)
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_a_latin_1_file_is_named_and_read_when_told(tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes("id,ville,y\na,Orléans,oui\nb,Besançon,non\nc,Orléans,non\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"clients\.csv:2: not UTF-8 text \(byte 0xe9\)"):
        read_table(path, label="y", ids="id")
    arrays = read_table(path, label="y", ids="id", encoding="latin-1")
    assert decode_cells(arrays["cells"], ["ville"]) == {"ville": ["Orléans", "Besançon", "Orléans"]}


def test_a_tables_rows_are_shown_as_the_file_has_them(table: tuple[Path, pd.DataFrame]) -> None:
    path, _ = table
    data = Customers(str(path), test_size=0.3)
    batch = data.sample("test", 6)
    view = data.show(batch, ClassificationPrediction(torch.zeros(6, 2)))
    assert isinstance(view, Table)
    names = ["index", "id", "age", "income", "city", "plan", "channel", "tenure", "label"]
    assert list(view.columns)[: len(names)] == names and "features" not in view.columns
    raw = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("customer")
    for column in ("age", "income", "city", "plan", "channel", "tenure"):
        assert view.columns[column] == raw.loc[view.columns["id"], column].tolist()
    assert "" in view.columns["income"] + view.columns["age"]  # the empty cells, as such
    # and the facts beside the picture (the Extremes' JSON) hold the same cells
    records = example_facts(data, batch, ClassificationPrediction(torch.zeros(6, 2)), torch.ones(6))
    for i, record in enumerate(records):
        assert record["id"] == view.columns["id"][i]
        assert all(record[c] == view.columns[c][i] for c in ("age", "income", "city", "plan"))
