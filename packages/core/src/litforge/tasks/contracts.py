"""The contracts between data, model, callbacks and CLI, written once and checked at run start.

``TaskData`` is what a data module gives the rest of a run. ``litforge.data.ArrayDataModule``
(and ``ImageDataModule`` on it) provide all of it; a hand-written LightningDataModule must add
the missing pieces, and a run that lacks one stops before its first step with a message that
names it. Diagnostics state the fields they read with ``require_fields`` and check them on a
probe batch at fit start (``probe``), so a mismatch fails in the first second, not after an
epoch.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.errors import LitforgeError
from litforge.tasks.structs import Example, Prediction

if TYPE_CHECKING:
    from litforge.diagnostics.media import View

Split = Literal["train", "val", "test"]


class ContractError(LitforgeError, TypeError):
    """A data module, model or struct lacks what another part of the run relies on."""


@runtime_checkable
class TaskData(Protocol):
    """What every data module provides to the model, the callbacks and the CLI."""

    @property
    def class_names(self) -> Sequence[str] | None:
        """The names of the classes, indexed by label; None when the task has no classes."""

    def dataset_names(self, stage: str) -> Sequence[str]:
        """The names of the datasets of a stage (train, val, test, predict), one per dataloader:
        metrics are logged as ``<stage>/<name>/<metric>``."""

    def has_split(self, split: Split) -> bool:
        """Whether there is a ``val`` or ``test`` set (fit validates, and tests at its end)."""

    def sample(self, split: Split, n: int) -> Example:
        """The first ``n`` examples of a split as the model sees them (no augmentation), on the
        data's device: what the diagnostics probe the model with at fit start."""

    def show(self, example: Example, prediction: Prediction) -> View:
        """How to show examples and the model's predictions for them: ``media.Images`` (a grid
        of captioned pictures) or ``media.Table`` (rows of named values)."""


TASK_DATA_MEMBERS = ("class_names", "dataset_names", "has_split", "sample", "show")


def check_data(datamodule: Any) -> TaskData:
    """The data module, checked against ``TaskData``; a ContractError names what is missing."""
    missing = [name for name in TASK_DATA_MEMBERS if not hasattr(datamodule, name)]
    if missing or not isinstance(datamodule, TaskData):
        raise ContractError(
            f"the data module {type(datamodule).__name__} lacks {', '.join(missing)}: "
            "every data module must provide class_names, dataset_names(stage), has_split(split), "
            "sample(split, n) and show(example, prediction) (litforge.tasks.contracts.TaskData); "
            "subclass litforge.data.ArrayDataModule or ImageDataModule to get them all"
        )
    return datamodule


def task_data(trainer: pl.Trainer | None) -> TaskData | None:
    """The trainer's data module, checked; None when the run was given bare dataloaders."""
    datamodule = trainer.datamodule if trainer is not None else None  # type: ignore[attr-defined]
    return None if datamodule is None else check_data(datamodule)


def dataset_names(trainer: pl.Trainer | None, stage: str) -> list[str]:
    """The data module's names for a stage's datasets; ``["data"]`` without a data module."""
    data = task_data(trainer)
    return list(data.dataset_names(stage)) if data is not None else ["data"]


def require_fields(
    who: str,
    example: Example,
    prediction: Prediction,
    example_fields: Sequence[str] = (),
    prediction_fields: Sequence[str] = (),
) -> None:
    """Raises a ContractError naming ``who``, the structs it got and the fields it needs, when
    ``example`` or ``prediction`` lacks one of them."""
    lacking = [f"example.{n}" for n in example_fields if not hasattr(example, n)]
    lacking += [f"prediction.{n}" for n in prediction_fields if not hasattr(prediction, n)]
    if lacking:
        needs = [f"example.{n}" for n in example_fields] + [
            f"prediction.{n}" for n in prediction_fields
        ]
        raise ContractError(
            f"{who} needs {', '.join(needs)}, but the model's {type(prediction).__name__} "
            f"({_fields(prediction)}) for a {type(example).__name__} ({_fields(example)}) lacks "
            f"{', '.join(lacking)}; remove {who} from trainer.callbacks, or give the structs "
            "those fields"
        )


def _fields(struct: Any) -> str:
    names = [f.name for f in dataclasses.fields(struct)] + list(getattr(struct, "derived", ()))
    return ", ".join(names) or "no fields"


_PROBES: weakref.WeakKeyDictionary[pl.Trainer, tuple[Example, Prediction]] = (
    weakref.WeakKeyDictionary()
)


def probe(
    trainer: pl.Trainer, pl_module: pl.LightningModule, stages: Sequence[str]
) -> tuple[Example, Prediction] | None:
    """Two examples of the first of ``stages`` that has data, and the model's prediction for
    them (eval mode, no gradient, the model's mode restored), computed once per run. None when
    the run has no data module to take them from."""
    data = task_data(trainer)
    if data is None:
        return None
    if trainer not in _PROBES:
        split: Split = next(
            (s for s in ("val", "test") if s in stages and data.has_split(s)),  # type: ignore[misc]
            "train",
        )
        example = data.sample(split, 2)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad(), trainer.precision_plugin.forward_context():
                prediction = pl_module(example)
        finally:
            pl_module.train(was_training)
        _PROBES[trainer] = (example, prediction)
    return _PROBES[trainer]


def per_example(who: str, values: Tensor, example: Example) -> Tensor:
    """Checks that ``values`` holds one number per example."""
    if values.shape != (len(example),):
        raise ContractError(
            f"{who}: the per-example error must have shape ({len(example)},) for a batch of "
            f"{len(example)}, got {tuple(values.shape)}; BaseModel.example_error must return "
            "one number per example"
        )
    return values
