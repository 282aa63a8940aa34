"""ArrayDataModule: any task's data held in memory, batched on the device by DeviceLoader.

A task subclasses it, sets ``name`` and ``example_type``, and implements ``load()``: one pool of
items (split here into train / val / test) or its own (train, test). Everything else is here:
the split (random or stratified, seeded), a table's preprocessing (``TablePreprocessor``:
empty cells, categories, scaling) and standardisation of float fields, both with statistics of
the training part only, device placement, DDP sharding, and the whole ``TaskData`` contract
(``litforge.tasks.contracts``): dataset names, which splits exist, class names, samples, and how to
show examples (a table of their fields; ``ImageDataModule`` draws pictures instead).

Values the model needs from the data (``num_classes``, ``num_features``, ``target_shape``,
``vocab_size``, ``sequence_length``; the image layer adds ``in_channels``, ...) are properties
here, listed in ``provides``; the CLI links each one the model's constructor takes by the same
name.

What the data taught travels in every checkpoint: ``state_dict()`` returns it as plain values
(the class path, class names, standardisation statistics, feature columns, vocabulary, the values
in ``provides``; the image layer adds image size, channels, mean and std), Lightning stores it
beside the weights, and ``load_state_dict(state)`` restores it without reading any data (the
sets, once loaded, win: a resumed fit reads its data as before). A subclass with learned state
of its own overrides both and calls ``super()``.

New inputs, for prediction (``litforge.load``, ``python -m <project> predict --data.predict``),
go through two hooks that a new kind implements for its inputs and outputs:

    read_inputs(source) -> Arrays    raw inputs without labels (a file, a folder, rows, arrays)
                                     as the model's input fields, as ``load()`` would give them,
                                     and an ``id`` field naming each item (file name, id, row)
    readable(inputs, prediction)     one dict per item: its id, then the prediction in the
                                     user's terms (class name and probabilities, values in the
                                     target's units, a mask as an array)

The base reads table rows (a CSV / TSV with the training columns, dicts, a float array) and
text lines (with a vocabulary), and makes classification and regression readable;
``ImageDataModule`` reads image files and arrays and makes masks and images readable.
``input_loader(inputs)`` batches them as the model's ``Example`` (its label fields None).

Tests need no data set: ``write_test_data(folder)`` writes a tiny sample in the module's own
input format and returns the arguments that read it (``litforge.testing.data_args``).
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.data.device import DeviceLoader, Fields, Transform
from litforge.data.split import size_problem, split_pool
from litforge.data.tabular import TablePreprocessor, decode_cells
from litforge.data.text import Vocabulary, decode_strings, encode_strings
from litforge.diagnostics.media import Table, View, fmt
from litforge.errors import DataError, InputError, SettingError
from litforge.tasks.contracts import Split
from litforge.tasks.model import is_plain, save_plain_hyperparameters
from litforge.tasks.structs import Example, MultiLabelPrediction, Prediction

Loaded: TypeAlias = Arrays | tuple[Arrays, Arrays | None]
ALL_CLASSES = 20  # readable(): every class's probability up to this many classes, else top k
TOP_K = 5
TEXT_SUFFIXES = (".csv", ".tsv", ".tab")
# A checkpoint's data state, for every ArrayDataModule built while it is set (``restoring``).
_RESTORING: ContextVar[dict[str, Any] | None] = ContextVar("_RESTORING", default=None)


@contextmanager
def restoring(state: dict[str, Any] | None) -> Iterator[None]:
    """Every ArrayDataModule built inside restores ``state`` (``load_state_dict``) at once, so
    that the values the model takes from the data (``provides``) come from a checkpoint, not
    from reading the training data (``predict --data.predict``, ``litforge.load``)."""
    token = _RESTORING.set(state)
    try:
        yield
    finally:
        _RESTORING.reset(token)


class ArrayDataModule(pl.LightningDataModule):
    """A task's data held in memory: ``load()`` it, split it, batch it on the device.

    Args:
        batch_size: training batch size (per process).
        eval_batch_size: batch size of validation, test and predict.
        val_size: items held out for validation from the pool ``load()`` returns (its first
            part when it returns (train, test)), a fraction of that whole pool (0.1) or a count
            (500); 0: no validation; 1 is refused (a fraction is below 1, a count of one
            item cannot choose a checkpoint).
        test_size: when ``load()`` returns one pool, the items held out for testing (a
            fraction of the whole pool, or a count); ignored when it returns its own test set.
        stratify: an integer field (e.g. label) whose proportions every split keeps; null:
            random.
        standardize: float fields to standardise per feature (features, target, ...) with the
            mean and std of the training part.
        seed: the split, the data order and the augmentation depend on (seed, epoch) only.
    """

    name: str = "data"  # metrics are logged as <stage>/<name>/<metric>
    example_type: ClassVar[type[Example]] = Example  # built from the fields by make_example
    # What the model may take from the data, by name (linked by the CLI): see the properties.
    provides: ClassVar[tuple[str, ...]] = (
        "num_classes",
        "num_features",
        "target_shape",
        "vocab_size",
        "sequence_length",
        "num_labels",
        "label_names",
        "category_sizes",
    )

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        standardize: tuple[str, ...] = (),
        seed: int = 0,
    ) -> None:
        super().__init__()
        save_plain_hyperparameters(self, inspect.currentframe())  # rebuilt from a checkpoint
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:  # the loaders would fail later, after the run folder is written
                raise SettingError(f"--data.{key}={value}: a batch must hold at least 1 item")
        for key, size in (("val_size", val_size), ("test_size", test_size)):
            problem = size_problem(size, f"--data.{key}")
            if problem:  # before the run folder is written
                raise SettingError(problem)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.test_size, self.stratify = val_size, test_size, stratify
        self.standardize, self.seed = tuple(standardize), seed
        self.stats: dict[str, tuple[Tensor, Tensor]] = {}  # field -> (mean, std), train part
        self.table: TablePreprocessor | None = None  # a table's preprocessing, train part
        self._splits: dict[str, Arrays | None] | None = None
        self._device: torch.device | None = None  # where the sets are, once set up
        self._restored: dict[str, Any] | None = None  # load_state_dict's, while no set is loaded
        self.new_inputs: Arrays | None = None  # what predict_dataloader gives, when set
        self._from_checkpoint = _RESTORING.get() is not None  # built to predict new inputs
        if self._from_checkpoint:
            self.load_state_dict(_RESTORING.get())  # type: ignore[arg-type]

    # ------------------------------------------------------------------ what a task implements
    def load(self) -> Loaded:
        """One pool of items (split by val_size / test_size), or (train, test); test may be None."""
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def make_example(self, index: Tensor, fields: Fields) -> Example:
        """The task's Example for one batch: by default ``example_type(index=..., **fields)``."""
        return self.example_type(index=index, **fields)  # type: ignore[call-arg]

    def transform(self, split: Split) -> Transform | None:
        """The batch transform of a split (normalise, augment); None: the fields as stored."""
        return None

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        """Writes a tiny data set in this module's own input format under ``folder`` (a CSV, an
        image folder, ...) and returns the data arguments that read it (``{"root": ...}``), so
        that tests run on any machine, without the real data. Default: nothing to write (data
        made in memory). ``litforge.testing.data_args`` turns the result into ``--data.*``."""
        return {}

    # ------------------------------------------------------------------ the sets
    @property
    def splits(self) -> dict[str, Arrays | None]:
        """train / val / test, loaded and split on first use (on the CPU until ``setup``)."""
        if self._splits is None:
            self._splits = self._load_and_split()
        return self._splits

    def _load_and_split(self) -> dict[str, Arrays | None]:
        loaded = self.load()
        pool, test = (loaded, None) if isinstance(loaded, Arrays) else loaded
        if len(pool) == 0:
            raise DataError(f"{type(self).__name__}: the training set is empty")
        test_size = self.test_size if test is None else 0
        try:
            train, val, held_out = split_pool(
                pool, self.val_size, test_size, self.stratify, self.seed
            )
        except (ValueError, KeyError) as err:
            raise DataError(f"{type(self).__name__}: {err}") from err
        test = test if test is not None else held_out
        if train.table is not None and "cells" in train:
            # fitted on the training rows (the sets win over a restored state, as below)
            self.table = train.table.fit(decode_cells(train["cells"], train.columns["cells"]))
            if self.table.encode == "index" and "features" in self.standardize:
                raise SettingError(
                    "standardize: [features] would scale the category indices of a table read "
                    "with encode='index'; its numbers are scaled already: leave features out"
                )
            train, val, test = (self._preprocessed(a) for a in (train, val, test))
        for field in self.standardize:
            values = train[field]
            if not values.dtype.is_floating_point:
                raise ValueError(f"standardize: field {field!r} is {values.dtype}, not float")
            self.stats[field] = (values.mean(0), values.std(0).clamp_min(1e-8))
        sets = {"train": train, "val": val, "test": test}
        return {k: self._standardized(v) for k, v in sets.items()}

    def _preprocessed(self, arrays: Arrays | None) -> Arrays | None:
        """A table's ``features`` from its cells, through the (fitted) ``self.table``."""
        if arrays is None or self.table is None:
            return arrays
        names = arrays.columns.get("cells", ())
        lacking = [c for c in self.table.columns if c not in names]
        if lacking:
            raise DataError(
                f"{type(self).__name__}: a table lacks the feature columns {lacking} of the "
                "training rows; give every table the same columns"
            )
        try:
            features = self.table.transform(decode_cells(arrays["cells"], names))
        except ValueError as err:
            raise DataError(f"{type(self).__name__}: {err}") from None
        out = arrays.replace(features=features)
        out.columns = {**arrays.columns, "features": self.table.feature_names}
        return out

    def _standardized(self, arrays: Arrays | None) -> Arrays | None:
        if arrays is None or not self.stats:
            return arrays
        return arrays.replace(
            **{f: (arrays[f] - mean) / std for f, (mean, std) in self.stats.items()}
        )

    def setup(self, stage: str) -> None:
        """Puts the sets on the trainer's device (the CPU without a trainer), once per device."""
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if stage == "predict" and self.new_inputs is not None:
            return  # the training data is not read (input_loader moves the inputs)
        if self._device != device:
            self._splits = {
                k: v.to(device) if v is not None else None for k, v in self.splits.items()
            }
            self._device = device
        if stage == "fit" and self.trainer is not None and self.splits["val"] is None:
            # No validation set: tell the trainer, which otherwise warns that an empty
            # validation loader has zero length, a warning the user can do nothing about.
            self.trainer.limit_val_batches = 0

    # ------------------------------------------------------------------ values for the model
    @property
    def class_names(self) -> tuple[str, ...] | None:
        if self._restored is not None and self._splits is None:  # from a checkpoint
            names = self._restored.get("class_names")
            return tuple(names) if names is not None else None
        return self.splits["train"].class_names  # type: ignore[union-attr]

    @property
    def num_classes(self) -> int:
        """The number of classes (from the class names of the training set)."""
        if self.class_names is None:
            raise ValueError(f"{type(self).__name__}: the data has no class names")
        if len(self.class_names) < 2:  # TorchMetrics would refuse it in 60 lines
            raise DataError(
                f"{type(self).__name__}: the training data holds {len(self.class_names)} class "
                f"({', '.join(map(str, self.class_names))}): a classifier needs at least 2"
            )
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        """The size of the last dim of the ``features`` field."""
        if self._learned("num_features") is not None:
            return int(self._learned("num_features"))
        return int(self._field("features", "num_features").shape[-1])

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The names of the ``features`` columns (a table's header), if known."""
        if self._restored is not None and self._splits is None:
            names = self._restored.get("columns", {}).get("features")
            return tuple(names) if names is not None else None
        return self._train.columns.get("features")

    @property
    def category_sizes(self) -> tuple[int, ...]:
        """A table read with ``encode='index'``: each category column's number of indices (its
        training categories, plus 0 for a value never seen), for an ``nn.Embedding`` each; the
        category indices are the last ``len(category_sizes)`` columns of ``features``."""
        if self._learned("category_sizes") is not None:
            return tuple(self._learned("category_sizes"))
        self.splits  # noqa: B018 (fits the table's preprocessing)
        sizes = self.table.category_sizes if self.table is not None else ()
        if not sizes:
            raise DataError(
                f"{type(self).__name__}.category_sizes: the data has no category indices (a "
                "table with category columns, read with encode='index'): remove category_sizes "
                "from the model's arguments, or read the table so"
            )
        return sizes

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of one item's ``target``: ``()``, ``(T,)`` or ``(C, H, W)``."""
        if self._learned("target_shape") is not None:
            return tuple(self._learned("target_shape"))
        return tuple(self._field("target", "target_shape").shape[1:])

    @property
    def num_labels(self) -> int:
        """The number of labels K of a multi-hot ``target`` (N x K: multi-label data)."""
        if self._learned("num_labels") is not None:
            return int(self._learned("num_labels"))
        target = self._field("target", "num_labels")
        if target.dim() != 2 or target.is_floating_point():
            raise DataError(
                f"{type(self).__name__}.num_labels reads a multi-hot target (integer N x K), but "
                f"the target is {target.dtype} {tuple(target.shape)}: remove num_labels from "
                "the model's arguments, or give the data a multi-hot target"
            )
        return int(target.shape[1])

    @property
    def label_names(self) -> tuple[str, ...]:
        """The names of the labels of a multi-hot ``target``: the class names (their positions
        when the data names none)."""
        if self._learned("label_names") is not None:
            return tuple(self._learned("label_names"))
        names = self.class_names
        return tuple(names) if names is not None else tuple(map(str, range(self.num_labels)))

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The text of the ``tokens`` field (``Arrays(vocabulary=...)``), if any."""
        if self._restored is not None and self._splits is None:
            saved = self._restored.get("vocabulary")
            return Vocabulary(saved["tokens"][2:], saved["tokenize"]) if saved else None
        return self._train.vocabulary

    @property
    def vocab_size(self) -> int:
        """The number of token ids (padding and unknown included): an embedding's size."""
        if self.vocabulary is not None:
            return len(self.vocabulary)
        if self._learned("vocab_size") is not None:
            return int(self._learned("vocab_size"))
        return int(self._field("tokens", "vocab_size").max()) + 1

    @property
    def sequence_length(self) -> int:
        """The length L of the (padded) ``tokens`` field, N x L."""
        if self._learned("sequence_length") is not None:
            return int(self._learned("sequence_length"))
        return int(self._field("tokens", "sequence_length").shape[1])

    @property
    def _train(self) -> Arrays:
        return self.splits["train"]  # type: ignore[return-value]

    def _field(self, name: str, wanted_by: str) -> Tensor:
        if name not in self._train:
            raise DataError(
                f"{type(self).__name__}.{wanted_by} reads the {name!r} field, but the data's "
                f"fields are {list(self._train)}: remove {wanted_by} from the model's arguments, "
                f"or give the data a {name!r} field"
            )
        return self._train[name]

    # ------------------------------------------------------------------ the TaskData contract
    def dataset_names(self, stage: str) -> list[str]:
        return [self.name]

    def has_split(self, split: Split) -> bool:
        return self.splits.get(split) is not None

    def sample(self, split: Split, n: int) -> Example:
        arrays = self.splits[split]
        if arrays is None:
            raise ValueError(f"{type(self).__name__} has no {split} set")
        index = torch.arange(min(n, len(arrays)), device=next(iter(arrays.values())).device)
        fields = {k: v[index] for k, v in arrays.items()}
        transform = self.transform("test")  # as the model sees it, without augmentation
        return self.make_example(index, transform(fields, index) if transform else fields)

    def show(self, example: Example, prediction: Prediction) -> View:
        """A table: the index, then every example and prediction field, one row per example. A
        table's row shows its feature cells as the file has them, by column name, after its id
        (in place of the ``features`` the model saw). An example whose input is a float field
        of channels over positions (N x C x L: sensor readings, a spectrum per channel) is
        drawn instead: one line plot per example, a line per channel, captioned with the other
        fields (``signal_field``)."""
        signal = self.signal_field(example)
        if signal is not None:
            return self._show_signals(example, prediction, signal)
        return Table(self._columns(example, prediction))

    def signal_field(self, example: Example) -> str | None:
        """The example's float field of channels over positions (N x C x L, at most 16
        channels) that ``show`` draws as lines; None without one."""
        for name, values in example.tensors().items():
            lines = values.dim() == 3 and values.shape[1] <= 16 and values.shape[2] > 1
            if name not in ("index", "cells") and values.is_floating_point() and lines:
                return name
        return None

    def _show_signals(self, example: Example, prediction: Prediction, field: str) -> View:
        from litforge.diagnostics.media import line_plots  # matplotlib, when drawn

        values = getattr(example, field).detach().float().cpu()
        names = list(getattr(self, "channel_names", None) or ())  # a data module's own names
        if len(names) != values.shape[1]:
            names = [f"{field}[{c}]" for c in range(values.shape[1])]
        table = self._columns(example, prediction, skip={field})
        facts, captions = [], []
        for i in range(len(example)):
            row = {
                k: v[i]
                for k, v in table.items()
                if k != "index" and not (isinstance(v[i], str) and "..." in v[i])
            }  # the short values: numbers, class names, ids (Extremes adds the id itself)
            facts.append(row)
            # one value a field (several, such as logits, stay in the facts); a class as
            # "true -> predicted"
            one = {k: v for k, v in row.items() if k != "id" and ", " not in str(v)}
            parts = []
            if "label" in one and "pred.pred" in one:
                parts.append(f"{one.pop('label')} -> {one.pop('pred.pred')}")
            parts += [f"{k} {v}" for k, v in one.items()]
            captions.append("\n".join([f"#{table['index'][i]}", ", ".join(parts)]).strip())
        plots = [dict(zip(names, item)) for item in values]
        return line_plots(plots, captions, facts, legend=len(names) > 1)

    def _columns(
        self, example: Example, prediction: Prediction, skip: set[str] | None = None
    ) -> dict[str, list[Any]]:
        """``show``'s table: {column: one value per example}."""
        columns: dict[str, list[Any]] = {"index": example.index.tolist()}
        cells = self.source_cells(example)
        for prefix, struct in (("", example), ("pred.", prediction)):
            for name, values in struct.tensors().items():
                if name in ("index", "cells") or (cells and name == "features" and not prefix):
                    continue
                if not prefix and skip and name in skip:
                    continue
                if values.dim() > 0 and len(values) == len(example):
                    columns[prefix + name] = [self.describe(name, v) for v in values.cpu()]
            if not prefix and cells:  # after the id: the cells, renamed if a name is taken
                head: dict[str, list[Any]] = {
                    k: columns.pop(k) for k in ("index", "id") if k in columns
                }
                taken = {*head, *columns}
                raw = {(f"{k} (cell)" if k in taken else k): v for k, v in cells.items()}
                columns = {**head, **raw, **columns}
        return columns

    def source_cells(self, example: Example) -> dict[str, list[str]]:
        """A table's rows as the file has them: ``{column: [cell text, ...]}`` of the
        example's ``cells`` field (empty cells as ""); {} without one."""
        cells = getattr(example, "cells", None)
        names = self._train.columns.get("cells") if self._splits is not None else None
        if names is None and self.table is not None:
            names = tuple(self.table.columns)
        if cells is None or names is None or cells.shape[-1] != len(names):
            return {}
        return decode_cells(cells.cpu(), names)

    def describe(self, field: str, value: Tensor) -> str | float | int:
        """One field of one example, as a table cell: a number, a class name for ``label`` and
        ``pred``, the text of an ``id`` and of ``tokens`` (with a vocabulary), the first values
        of a longer tensor; a multi-hot ``target`` / ``pred`` row (multi-label) as its label
        names, space-separated ("(none)": the empty set). Override it to show a field otherwise."""
        if field == "id" and value.dtype == torch.uint8 and value.dim() == 1:
            return decode_strings(value)[0]
        if field == "tokens" and self.vocabulary is not None:
            return self.vocabulary.decode(value)
        names = self.class_names
        if field in ("target", "pred") and is_multi_hot(value, names):
            return " ".join(n for n, on in zip(names, value.tolist()) if on) or "(none)"  # type: ignore[arg-type]
        if value.numel() == 1:
            item = value.item()
            names = self.class_names
            if field in ("label", "pred") and names is not None and isinstance(item, int):
                return names[item] if 0 <= item < len(names) else item
            return (round(item, 4) or 0.0) if isinstance(item, float) else item  # never -0.0
        flat = value.flatten()
        shown = ", ".join(fmt(v) for v in flat[:6].tolist())  # 3 significant digits, no -0
        if flat.numel() <= 6:
            return shown
        size = " x ".join(map(str, value.shape)) if value.dim() > 1 else f"{flat.numel()} values"
        return f"{shown}, ... ({size})"

    # ------------------------------------------------------------------ what the data taught
    def state_dict(self) -> dict[str, Any]:
        """What the data taught the model, as plain values (Lightning stores it in every
        checkpoint): the module's ``class_path``, ``class_names``, the standardisation
        ``stats`` ({field: {mean, std}}), the ``columns`` of the fields, the ``vocabulary``
        (tokens and how text splits) and the value of each name in ``provides`` that the data
        has. Read from the training set, loaded if it is not yet."""
        train = self._train if self._splits is not None or self._restored is None else None
        vocabulary = self.vocabulary
        state: dict[str, Any] = {
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "stats": {f: {"mean": m.cpu(), "std": s.cpu()} for f, (m, s) in self.stats.items()},
            "columns": (
                {k: list(v) for k, v in train.columns.items()}
                if train is not None
                else dict((self._restored or {}).get("columns", {}))
            ),
            "vocabulary": (
                {"tokens": list(vocabulary.tokens), "tokenize": vocabulary.tokenize_mode}
                if vocabulary is not None
                else None
            ),
            # a table's preprocessing (TablePreprocessor: medians, scaling, categories)
            "table": (
                self.table.state_dict()
                if self.table is not None and self.table.fitted is not None
                else None
            ),
        }
        for name in self.provides:
            try:
                value = getattr(self, name)
            except (DataError, ValueError, KeyError, AttributeError):
                continue  # a value this data does not have (no classes, no tokens, ...)
            value = list(value) if isinstance(value, tuple) else value
            if is_plain(value):
                state[name] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what the data taught (``state_dict``'s) without reading any data: class
        names, statistics, vocabulary and the values in ``provides`` then come from it, as long
        as no set is loaded (a resumed fit loads its sets and computes them again). A table's
        preprocessing is rebuilt, and treats new rows as it did the training rows."""
        self._restored = dict(state)
        if self._splits is None:
            self.stats = {
                f: (torch.as_tensor(v["mean"]), torch.as_tensor(v["std"]))
                for f, v in state.get("stats", {}).items()
            }
            if state.get("table"):
                self.table = TablePreprocessor.from_state(state["table"])

    def _learned(self, name: str) -> Any:
        """A value restored by ``load_state_dict``, while no set is loaded; else None."""
        if self._restored is None or self._splits is not None:
            return None
        return self._restored.get(name)

    # ------------------------------------------------------------------ new inputs
    def read_inputs(self, source: Any) -> Arrays:
        """New inputs without labels as ``Arrays`` of the model's input fields (as ``load()``
        gives them, before standardisation) and an ``id`` field naming each one.

        Here: with a vocabulary, text (a file of one sequence a line, or a list of strings),
        tokenized as in training and padded or cut to its length; else table rows: a CSV / TSV
        file with the training's feature columns (any other column is kept as the id), a list
        of dicts, or a float array N x F. A kind with other inputs overrides it."""
        if isinstance(source, Arrays):
            return source
        if self.vocabulary is not None:
            return self._read_texts(source)
        if isinstance(source, str | Path):
            return self._read_csv(Path(source))
        if isinstance(source, Sequence) and source and isinstance(source[0], Mapping):
            return self._read_rows(source)
        if isinstance(source, np.ndarray | Tensor):
            values = torch.as_tensor(np.asarray(source), dtype=torch.float32)
            values = values[None] if values.dim() == 1 else values
            self._check_width(values, "the array")
            return Arrays(features=values, id=torch.arange(len(values)))
        raise InputError(
            f"{type(self).__name__} cannot read {type(source).__name__} inputs: give a CSV "
            "file, a list of dicts (column -> value) or a float array N x F"
        )

    def _read_texts(self, source: Any) -> Arrays:
        vocabulary = self.vocabulary
        assert vocabulary is not None
        if isinstance(source, str | Path):
            path = Path(source)
            if path.suffix.lower() in TEXT_SUFFIXES:
                raise InputError(
                    f"{path}: give the sequences as a text file, one a line (not a table)"
                )
            try:
                texts = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise InputError(f"cannot read {path}: {err}") from err
            ids = [str(i) for i, t in enumerate(texts, 1) if t.strip()]  # line numbers
            texts = [t.strip() for t in texts if t.strip()]
            if not texts:
                raise InputError(f"{path} holds no line of text")
        elif isinstance(source, Sequence) and all(isinstance(t, str) for t in source):
            texts, ids = list(source), [str(i) for i in range(len(source))]
        else:
            raise InputError("give text inputs as a file of lines or a list of strings")
        length = self._learned("sequence_length") if self._splits is None else self.sequence_length
        tokens, lengths = vocabulary.encode_batch(texts, length)
        return Arrays(tokens=tokens, lengths=lengths, id=encode_strings(ids))

    def _read_csv(self, path: Path) -> Arrays:
        names = self._feature_columns(path)
        if not path.is_file():
            raise InputError(f"no file at {path}: give a CSV file with the columns {names}")
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f, delimiter=sep))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise InputError(f"cannot read {path}: {err}") from err
        return self._read_rows(rows, str(path), first_line=2)

    def _feature_columns(self, where: str | Path) -> list[str]:
        if self.table is not None:  # a table's own columns, before its preprocessing
            return list(self.table.columns)
        names = self.feature_names
        if names is None:
            raise InputError(
                f"{where}: {type(self).__name__} knows no feature column names (its data was "
                "not a table): give the inputs as a float array N x F"
            )
        return list(names)

    def _read_rows(
        self, rows: Sequence[Mapping[str, Any]], where: str = "rows", first_line: int = 0
    ) -> Arrays:
        names = self._feature_columns(where)
        if not rows:
            raise InputError(f"{where}: no rows")
        if self.table is not None and self.table.fitted is not None:
            return self._read_table_rows(rows, where, first_line)
        values, ids = [], []
        for i, row in enumerate(rows, first_line):
            place = f"{where}:{i}" if first_line else f"{where}[{i}]"
            missing = [n for n in names if n not in row]
            if missing:
                shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
                raise InputError(
                    f"{place}: no column {missing[0]!r}; the model reads {len(names)} columns "
                    f"({shown})"
                )
            cells = []
            for name in names:
                try:
                    cells.append(float(row[name]))
                except (TypeError, ValueError):
                    raise InputError(
                        f"{place}: column {name!r}: {row[name]!r} is not a number"
                    ) from None
            values.append(cells)
            others = [str(v) for k, v in row.items() if k not in names and k is not None]
            ids.append("/".join(others) if others else str(i))
        return Arrays(
            features=torch.tensor(values, dtype=torch.float32),
            id=encode_strings(ids),
            columns={"features": names},
        )

    def _read_table_rows(
        self, rows: Sequence[Mapping[str, Any]], where: str, first_line: int
    ) -> Arrays:
        """Rows of a table (text cells, empty ones included) through the training's
        preprocessing (``self.table``): ``features`` as the training rows had them, and the
        other columns as the ``id``."""
        table = self.table
        assert table is not None
        cells: dict[str, list[str]] = {name: [] for name in table.columns}
        ids = []
        for i, row in enumerate(rows, first_line):
            place = f"{where}:{i}" if first_line else f"{where}[{i}]"
            lacking = [n for n in table.columns if n not in row]
            if lacking:
                raise InputError(
                    f"{place}: no column {lacking[0]!r}; the model reads the columns "
                    f"{table.columns}"
                )
            for name in table.columns:
                value = row[name]
                cells[name].append("" if value is None else str(value).strip())
            for name in table.numeric:
                text = cells[name][-1]
                if text in table.missing:
                    continue  # filled as in training
                try:
                    number = float(text)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    raise InputError(f"{place}: column {name!r}: {text!r} is not a number")
            others = [str(v) for k, v in row.items() if k not in cells and k is not None]
            ids.append("/".join(others) if others else str(i))
        return Arrays(  # the model's input only: no cells (an export's inputs are the fields)
            features=table.transform(cells),
            id=encode_strings(ids),
            columns={"features": table.feature_names},
        )

    def _check_width(self, values: Tensor, where: str) -> None:
        wanted = self.num_features
        if values.dim() != 2 or values.shape[1] != wanted:
            raise InputError(
                f"{where} is {tuple(values.shape)}: the model reads rows of {wanted} features"
            )

    def input_loader(self, inputs: Arrays, device: torch.device | str = "cpu") -> DeviceLoader:
        """Batches of ``inputs`` (``read_inputs``'s) as the model's ``Example``, standardised
        and normalised as the test set is, in order, on ``device``; fields the inputs lack (the
        label, the target) are None."""
        wanted = {f.name for f in dataclasses.fields(self.example_type)} - {"index"}
        fields = {k: v for k, v in inputs.items() if k in wanted}
        for field, (mean, std) in self.stats.items():
            if field in fields:
                fields[field] = (fields[field] - mean) / std
        missing = dict.fromkeys(wanted - set(fields))  # e.g. label: None

        def build(index: Tensor, batch: Mapping[str, Tensor]) -> Example:
            return self.make_example(index, {**missing, **batch})

        return DeviceLoader(
            Arrays(**fields).to(torch.device(device)),
            build,
            batch_size=self.eval_batch_size,
            transform=self.transform("test"),
        )

    def readable(self, inputs: Arrays, prediction: Prediction) -> list[dict[str, Any]]:
        """One dict per item of ``inputs``: its ``id``, then, for class probabilities
        (N x K), the predicted class name, its probability and every class's (``p(<name>)``;
        the top 5 beyond 20 classes); for a set of labels (``MultiLabelPrediction``), the
        predicted set, its label names separated by spaces ("": none), and each label's
        probability up to 20 labels; for values (N or N x T), the prediction in the target's
        own units (standardisation undone). A kind with other outputs overrides it."""
        rows: list[dict[str, Any]] = [{"id": name} for name in self.item_names(inputs)]
        probs = getattr(prediction, "probs", None)
        value = getattr(prediction, "value", None)
        if isinstance(prediction, MultiLabelPrediction):  # a set of labels: names, then each p
            names = list(self.label_names)
            probs = prediction.probs.detach().float().cpu()
            chosen = prediction.pred.detach().cpu().tolist()
            for row, p, on in zip(rows, probs, chosen):
                row["prediction"] = " ".join(n for n, yes in zip(names, on) if yes)
                if len(names) <= ALL_CLASSES:
                    row.update({f"p({n})": float(q) for n, q in zip(names, p)})
        elif isinstance(probs, Tensor) and probs.dim() == 2:
            names = list(self.class_names or map(str, range(probs.shape[1])))
            probs = probs.detach().float().cpu()
            top_p, top_i = probs.topk(min(TOP_K, probs.shape[1]), dim=1)
            for row, p, tp, ti in zip(rows, probs, top_p, top_i):
                row["prediction"], row["probability"] = names[int(ti[0])], float(tp[0])
                if len(names) <= ALL_CLASSES:
                    row.update({f"p({n})": float(q) for n, q in zip(names, p)})
                else:
                    for k, (q, j) in enumerate(zip(tp[1:], ti[1:]), 2):
                        row[f"prediction_{k}"], row[f"probability_{k}"] = names[int(j)], float(q)
        elif isinstance(value, Tensor) and value.dim() <= 2:
            value = self.in_target_units(value.detach().float().cpu())
            columns = (self._restored or {}).get("columns", {}).get("target")
            if columns is None and self._splits is not None:
                columns = self._train.columns.get("target")
            for row, v in zip(rows, value):
                if v.dim() == 0:
                    row["prediction"] = float(v)
                else:
                    names = columns or [str(j) for j in range(len(v))]
                    row.update({f"prediction({n})": float(x) for n, x in zip(names, v)})
        return rows

    def in_target_units(self, value: Tensor) -> Tensor:
        """Predicted targets in the target's own units: the standardisation of ``target``
        (``standardize``) undone."""
        if "target" not in self.stats:
            return value
        mean, std = self.stats["target"]
        return value * std.to(value.device) + mean.to(value.device)

    @staticmethod
    def item_names(inputs: Arrays) -> list[str]:
        """The ``id`` of each item of ``inputs`` as text (its position when it has none)."""
        ids = inputs.get("id")
        if ids is None:
            return [str(i) for i in range(len(inputs))]
        if ids.dtype == torch.uint8 and ids.dim() == 2:
            return decode_strings(ids)
        return [str(v) for v in ids.tolist()]

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: Split, train: bool) -> Any:
        arrays = self.splits[split]
        if arrays is None:
            return []
        trainer = self.trainer
        return DeviceLoader(
            arrays,
            self.make_example,
            batch_size=self.batch_size if train else self.eval_batch_size,
            # overfit_batches (--run.debug=overfit): the same first batches every epoch, as
            # Lightning makes of a DataLoader's shuffling
            shuffle=train and not getattr(trainer, "overfit_batches", 0),
            drop_last=train,
            transform=self.transform(split),
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )

    def train_dataloader(self) -> Any:
        loader = self._loader("train", train=True)
        if len(loader) == 0:
            raise DataError(
                f"{type(self).__name__}: batch_size={self.batch_size} is larger than this "
                f"process's share of the training set ({len(self.splits['train'] or ())} items): "
                "no batch"
            )
        return loader

    def val_dataloader(self) -> Any:
        return self._loader("val", train=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> Any:
        """The new inputs when set (``new_inputs``: ``python -m <project> predict
        --data.predict``), else the test set."""
        if self.new_inputs is not None:
            device = self.trainer.strategy.root_device if self.trainer else "cpu"
            return self.input_loader(self.new_inputs, device)
        return self._loader("test", train=False)


def is_multi_hot(value: Tensor, names: Any) -> bool:
    """Whether one example's value is a multi-hot row over the labels ``names``: integer 0/1, K
    values for K names."""
    return (
        names is not None
        and value.dim() == 1
        and value.numel() == len(names)
        and not value.is_floating_point()
        and bool(((value == 0) | (value == 1)).all())
    )
