"""The task's structs: core's, subclassed to add fields (real task: boxes, masks, ...)."""

import dataclasses
from typing import Self

from torch import Tensor

from litforge.structs import ClassificationExample, ClassificationPrediction, Loss


@dataclasses.dataclass
class ShapeExample(ClassificationExample):
    group: Tensor  # the extra field: the shape's group (round or angular) beside its label


@dataclasses.dataclass
class ShapePrediction(ClassificationPrediction):
    group_logits: Tensor  # beside the shape ``logits`` that the diagnostics read


@dataclasses.dataclass
class ShapeLoss(Loss):
    @classmethod
    def weighted(cls, shape: Tensor, group: Tensor, group_weight: float) -> Self:
        """Two named terms (logged as .../loss/shape and .../loss/group) and their total."""
        return cls(total=shape + group_weight * group, terms={"shape": shape, "group": group})
