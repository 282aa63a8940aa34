"""Recordings: one CSV file of numbers per item (sensor readings over time, a spectrum per
channel, ...), named in a table beside them with each item's class or value
(``read_recordings``, ``RecordingsDataModule``).

    labels.csv:                 read_recordings("data/labels.csv", label="activity",
      file,activity                             columns=["ax", "ay", "az"])
      rec001.csv,walking          -> Arrays(features=float32 N x C x L (a channel per column,
      rec002.csv,sitting                     a position per row), label=int64 N, id=file names),
    rec001.csv:                              class_names (the classes found, sorted)
      t,ax,ay,az
      0.00,0.12,-0.03,9.81
      ...

``target=`` instead of ``label=`` reads a number per recording (regression). Every recording
has the same rows (or ``length=`` keeps the first ``length``); a file or cell that cannot be
used stops the read with one ``error:`` line naming the file, its line and its column. The
default ``show`` draws each recording as lines, a line per channel; ``read_inputs`` reads new
recordings (a folder of them, a file, a list of files) as the training's were read.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.data.module import ArrayDataModule
from litforge.data.table import _list
from litforge.data.text import encode_strings
from litforge.errors import DataError, InputError
from litforge.tasks.structs import ClassificationExample, RegressionExample


def read_recording(
    path: str | Path,
    columns: Sequence[str] | None = None,
    length: int | None = None,
    delimiter: str = ",",
    error: type[Exception] = DataError,
) -> tuple[Tensor, tuple[str, ...]]:
    """One recording: (float32 C x L, the column names read), a channel per column (every
    column without ``columns``), a position per row; the first ``length`` rows with ``length``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            names = tuple(columns) if columns is not None else tuple(header)
            missing = [c for c in names if c not in header]
            if missing or not names:
                raise error(
                    f"{path}: no column {_list(missing) if missing else '(none)'}; its columns "
                    f"are {_list(header)}"
                )
            picks = [header.index(c) for c in names]
            rows: list[list[float]] = []
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue
                if length is not None and len(rows) == length:
                    break
                values = []
                for j, c in zip(picks, names):
                    cell = row[j] if j < len(row) else ""
                    try:
                        values.append(float(cell))
                    except ValueError:
                        raise error(
                            f"{path}:{reader.line_num}: column {c!r}: {cell!r} is not a number"
                        ) from None
                rows.append(values)
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read it as a CSV of numbers: {err}") from err
    if not rows:
        raise error(f"{path} has a header but no rows")
    if length is not None and len(rows) < length:
        raise error(f"{path} has {len(rows)} rows, fewer than length={length}")
    return torch.tensor(np.asarray(rows, dtype=np.float32).T.copy()), names


def _stack(recordings: list[Tensor], files: list[Path], error: type[Exception]) -> Tensor:
    """The recordings as one N x C x L tensor; recordings of other lengths are named."""
    first = recordings[0].shape
    for r, f in zip(recordings, files):
        if r.shape != first:
            raise error(
                f"{f} has {r.shape[1]} rows, {files[0].name} {first[1]}: give length=<rows> "
                "to keep the first rows of every recording"
            )
    return torch.stack(recordings)


def read_recordings(
    path: str | Path,
    *,
    folder: str | Path | None = None,
    file: str = "file",
    label: str | None = "label",
    target: str | None = None,
    columns: Sequence[str] | None = None,
    length: int | None = None,
    class_names: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Arrays:
    """Recordings named in a table, with each one's class (``label``) or value (``target``):
    ``Arrays`` with ``features`` (float32 N x C x L), ``label`` (int64 N) and the classes as
    ``class_names``, or ``target`` (float32 N), and ``id`` (each file's name as given); the
    channels' names (the columns read) as ``channel_names``.

    Args:
        path: the table (a header line first): a column of files and one of classes or values.
        folder: the folder the file names are relative to (default: the table's own folder).
        file: the column of recording files.
        label: the column of classes (classification); ignored when ``target`` is given.
        target: the column of numbers (regression).
        columns: the recordings' columns to read, a channel each (default: all of them).
        length: rows kept from each recording (default: all, the same in every file).
        class_names: the classes, in label order (default: those found, sorted).
        delimiter: the cell separator of the table and the recordings.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        wanted = f"{file},{target or label}"
        raise DataError(f"no table at {path}: give a CSV of recording files ({wanted})")
    root = Path(folder).expanduser() if folder is not None else path.parent
    value = target or label
    if value is None:
        raise DataError("read_recordings: give label= (a column of classes) or target=")
    files: list[Path] = []
    cells: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        for name, role in ((file, "file"), (value, "target" if target else "label")):
            if name not in header:
                raise DataError(
                    f"{path}: no column {name!r} (given as {role}); its columns are {_list(header)}"
                )
        j_file, j_value = header.index(file), header.index(value)
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            at = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                raise DataError(f"{at}: {len(row)} cells, but the header has {len(header)}")
            name = row[j_file].strip()
            if not (root / name).is_file():
                raise DataError(f"{at}: no recording {name!r} in {root}")
            files.append(root / name)
            cells.append(row[j_value].strip())
            if target:
                try:
                    float(cells[-1])
                except ValueError:
                    raise DataError(
                        f"{at}: column {target!r}: {cells[-1]!r} is not a number"
                    ) from None
    if not files:
        raise DataError(f"{path} has a header but no rows")
    read = [read_recording(f, columns, length, delimiter) for f in files]
    features = _stack([r for r, _ in read], files, DataError)
    names = read[0][1]
    ids = encode_strings([f.name for f in files])
    if target:
        values = torch.tensor([float(c) for c in cells], dtype=torch.float32)
        arrays = Arrays(features=features, target=values, id=ids)
        arrays.channel_names = names  # type: ignore[attr-defined]
        return arrays
    classes = list(class_names) if class_names is not None else sorted(set(cells))
    unknown = sorted(set(cells) - set(classes))
    if unknown:
        raise DataError(f"{path}: classes {_list(unknown)} are not among {_list(classes)}")
    labels = torch.tensor([classes.index(c) for c in cells], dtype=torch.int64)
    arrays = Arrays(class_names=classes, features=features, label=labels, id=ids)
    arrays.channel_names = names  # type: ignore[attr-defined]
    return arrays


class RecordingsDataModule(ArrayDataModule):
    """Recordings named in a table (``read_recordings``): classification of each recording
    (``ClassificationExample``: ``features`` N x C x L, ``label``), or regression with
    ``target=`` (``RegressionExample``). One pool, split by ``val_size`` / ``test_size``
    (``stratify: label`` keeps the classes' shares). ``num_features`` is the recordings'
    length; ``channels`` their channels.

    Args:
        root: the table (``make train-<project> DATA=...`` sets it).
        folder: the folder its file names are relative to (default: the table's folder).
        file: the column of recording files.
        label: the column of classes.
        target: the column of numbers, for regression (instead of ``label``).
        columns: the recordings' columns to read, a channel each (default: all of them).
        length: rows kept from each recording (default: all, the same in every file).
        **kwargs: ArrayDataModule's (batch_size, val_size, test_size, stratify, standardize...).
    """

    name = "recordings"
    example_type = ClassificationExample
    provides = (*ArrayDataModule.provides, "channels", "channel_names")

    def __init__(
        self,
        root: str = "data/recordings/labels.csv",
        folder: str | None = None,
        file: str = "file",
        label: str = "label",
        target: str | None = None,
        columns: list[str] | None = None,
        length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.folder, self.file, self.label, self.target = (
            root,
            folder,
            file,
            label,
            target,
        )
        self.columns, self.length = columns, length
        self._channel_names: tuple[str, ...] | None = None
        if target is not None:
            self.example_type = RegressionExample  # type: ignore[misc]

    def load(self) -> Arrays:
        arrays = read_recordings(
            self.root,
            folder=self.folder,
            file=self.file,
            label=self.label,
            target=self.target,
            columns=self.columns,
            length=self.length,
        )
        self._channel_names = arrays.channel_names  # type: ignore[attr-defined]
        return arrays

    @property
    def channel_names(self) -> list[str]:
        """The recordings' columns read, one per channel."""
        if self._learned("channel_names") is not None:
            return list(self._learned("channel_names"))
        self._field("features", "channel_names")  # loads the data, which names them
        return list(self._channel_names or ())

    @property
    def channels(self) -> int:
        """The recordings' channels (columns read): what a model's first layer takes."""
        if self._learned("channels") is not None:
            return int(self._learned("channels"))
        return int(self._field("features", "channels").shape[1])

    def read_inputs(self, source: Any) -> Arrays:
        """New recordings without labels: a folder of them (every ``*.csv``, by name), a file,
        a list of files, or an array (C x L or N x C x L); files are read with the training's
        columns, each cut to its length."""
        if isinstance(source, Arrays):
            return source
        if isinstance(source, np.ndarray | Tensor):  # C x L or N x C x L, as read
            values = torch.as_tensor(np.asarray(source), dtype=torch.float32)
            values = values[None] if values.dim() == 2 else values
            want = (self.channels, self.num_features)
            if values.dim() != 3 or tuple(values.shape[1:]) != want:
                raise InputError(
                    f"an array of shape {tuple(values.shape)}: recordings are N x {want[0]} "
                    f"channels x {want[1]} rows"
                )
            return Arrays(features=values, id=torch.arange(len(values)))
        if isinstance(source, str | Path) and Path(source).is_dir():
            files = sorted(Path(source).glob("*.csv"))
            if not files:
                raise InputError(f"{source}: no *.csv recordings in this folder")
        elif isinstance(source, str | Path):
            files = [Path(source)]
        elif isinstance(source, Sequence) and all(isinstance(s, str | Path) for s in source):
            files = [Path(s) for s in source]
        else:
            raise InputError(
                f"{type(self).__name__} reads recordings: give a folder of CSV files, a file or "
                f"a list of files, not {type(source).__name__}"
            )
        columns, length = self.channel_names, self.num_features
        read = [read_recording(f, columns, length, error=InputError)[0] for f in files]
        features = _stack(read, files, InputError)
        return Arrays(features=features, id=encode_strings([f.name for f in files]))

    def made_up_inputs(self, n: int) -> np.ndarray:
        """``n`` recordings of noise of the training's shape (N x C x L): what ``export``
        traces and checks the model with when it is given no sample."""
        g = np.random.default_rng(0)
        return g.normal(size=(n, self.channels, self.num_features)).astype(np.float32)

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        """``labels.csv`` and 96 recordings of 3 channels over 40 rows: a sine of one of three
        frequencies (slow / fast / still) plus noise; a fifth each held out for validation and
        testing, stratified, in batches of 16."""
        write_recordings(folder, 96)
        return {
            "root": str(folder / "labels.csv"),
            "columns": ["ax", "ay", "az"],
            "val_size": 0.2,
            "test_size": 0.2,
            "stratify": "label",
            "batch_size": 16,
        }


def write_recordings(folder: Path, n: int, rows: int = 40, seed: int = 0) -> list[str]:
    """``n`` recordings ``rec000.csv``... (``t,ax,ay,az``) and ``labels.csv`` (``file,label``)
    in ``folder``: still (noise), slow (a sine of 1 cycle over the rows) or fast (4 cycles).
    Returns the labels, in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = {"still": 0.0, "slow": 1.0, "fast": 4.0}
    t = np.arange(rows) / rows
    labels = []
    with (folder / "labels.csv").open("w") as table:
        table.write("file,label\n")
        for i in range(n):
            kind = list(kinds)[i % 3]
            wave = np.sin(2 * np.pi * kinds[kind] * t + rng.uniform(0, 2 * np.pi))
            axes = [wave * a + rng.normal(0, 0.2, rows) for a in rng.uniform(0.5, 1.5, 3)]
            lines = ["t,ax,ay,az"] + [
                f"{t[r]:.3f}," + ",".join(f"{x[r]:.4f}" for x in axes) for r in range(rows)
            ]
            (folder / f"rec{i:03d}.csv").write_text("\n".join(lines) + "\n")
            table.write(f"rec{i:03d}.csv,{kind}\n")
            labels.append(kind)
    return labels
