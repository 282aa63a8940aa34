"""What flows through a model: typed, batched dataclasses.

An ``Example`` is what the data gives, a ``Prediction`` what the model returns, a ``Loss`` what
``compute_loss`` returns. All are batches: every tensor field has the batch on its first dim.
A task overrides a struct by subclassing it and adding fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import Tensor

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, read once per class (``dataclasses.fields`` builds its tuple
    anew at every call, a few microseconds at every step)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


@dataclasses.dataclass
class Struct:
    """A batch of named tensors. Non-tensor fields (class names, ...) are shared by the batch.

    ``derived`` names properties computed from the fields (``probs`` from ``logits``) that are
    worth saving with the fields: ``tensors()`` returns both, and ``predict`` saves them.
    """

    derived: ClassVar[tuple[str, ...]] = ()

    def _tensor_fields(self) -> dict[str, Tensor]:
        return {
            name: v
            for name in _field_names(type(self))
            if isinstance(v := getattr(self, name), Tensor)
        }

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor field, then every ``derived`` property."""
        return {**self._tensor_fields(), **{name: getattr(self, name) for name in self.derived}}

    def __len__(self) -> int:
        for value in self._tensor_fields().values():
            if value.dim() > 0:
                return value.shape[0]
        raise TypeError(f"{type(self).__name__} holds no batched tensor")

    def _map(self, fn: Any) -> Self:
        return dataclasses.replace(self, **{k: fn(v) for k, v in self._tensor_fields().items()})

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> Self:
        """Index or slice the batch; an int keeps a batch of one."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index] if t.dim() > 0 else t)

    def to(self, *args: Any, **kwargs: Any) -> Self:
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Self:
        return self._map(lambda t: t.detach())

    def cpu(self) -> Self:
        return self.to("cpu")

    @classmethod
    def collate(cls, items: Sequence[Self]) -> Self:
        """Joins structs (single items or batches) into one batch along the first dim."""
        if not items:
            raise ValueError(f"cannot collate an empty list of {cls.__name__}")
        first = items[0]
        values: dict[str, Any] = {}
        for f in dataclasses.fields(first):
            v = getattr(first, f.name)
            if isinstance(v, Tensor):
                parts = [getattr(it, f.name) for it in items]
                values[f.name] = torch.cat([p if p.dim() > 0 else p[None] for p in parts])
            else:
                values[f.name] = v
        return type(first)(**values)


@dataclasses.dataclass
class Example(Struct):
    """Base for what the data yields. ``index`` is each item's position in its dataset: it keeps
    diagnostics exact when a distributed sampler repeats items. ``id`` (optional, keyword only)
    is each item's own name for display: an integer (N) or text (uint8 N x L, see
    ``encode_strings``), e.g. a table's id column; the diagnostics' tables and captions show it.
    ``cells`` (optional, keyword only): a table row's feature cells as the file has them (uint8
    N x L x C, see ``read_table``), which the diagnostics' tables show by column name.
    """

    index: Tensor
    _: dataclasses.KW_ONLY
    id: Tensor | None = None
    cells: Tensor | None = None


@dataclasses.dataclass
class Prediction(Struct):
    """Base for what the model returns."""


@dataclasses.dataclass
class Loss(Struct):
    """Named loss terms and their total. ``total`` is what is optimised."""

    total: Tensor
    terms: dict[str, Tensor] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return 1

    def items(self) -> dict[str, Tensor]:
        """Every term and the total, for logging."""
        return {**self.terms, "total": self.total}

    def detach(self) -> Self:
        return dataclasses.replace(
            self, total=self.total.detach(), terms={k: v.detach() for k, v in self.terms.items()}
        )


# ---------------------------------------------------------------------- the kinds of task
# The input fields of the kinds' examples are keyword only and None when the data does not give
# them (typed as Tensors, which they are whenever the data gives them).
@dataclasses.dataclass
class ClassificationExample(Example):
    """A class label (int64, N) for any input: ``ClassificationExample(index=i, image=x,
    label=y)``, or ``features=`` / ``tokens=`` instead of ``image=``.

    The inputs are keyword only; the data gives one of them, the others stay None:
    ``image`` (float, normalised, N x C x H x W: the image layer's), ``features`` (float, any
    shape per item: a table's rows N x F; channels over positions N x C x L, such as sensor
    readings, which the diagnostics draw as lines), ``tokens`` (int64 token ids, N x L, padded)
    with ``lengths`` (int64 N:
    the real lengths; ``sequence_mask(lengths, L)`` is the mask of real tokens). A task with
    another input subclasses it and adds its own field.
    """

    image: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    features: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    tokens: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    lengths: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    label: Tensor


@dataclasses.dataclass
class ClassificationPrediction(Prediction):
    """Class logits (N x C); everything else derives from them."""

    logits: Tensor
    derived: ClassVar[tuple[str, ...]] = ("probs", "pred", "entropy")

    @property
    def probs(self) -> Tensor:
        return self.logits.float().softmax(dim=-1)

    @property
    def pred(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    @property
    def entropy(self) -> Tensor:
        """Categorical entropy of the softmax, divided by log C: 0 = certain, 1 = uniform."""
        return normalized_entropy(self.logits, dim=-1)

    def p_true(self, label: Tensor) -> Tensor:
        """Probability given to the true class."""
        return self.probs.gather(-1, label.long()[:, None])[:, 0]


@dataclasses.dataclass
class RegressionExample(Example):
    """Float targets of any shape (N; N x T for several outputs; N x C x H x W for an image)
    for any input: ``RegressionExample(index=i, features=x, target=y)``, or ``image=`` /
    ``tokens=`` instead of ``features=``.

    The inputs are keyword only; the data gives one of them, the others stay None (as in
    ``ClassificationExample``). A task with another input subclasses it and adds its own field.
    """

    features: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    image: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    tokens: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    lengths: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    target: Tensor


@dataclasses.dataclass
class RegressionPrediction(Prediction):
    """The predicted targets, shaped like ``example.target``."""

    value: Tensor


@dataclasses.dataclass
class SegmentationExample(Example):
    """An image (float, normalised, N x C x H x W) and its class per pixel (int64, N x H x W)."""

    image: Tensor
    mask: Tensor


@dataclasses.dataclass
class SegmentationPrediction(Prediction):
    """Class logits per pixel, N x K x H x W."""

    logits: Tensor
    derived: ClassVar[tuple[str, ...]] = ("pred",)

    @property
    def probs(self) -> Tensor:
        return self.logits.float().softmax(dim=1)

    @property
    def pred(self) -> Tensor:
        """The predicted mask, N x H x W."""
        return self.logits.argmax(dim=1)


@dataclasses.dataclass
class MultiLabelExample(Example):
    """A set of labels per example (tags), as a multi-hot ``target`` (int64 0/1, N x K: 1 where
    the label is present; a row of zeros is an empty set) for any input:
    ``MultiLabelExample(index=i, image=x, target=y)``, or ``features=`` / ``tokens=``.

    The inputs are keyword only; the data gives one of them, the others stay None (as in
    ``ClassificationExample``). The label names are the data's ``class_names``.
    """

    image: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    features: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    tokens: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    lengths: Tensor = dataclasses.field(default=None, kw_only=True)  # type: ignore[assignment]
    target: Tensor


@dataclasses.dataclass
class MultiLabelPrediction(Prediction):
    """A logit per label (N x K), each label decided on its own: ``probs`` are their sigmoids,
    ``pred`` the predicted set (int64 0/1, N x K: the labels whose probability exceeds
    ``threshold``). ``MultiLabelClassifier`` sets ``threshold`` to its own on every prediction."""

    logits: Tensor
    threshold: float = dataclasses.field(default=0.5, kw_only=True)
    derived: ClassVar[tuple[str, ...]] = ("probs", "pred")

    @property
    def probs(self) -> Tensor:
        return self.logits.float().sigmoid()

    @property
    def pred(self) -> Tensor:
        return (self.probs > self.threshold).long()


def normalized_entropy(logits: Tensor, dim: int) -> Tensor:
    """Entropy of softmax(logits) along ``dim``, divided by log C: 0 = certain, 1 = uniform."""
    logp = F.log_softmax(logits.float(), dim=dim)
    return -(logp.exp() * logp).sum(dim=dim) / math.log(logits.shape[dim])
