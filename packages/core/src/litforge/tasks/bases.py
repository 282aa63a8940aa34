"""Ready model bases for three kinds of task: a task subclass writes its network and forward.

    Classifier   ClassificationPrediction(logits) for example.label, whatever the input;
                 cross-entropy; accuracy (+ macro, top-5); best checkpoint by accuracy
    Regressor    RegressionPrediction(value) for example.target of any shape; MSE; MSE, MAE and
                 R^2 (targets N or N x T) or PSNR (images and other dense targets); best by MSE;
                 a target the data standardised reported in its own units
    Segmenter    SegmentationPrediction(logits N x K x H x W) for example.mask; cross-entropy
                 per pixel; mean IoU and pixel accuracy; best by IoU

Each computes the per-example loss in one vectorised call, so the diagnostics' ranking costs
nothing extra. ``num_classes``, ``target_shape`` (and whatever else the data provides, by name)
are linked from the data module by the CLI, also through a subclass's ``**kwargs``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection

from litforge.tasks.contracts import task_data
from litforge.tasks.metrics import classification_metrics, regression_metrics, segmentation_metrics
from litforge.tasks.model import BaseModel, S
from litforge.tasks.structs import (
    ClassificationExample,
    ClassificationPrediction,
    Loss,
    RegressionExample,
    RegressionPrediction,
    SegmentationExample,
    SegmentationPrediction,
)


class PerExampleLossModel(BaseModel):
    """A model whose loss is the mean of a per-example loss: ``compute_loss`` and the error the
    diagnostics rank by (``example_error``) both come from ``per_example_loss``."""

    loss_name: ClassVar[str] = "loss"  # logged as <stage>/<dataset>/loss/<loss_name>

    def per_example_loss(self, example: Any, prediction: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement per_example_loss")

    def compute_loss(self, example: Any, prediction: Any) -> Loss:  # type: ignore[override]
        value = self.per_example_loss(example, prediction).mean()
        return Loss(total=value, terms={self.loss_name: value})

    def example_error(self, example: Any, prediction: Any) -> Tensor:  # type: ignore[override]
        return self.per_example_loss(example, prediction).detach()


class Classifier(PerExampleLossModel):
    """A subclass builds its network and returns ``ClassificationPrediction(logits)``.

    Args:
        num_classes: the number of classes (linked from the data module).
        label_smoothing: of the cross-entropy.
    """

    loss_name = "cross_entropy"
    best_metric = "accuracy"
    train_metrics = ("accuracy", "accuracy_top5")  # macro accuracy counts with a host sync

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def per_example_loss(
        self, example: ClassificationExample, prediction: ClassificationPrediction
    ) -> Tensor:
        return F.cross_entropy(
            prediction.logits.float(),
            example.label,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )

    def build_metrics(self) -> MetricCollection:
        return classification_metrics(self.num_classes)


class Regressor(PerExampleLossModel):
    """Mean squared error on ``example.target``, of any shape. A subclass returns
    ``RegressionPrediction(value)`` shaped like the target.

    A target the data module standardises for training (``standardize: [target]``) is learned
    in standard deviations, as the loss says, but reported in its own units, as scikit-learn's
    ``TransformedTargetRegressor`` does: the metrics, results.json, the diagnostics and
    predictions.pt see ``target`` and ``value`` times the training targets' std plus their mean
    (``in_user_units``; the statistics are the data module's, read at setup, and travel in
    every checkpoint with it).

    Args:
        target_shape: the shape of one target (``()``, ``(T,)``, ``(C, H, W)``), which chooses
            the metrics (``regression_metrics``); linked from the data module, else read from
            the data at the start of a run.
        data_range: the range of dense targets (images: 1.0 for values in [0, 1]), for PSNR.
    """

    # fields the data standardised that this model reports in their own units (set at setup)
    restored_fields: tuple[str, ...] = ()

    loss_name = "mse"
    best_metric = "mse"

    def __init__(
        self,
        target_shape: tuple[int, ...] | None = None,
        data_range: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_shape = None if target_shape is None else tuple(target_shape)
        self.data_range = data_range
        self._target_stats: tuple[Tensor, Tensor] | None = None  # (mean, std): the data's

    def setup(self, stage: str) -> None:
        data = task_data(self._trainer)
        if self.target_shape is None:  # not linked (a data module without ``target_shape``)
            split = next((s for s in ("train", "val", "test") if data and data.has_split(s)), None)
            if data is not None and split is not None:
                self.target_shape = tuple(data.sample(split, 1).target.shape[1:])  # type: ignore[attr-defined]
        stats = getattr(data, "stats", None)  # ArrayDataModule's {field: (mean, std)}
        target = stats.get("target") if isinstance(stats, dict) else None
        self._target_stats = None if target is None else (target[0].float(), target[1].float())
        self.restored_fields = () if target is None else ("target",)
        super().setup(stage)

    def in_user_units(self, struct: S) -> S:
        """``target`` and ``value`` times the training targets' std plus their mean, when the
        data standardised the target; else the struct itself."""
        if self._target_stats is None:
            return struct
        mean, std = self._target_stats
        changed = {}
        for name in ("target", "value"):
            value = getattr(struct, name, None)
            if isinstance(value, Tensor):
                if mean.device != value.device:  # once per device
                    mean, std = self._target_stats = (mean.to(value.device), std.to(value.device))
                changed[name] = value.float() * std + mean
        return dataclasses.replace(struct, **changed) if changed else struct

    def per_example_loss(
        self, example: RegressionExample, prediction: RegressionPrediction
    ) -> Tensor:
        squared = (prediction.value.float() - example.target.float()) ** 2
        return squared.reshape(len(squared), -1).mean(dim=1)

    def build_metrics(self) -> MetricCollection:
        return regression_metrics(self.target_shape, data_range=self.data_range)


class Segmenter(PerExampleLossModel):
    """Cross-entropy per pixel on ``example.mask``; a subclass returns
    ``SegmentationPrediction(logits)`` of N x K x H x W.

    Args:
        num_classes: classes per pixel, background included (linked from the data module).
    """

    loss_name = "cross_entropy"
    best_metric = "iou"
    train_metrics = ("pixel_accuracy",)  # IoU counts with a host sync

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def per_example_loss(
        self, example: SegmentationExample, prediction: SegmentationPrediction
    ) -> Tensor:
        ce = F.cross_entropy(prediction.logits.float(), example.mask.long(), reduction="none")
        return ce.flatten(1).mean(dim=1)

    def build_metrics(self) -> MetricCollection:
        return segmentation_metrics(self.num_classes)
