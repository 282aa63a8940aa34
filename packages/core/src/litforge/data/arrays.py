"""Datasets held in memory: named tensors of any dtype and shape with a common first dim.

``Arrays`` holds float feature rows, uint8 images, integer token sequences, dense targets such as
masks: whatever a task has, one tensor per field, item ``i`` of every field belonging together.
Field names are the names of the task's ``Example`` fields, so a batch is built without glue.
``ImageArrays`` is the image layer's constructor: N x C x H x W images (uint8 pixels, or floats)
and int64 labels.

Beside the fields, what makes them readable: ``class_names`` (the text of ``label``),
``vocabulary`` (the text of ``tokens``), ``columns`` (the names along a field's last dim, e.g.
a table's feature columns), ``table`` (a table's ``TablePreprocessor``: how its cells become
``features``, fitted on the training rows by ``ArrayDataModule``). An ``id`` field (text as ``encode_strings`` gives it, or integers)
names each item in the diagnostics.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Self

import torch
from torch import Tensor

from litforge.data.text import Vocabulary

if TYPE_CHECKING:
    from litforge.data.tabular import TablePreprocessor


class Arrays(Mapping[str, Tensor]):
    """A task's data in memory: named tensors of any dtype and shape with a common first dim
    (the items), e.g. float feature rows, uint8 images, int64 tokens, masks.

    Args: ``class_names`` (None when the task has no classes) and the fields, as keywords:
    ``Arrays(features=x, target=y)``. Every field must have the same length N.

    Keyword only: ``vocabulary`` (a ``Vocabulary``: the text of the ``tokens`` field) and
    ``columns`` (names along the last dim of a field: ``{"features": ("age", "size")}``).
    ``read_table`` also sets ``table``: its ``TablePreprocessor``.
    """

    table: TablePreprocessor | None = None

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        *,
        vocabulary: Vocabulary | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
        **fields: Tensor,
    ) -> None:
        if not fields:
            raise ValueError("Arrays needs at least one field, e.g. Arrays(features=x, target=y)")
        lengths = {name: (t.shape[0] if t.dim() else None) for name, t in fields.items()}
        if None in lengths.values() or len(set(lengths.values())) != 1:
            raise ValueError(f"every field must have the same length on its first dim: {lengths}")
        self.fields: dict[str, Tensor] = dict(fields)
        self.class_names = tuple(class_names) if class_names is not None else None
        self.vocabulary = vocabulary
        self.columns = {k: tuple(v) for k, v in (columns or {}).items()}
        for name, names in self.columns.items():
            field = self.fields.get(name)
            if field is None or field.dim() < 2 or field.shape[-1] != len(names):
                shape = None if field is None else tuple(field.shape)
                raise ValueError(
                    f"columns[{name!r}] names {len(names)} columns, but the field {name!r} is "
                    f"{shape}: it needs a last dim of that size"
                )

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"no field {name!r}; the fields are {list(self.fields)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:  # the number of items, not of fields
        return next(iter(self.fields.values())).shape[0]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={t.dtype}{list(t.shape)}" for k, t in self.fields.items())
        return f"{type(self).__name__}({len(self)} items: {shapes})"

    def replace(self, **fields: Tensor) -> Self:
        """A copy with some fields replaced (same type and class names)."""
        out = copy.copy(self)
        out.fields = {**self.fields, **fields}
        return out

    def subset(self, index: Tensor | slice) -> Self:
        return self.replace(**{k: v[index] for k, v in self.fields.items()})

    def to(self, device: torch.device | str) -> Self:
        return self.replace(**{k: v.to(device) for k, v in self.fields.items()})

    def split(self, n_holdout: int, seed: int = 0) -> tuple[Self, Self]:
        """A seeded random split: (the rest, ``n_holdout`` held-out items)."""
        if not 0 <= n_holdout < len(self):
            raise ValueError(f"n_holdout={n_holdout} must lie in [0, {len(self)})")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(perm[n_holdout:]), self.subset(perm[:n_holdout])


class ImageArrays(Arrays):
    """``images``: N x C x H x W, uint8 pixels (0-255) or floats (by convention in [0, 1]; shown
    clamped to it). ``labels``: int64, N (None for a set without labels, e.g. images with masks
    or float targets: pass those as keywords). Fields: ``image``, ``label``, and any other."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        class_names: Sequence[str] | None = None,
        **fields: Tensor,
    ) -> None:
        if not (images.dtype == torch.uint8 or images.is_floating_point()) or images.dim() != 4:
            raise ValueError(
                "images must be N x C x H x W, uint8 or float, got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        if labels is not None:
            if labels.shape != (images.shape[0],):
                raise ValueError(
                    f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
                )
            fields = {"label": labels.long(), **fields}
        super().__init__(class_names, image=images, **fields)  # type: ignore[arg-type]

    @property
    def images(self) -> Tensor:
        return self.fields["image"]

    @property
    def labels(self) -> Tensor:
        return self["label"]
