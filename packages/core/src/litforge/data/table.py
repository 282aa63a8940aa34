"""Read a table (CSV or TSV, a header line first) into ``Arrays``: named feature columns as
floats, a label column of class names as class ids, float targets, id columns kept as text for
display, a text column as padded token ids with their vocabulary.

    read_table("tumours.csv", label="diagnosis", ids="id")
      -> Arrays(features=float32 N x F, label=int64 N, id=text), class_names, columns

A cell that cannot be used (a missing value, a non-number in a number column, a row with too
few or too many cells) stops the read with a ``DataError`` that names the file, the line and
the column, e.g. ``tumours.csv:14: column 'radius': 'n/a' is not a number``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from litforge.data.arrays import Arrays
from litforge.data.text import Tokenize, Vocabulary, encode_strings
from litforge.errors import DataError


def read_table(
    path: str | Path,
    *,
    label: str | None = None,
    target: str | Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    ids: str | Sequence[str] = (),
    text: str | None = None,
    tokenize: Tokenize = "chars",
    vocabulary: Vocabulary | None = None,
    length: int | None = None,
    class_names: Sequence[str] | None = None,
    delimiter: str | None = None,
) -> Arrays:
    """The rows of a CSV / TSV file (a header line first) as ``Arrays``, one item per row.

    Args:
        path: the file; ``.tsv`` / ``.tab`` files are tab-separated, others comma-separated
            (``delimiter`` overrides).
        label: a column of class names (any text: ``"benign"``, ``"3"``) -> field ``label``
            (int64 N), indexing ``class_names`` (default: the names found, sorted; numerically
            when every name is an integer).
        target: a float column (-> field ``target``, float32 N) or a list of them (N x T: several
            outputs, even a list of one).
        features: the float columns of field ``features`` (float32 N x F), in this order;
            default: every column not named by another argument. None left: no ``features``.
        ids: one or more columns kept as text for display (field ``id``; several joined by
            ``/``): the diagnostics name a row by them.
        text: a column of token strings -> fields ``tokens`` (int64 N x L, right-padded with 0)
            and ``lengths`` (int64 N), with ``vocabulary`` (built from this file unless given:
            give a test file its training file's).
        tokenize: how ``text`` splits into tokens: 'chars' or 'words'.
        length: pad or cut ``tokens`` to this many (default: the longest text).
        class_names: the classes, in label order (default: those found in ``label``).
        delimiter: the cell separator (default: from the file's suffix).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no table at {path} (a CSV or TSV file with a header line)")
    sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    check_utf8(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"{path} is empty: it needs a header line, then one line per row")
        header = [h.strip() for h in header]
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: {len(row)} cells, but the header has "
                    f"{len(header)} ({_list(header)}); check the separator ({sep!r}) and quoting"
                )
            rows.append([cell.strip() for cell in row])
            lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{path} has a header but no rows")

    id_columns = [ids] if isinstance(ids, str) else list(ids)
    target_columns = [target] if isinstance(target, str) else list(target or ())
    named = {
        "label": [label] if label else [],
        "target": target_columns,
        "ids": id_columns,
        "text": [text] if text else [],
        "features": list(features or ()),
    }
    for role, names in named.items():
        for name in names:
            if name not in header:
                raise DataError(
                    f"{path}: no column {name!r} (given as {role}); its columns are {_list(header)}"
                )
    used = {*named["label"], *target_columns, *id_columns, *named["text"]}
    feature_columns = (
        list(features) if features is not None else [h for h in header if h not in used]
    )

    def column(name: str) -> list[str]:
        j = header.index(name)
        return [row[j] for row in rows]

    def numbers(name: str) -> torch.Tensor:
        values = []
        for cell, line in zip(column(name), lines):
            if not cell:
                raise DataError(f"{path}:{line}: column {name!r}: missing value")
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}:{line}: column {name!r}: {cell!r} is not a number; give this "
                    "column as ids, label or text if it is not a feature"
                ) from None
            if not math.isfinite(value):
                raise DataError(f"{path}:{line}: column {name!r}: {cell!r} is not finite")
            values.append(value)
        return torch.tensor(values, dtype=torch.float64)

    fields: dict[str, torch.Tensor] = {}
    columns: dict[str, Sequence[str]] = {}
    if feature_columns:
        fields["features"] = torch.stack([numbers(c) for c in feature_columns], 1).float()
        columns["features"] = feature_columns
    classes: tuple[str, ...] | None = None
    if label:
        cells = column(label)
        for cell, line in zip(cells, lines):
            if not cell:
                raise DataError(f"{path}:{line}: column {label!r}: missing label")
        classes = tuple(class_names) if class_names is not None else _sorted_names(set(cells))
        index = {name: i for i, name in enumerate(classes)}
        for cell, line in zip(cells, lines):
            if cell not in index:
                raise DataError(
                    f"{path}:{line}: column {label!r}: {cell!r} is not one of the classes "
                    f"{_list(classes)}"
                )
        fields["label"] = torch.tensor([index[c] for c in cells], dtype=torch.int64)
    if target_columns:
        values = torch.stack([numbers(c) for c in target_columns], 1).float()
        fields["target"] = values[:, 0] if isinstance(target, str) else values
        if not isinstance(target, str):
            columns["target"] = target_columns
    if id_columns:
        joined = ["/".join(parts) for parts in zip(*(column(c) for c in id_columns))]
        fields["id"] = encode_strings(joined)
    if text:
        texts = column(text)
        vocabulary = vocabulary or Vocabulary.build(texts, tokenize)
        fields["tokens"], fields["lengths"] = vocabulary.encode_batch(texts, length)
    if not fields or set(fields) <= {"id"}:
        raise DataError(
            f"{path}: nothing to learn from: name a label, target, text or feature columns "
            f"(its columns are {_list(header)})"
        )
    return Arrays(classes, vocabulary=vocabulary if text else None, columns=columns, **fields)


def _sorted_names(names: set[str]) -> tuple[str, ...]:
    """Class names in a stable order: numerically if every one is an integer, else by text."""
    try:
        return tuple(sorted(names, key=int))
    except ValueError:
        return tuple(sorted(names))


def _list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_utf8(path: Path) -> None:
    """A table must be UTF-8: DataError naming the file, the line and the byte that is not (a
    Latin-1 or Windows-1252 export), instead of a UnicodeDecodeError that names neither."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: byte 0x{raw[err.start]:02x} is not UTF-8 (a Latin-1 or Windows "
            "export?): save the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None
