"""ArrayDataModule: any task's data held in memory, batched on the device by DeviceLoader.

A task subclasses it, sets ``name`` and ``example_type``, and implements ``load()``: one pool of
items (split here into train / val / test) or its own (train, test). Everything else is here:
the split (random or stratified, seeded), standardisation of float fields with statistics of
the training part, device placement, DDP sharding, and the whole ``TaskData`` contract
(``litforge.tasks.contracts``): dataset names, which splits exist, class names, samples, and how to
show examples (a table of their fields; ``ImageDataModule`` draws pictures instead).

Values the model needs from the data (``num_classes``, ``num_features``, ``target_shape``,
``vocab_size``, ``sequence_length``; the image layer adds ``in_channels``, ...) are properties
here, listed in ``provides``; the CLI links each one the model's constructor takes by the same
name.

Tests need no data set: ``write_test_data(folder)`` writes a tiny sample in the module's own
input format and returns the arguments that read it (``litforge.testing.data_args``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.data.arrays import Arrays
from litforge.data.device import DeviceLoader, Fields, Transform
from litforge.data.split import size_problem, split_pool
from litforge.data.text import Vocabulary, decode_strings
from litforge.diagnostics.media import Table, View, fmt
from litforge.errors import DataError, SettingError
from litforge.tasks.contracts import Split
from litforge.tasks.structs import Example, Prediction

Loaded: TypeAlias = Arrays | tuple[Arrays, Arrays | None]


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
        self._splits: dict[str, Arrays | None] | None = None
        self._device: torch.device | None = None  # where the sets are, once set up

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
        for field in self.standardize:
            values = train[field]
            if not values.dtype.is_floating_point:
                raise ValueError(f"standardize: field {field!r} is {values.dtype}, not float")
            self.stats[field] = (values.mean(0), values.std(0).clamp_min(1e-8))
        sets = {"train": train, "val": val, "test": test}
        return {k: self._standardized(v) for k, v in sets.items()}

    def _standardized(self, arrays: Arrays | None) -> Arrays | None:
        if arrays is None or not self.stats:
            return arrays
        return arrays.replace(
            **{f: (arrays[f] - mean) / std for f, (mean, std) in self.stats.items()}
        )

    def setup(self, stage: str) -> None:
        """Puts the sets on the trainer's device (the CPU without a trainer), once per device."""
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
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
        return int(self._field("features", "num_features").shape[-1])

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The names of the ``features`` columns (a table's header), if known."""
        return self._train.columns.get("features")

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of one item's ``target``: ``()``, ``(T,)`` or ``(C, H, W)``."""
        return tuple(self._field("target", "target_shape").shape[1:])

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The text of the ``tokens`` field (``Arrays(vocabulary=...)``), if any."""
        return self._train.vocabulary

    @property
    def vocab_size(self) -> int:
        """The number of token ids (padding and unknown included): an embedding's size."""
        if self.vocabulary is not None:
            return len(self.vocabulary)
        return int(self._field("tokens", "vocab_size").max()) + 1

    @property
    def sequence_length(self) -> int:
        """The length L of the (padded) ``tokens`` field, N x L."""
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
        """A table: the index, then every example and prediction field, one row per example."""
        columns: dict[str, list[Any]] = {"index": example.index.tolist()}
        for prefix, struct in (("", example), ("pred.", prediction)):
            for name, values in struct.tensors().items():
                if name != "index" and values.dim() > 0 and len(values) == len(example):
                    columns[prefix + name] = [self.describe(name, v) for v in values.cpu()]
        return Table(columns)

    def describe(self, field: str, value: Tensor) -> str | float | int:
        """One field of one example, as a table cell: a number, a class name for ``label`` and
        ``pred``, the text of an ``id`` and of ``tokens`` (with a vocabulary), the first values
        of a longer tensor. Override it to show a field otherwise."""
        if field == "id" and value.dtype == torch.uint8 and value.dim() == 1:
            return decode_strings(value)[0]
        if field == "tokens" and self.vocabulary is not None:
            return self.vocabulary.decode(value)
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
        return self._loader("test", train=False)
