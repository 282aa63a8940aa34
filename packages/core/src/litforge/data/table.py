"""Read a table (CSV or TSV, a header line first) into ``Arrays``: feature columns as floats,
a label column of class names as class ids, float targets, id columns kept as text for display,
a text column as padded token ids with their vocabulary, a column of tags (a set of labels per
row) as a multi-hot target.

    read_table("tumours.csv", label="diagnosis", ids="id")
      -> Arrays(features=float32 N x F, label=int64 N, id=text, cells=text), class_names, columns

Tables as people have them: a feature column may have empty cells, and may hold categories
(text such as a city or a plan) rather than numbers. Such a table needs statistics of its
training rows (medians, most frequent values, categories, scaling), which only exist after the
split: ``read_table`` then returns the cells without ``features``, with an unfitted
``TablePreprocessor`` as ``arrays.table``, and ``ArrayDataModule`` fits it on the training rows
and gives every split its ``features``. Every table also keeps its feature cells as the file has
them (field ``cells``), which the diagnostics' tables show. New rows for a trained model:
``read_table(path, ids=..., preprocess=<the fitted TablePreprocessor>)``.

A cell that cannot be used (text in a column of numbers, an infinite number, a missing label,
a row with too few or too many cells, a file that is not UTF-8) stops the read with a
``DataError`` that names the file, the line and the column, e.g. ``tumours.csv:14: column
'radius': 'abc' is not a number, in a column of numbers (...)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.data.tabular import MISSING, Encode, TablePreprocessor, encode_cells, parse_numbers
from litforge.data.text import Tokenize, Vocabulary
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
    tags: str | None = None,
    separator: str = " ",
    categorical: Sequence[str] = (),
    encode: Encode = "onehot",
    missing: Sequence[str] = MISSING,
    encoding: str = "utf-8-sig",
    preprocess: TablePreprocessor | None = None,
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
        features: the feature columns (-> field ``features``, float32 N x F), in this order;
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
        tags: a column of label sets (multi-label): each cell's tags, split by ``separator``
            (a space: any white space; an empty cell: no tag) -> field ``target`` (multi-hot
            int64 N x K), the tags (``class_names`` when given, else those found, sorted) as
            the class names. Not with ``label`` or ``target``.
        categorical: feature columns that hold categories even if they look like numbers (a
            zip code); a column of text is one anyway. A column of numbers with some text is
            an error, and so is a text column with a different value in every row (an id).
        encode: how categories reach the model: 'onehot' or 'index' (``TablePreprocessor``).
        missing: the cell texts that mean "empty" (default ``MISSING``: "", "N/A", "nan", ...).
        encoding: the file's text encoding (default UTF-8, with or without a byte-order mark;
            e.g. 'latin-1' for a file saved by older spreadsheet programs).
        preprocess: a fitted ``TablePreprocessor`` (a trained model's): its columns are the
            features, turned into ``features`` exactly as for training; no label needed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no table at {path} (a CSV or TSV file with a header line)")
    sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    raw = path.read_bytes()
    try:
        content = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        name = "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf-8") else encoding
        raise DataError(
            f"{path}:{line}: not {name} text (byte {raw[err.start]:#04x}): save the file as "
            "UTF-8, or give read_table its encoding (e.g. encoding='latin-1')"
        ) from None
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=sep)
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

    if tags and (label or target):
        raise DataError(f"{path}: give tags (a set of labels per row) or label / target, not both")
    id_columns = [ids] if isinstance(ids, str) else list(ids)
    target_columns = [target] if isinstance(target, str) else list(target or ())
    if preprocess is not None and features is None:
        features = preprocess.columns
    named = {
        "label": [label] if label else [],
        "target": target_columns,
        "ids": id_columns,
        "text": [text] if text else [],
        "tags": [tags] if tags else [],
        "features": list(features or ()),
        "categorical": list(categorical),
    }
    for role, names in named.items():
        for name in names:
            if name not in header:
                raise DataError(
                    f"{path}: no column {name!r} (given as {role}); its columns are {_list(header)}"
                )
    used = {*named["label"], *target_columns, *id_columns, *named["text"], *named["tags"]}
    feature_columns = (
        list(features) if features is not None else [h for h in header if h not in used]
    )

    def column(name: str) -> list[str]:
        j = header.index(name)
        return [row[j] for row in rows]

    def numbers(name: str, allow_empty: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
        """A column of numbers as float64 (NaN where a cell is in ``allow_empty``) and its
        mask of empty cells; any other cell that is not a finite number stops the read."""
        cells = column(name)
        values, empty = parse_numbers(cells, allow_empty)
        for i in np.flatnonzero(~empty & ~np.isfinite(values)):
            cell = cells[i]
            problem = (
                "missing value"
                if not cell
                else f"{cell!r} is not finite"
                if np.isinf(values[i])
                else f"{cell!r} is not a number; give this column as ids, label or text if it "
                "is not a feature"
            )
            raise DataError(f"{path}:{lines[i]}: column {name!r}: {problem}")
        return values, empty

    fields: dict[str, torch.Tensor] = {}
    columns: dict[str, Sequence[str]] = {}
    table: TablePreprocessor | None = None
    if feature_columns:
        cells = {name: column(name) for name in feature_columns}
        if preprocess is not None:
            for name in preprocess.numeric:
                numbers(name, preprocess.missing)
            table = preprocess
        else:
            kinds, has_empty = set(categorical), False
            for name in [c for c in feature_columns if c not in kinds]:
                values, empty = parse_numbers(cells[name], missing)
                if _is_numbers(path, name, cells[name], lines, values, empty):
                    has_empty |= bool(numbers(name, missing)[1].any())
                else:
                    kinds.add(name)
            table = TablePreprocessor(
                feature_columns, sorted(kinds), encode=encode, missing=missing
            )
            if not kinds and not has_empty:  # numbers only, no empty cell: ready as they are
                values = np.stack([numbers(c)[0] for c in feature_columns], 1)
                fields["features"] = torch.from_numpy(values).float()
                columns["features"] = feature_columns
        if table.fitted is not None:
            fields["features"] = table.transform(cells)
            columns["features"] = table.feature_names
        fields["cells"], columns["cells"] = encode_cells(cells), feature_columns
    classes: tuple[str, ...] | None = None
    if label:
        cells_ = column(label)
        for cell, line in zip(cells_, lines):
            if not cell:
                raise DataError(f"{path}:{line}: column {label!r}: missing label")
        classes = tuple(class_names) if class_names is not None else _sorted_names(set(cells_))
        if class_names is None and len(classes) < 2:
            raise DataError(
                f"{path}: column {label!r} holds one class ({classes[0]!r}) in all its "
                f"{len(rows)} rows: a classifier needs two or more; is it the right column?"
            )
        index = {name: i for i, name in enumerate(classes)}
        for cell, line in zip(cells_, lines):
            if cell not in index:
                raise DataError(
                    f"{path}:{line}: column {label!r}: {cell!r} is not one of the classes "
                    f"{_list(classes)}"
                )
        fields["label"] = torch.tensor([index[c] for c in cells_], dtype=torch.int64)
    if target_columns:
        values = torch.from_numpy(np.stack([numbers(c)[0] for c in target_columns], 1)).float()
        fields["target"] = values[:, 0] if isinstance(target, str) else values
        if not isinstance(target, str):
            columns["target"] = target_columns
    if tags:
        where = [f"{path}:{line}: column {tags!r}" for line in lines]
        fields["target"], classes = multi_hot(column(tags), separator, class_names, where)
    if id_columns:
        joined = ["/".join(parts) for parts in zip(*(column(c) for c in id_columns))]
        fields["id"] = encode_cells({"id": joined})[:, :, 0]  # as encode_strings, vectorised
    if text:
        texts = column(text)
        vocabulary = vocabulary or Vocabulary.build(texts, tokenize)
        fields["tokens"], fields["lengths"] = vocabulary.encode_batch(texts, length)
    if not fields or set(fields) <= {"id"}:
        raise DataError(
            f"{path}: nothing to learn from: name a label, target, text or feature columns "
            f"(its columns are {_list(header)})"
        )
    arrays = Arrays(classes, vocabulary=vocabulary if text else None, columns=columns, **fields)
    arrays.table = table
    return arrays


def _is_numbers(
    path: Path,
    name: str,
    cells: list[str],
    lines: list[int],
    values: np.ndarray,
    empty: np.ndarray,
) -> bool:
    """Whether a feature column holds numbers (True) or categories (False); a column of numbers
    with some text in it, or a text column with a different value in every row, is an error."""
    text = ~empty & np.isnan(values)
    n_text, n_filled = int(text.sum()), int((~empty).sum())
    if n_text == 0:
        return True
    if n_filled - n_text >= n_text:  # mostly numbers: the text is a mistake
        i = int(text.argmax())
        raise DataError(
            f"{path}:{lines[i]}: column {name!r}: {cells[i]!r} is not a number, in a column of "
            f"numbers ({n_filled - n_text} of {n_filled}); correct it, or give it in categorical"
        )
    filled = [c for c, e in zip(cells, empty) if not e]
    if len(filled) >= 3 and len(set(filled)) == len(filled):
        raise DataError(
            f"{path}: column {name!r} holds a different text in each of its {len(filled)} rows, "
            "as an id does: give it as ids (shown, not learned from), or in categorical"
        )
    return False


def split_tags(cell: str, separator: str = " ") -> list[str]:
    """The tags of one cell: split by ``separator`` (a space: any run of white space), each
    stripped, empty ones dropped (an empty cell: no tags)."""
    parts = cell.split() if separator.strip() == "" else cell.split(separator)
    return [p.strip() for p in parts if p.strip()]


def multi_hot(
    cells: Sequence[str],
    separator: str = " ",
    label_names: Sequence[str] | None = None,
    where: Sequence[str] | None = None,
) -> tuple[Tensor, tuple[str, ...]]:
    """Cells of tags -> (multi-hot int64 N x K, the K label names).

    ``label_names`` fixes the labels and their order (a tag not among them is an error naming
    ``where[i]``, e.g. ``"tags.csv:14"``, of its cell); default: every tag found, sorted. A tag
    twice in a cell counts once."""
    sets = [split_tags(c, separator) for c in cells]
    names = (
        tuple(label_names)
        if label_names is not None
        else tuple(sorted({t for s in sets for t in s}))
    )
    if not names:
        raise DataError(
            f"{where[0].split(':')[0] if where else 'the tags'}: no tag in any row: give the "
            f"column of tags, and the separator (now {separator!r})"
        )
    index = {name: k for k, name in enumerate(names)}
    target = torch.zeros(len(sets), len(names), dtype=torch.int64)
    for i, tags in enumerate(sets):
        for tag in tags:
            if tag not in index:
                at = where[i] if where else f"row {i + 1}"
                raise DataError(f"{at}: tag {tag!r} is not one of the labels {_list(names)}")
            target[i, index[tag]] = 1
    return target, names


def tag_sets(target: Tensor, label_names: Sequence[str]) -> list[list[str]]:
    """Multi-hot rows (N x K, any numeric dtype, nonzero: present) -> the label names of each."""
    rows = (target.detach().cpu() != 0).tolist()
    return [[name for name, on in zip(label_names, row) if on] for row in rows]


def _sorted_names(names: set[str]) -> tuple[str, ...]:
    """Class names in a stable order: numerically if every one is an integer, else by text."""
    try:
        return tuple(sorted(names, key=int))
    except ValueError:
        return tuple(sorted(names))


def _list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
