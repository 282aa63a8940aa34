"""Fast checks of the pieces behind the faults of docs/runs.md (round 2, issue 28); the cases
as a user meets them, through the command line, are in tests/test_faults.py (slow tier)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from litforge.data.arrays import Arrays, ImageArrays
from litforge.data.module import ArrayDataModule
from litforge.data.split import count
from litforge.data.table import read_table
from litforge.errors import DataError, SettingError
from litforge.run.lock import RunInUseError, RunLock
from litforge.run.messages import bad_yaml, class_path_problem, union_problem


def test_a_latin_1_table_is_named_with_its_line(tmp_path: Path) -> None:
    table = tmp_path / "cities.csv"
    table.write_bytes("city,label\nParis,a\nZürich,b\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_table(table, label="label")
    message = str(err.value)
    assert message.startswith(f"{table}:3: not UTF-8 text (byte 0xfc)"), message
    assert "encoding='latin-1'" in message  # what to do
    assert len(message) < 200 + len(str(table))


def test_one_class_is_refused_with_its_name() -> None:
    class OneClass(ArrayDataModule):
        def load(self) -> Arrays:
            images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
            return ImageArrays(images, torch.zeros(4, dtype=torch.int64), ("cat",))

    data = OneClass(batch_size=2)
    with pytest.raises(DataError, match=r"holds 1 class \(cat\): a classifier needs at least 2"):
        _ = data.num_classes


def test_val_size_1_is_refused_and_a_fraction_is_of_the_whole_pool() -> None:
    with pytest.raises(SettingError, match=r"--data\.val_size=1 is neither a fraction"):
        ArrayDataModule(val_size=1.0)
    with pytest.raises(ValueError, match="val_size=1 is neither"):
        count(1, 100, "val_size")
    assert count(0.2, 100, "val_size") == 20 and count(2, 100, "val_size") == 2


def test_the_lock_names_its_holder_and_is_gone_after(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire("python -m p fit --x=1")
    holder = json.loads((tmp_path / ".lock").read_text())
    assert holder["pid"] == os.getpid() and holder["command"] == "python -m p fit --x=1"
    with pytest.raises(RunInUseError, match=rf"in use by process {os.getpid()} on .* fit --x=1"):
        second.acquire("python -m p fit")  # another open file: refused as another process is
    first.release()
    assert not (tmp_path / ".lock").exists()
    second.acquire("python -m p test")
    assert second.held
    second.release()


def test_class_path_messages_are_short() -> None:
    jsonargparse = (
        'Parser key "trainer.callbacks": - Expected a path but ... - Problem with given '
        "class_path 'litforge.Extremess': module 'litforge' has no attribute 'Extremess' - "
        "Not a valid subclass of Callback ..."
    )
    line = class_path_problem(jsonargparse)
    assert line == (
        "--trainer.callbacks: class_path litforge.Extremess: litforge has no Extremess; "
        "did you mean litforge.Extremes?"
    )


def test_a_value_of_the_wrong_type_is_one_short_line(tmp_path: Path) -> None:
    jsonargparse = (
        'Parser key "trainer.max_epochs": Does not validate against any of the Union subtypes '
        "Subtypes: [<class 'int'>, <class 'NoneType'>] Errors: - Expected a <class 'int'> - "
        "Expected a <class 'NoneType'> Given value type: <class 'str'> Given value: 1.5"
    )
    assert union_problem(jsonargparse) == "--trainer.max_epochs=1.5: expected int or null"
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert bad_yaml(["fit", f"--config={empty}"]) == (
        f"the config file {empty} is empty: give settings (key: value), or leave it out"
    )
