"""TorchMetrics that take structs: ``metric.update(example, prediction)``.

``StructMetric`` wraps any TorchMetrics metric and says which fields feed it, so a
``MetricCollection`` of them is updated with the batch as the model saw it.

A metric whose ``compute()`` returns a dict (TorchMetrics' ``ClasswiseWrapper``, or one of your
own annotated ``def compute(self) -> dict[str, Tensor]``) gives several values: ``BaseModel``
logs each as its own scalar, ``<stage>/<dataset>/<metric>/<key>`` (``several_values``).
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchmetrics
import torchmetrics.image
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.wrappers import ClasswiseWrapper

from litforge.tasks.structs import Example, Prediction


class StructMetric(Metric):
    """``inner.update(prediction.<pred_field>, example.<target_field>)``; compute/reset and
    ``higher_is_better`` pass through."""

    full_state_update = False

    def __init__(
        self, inner: Metric, pred_field: str = "logits", target_field: str = "label"
    ) -> None:
        super().__init__()
        self.inner = inner
        self.pred_field = pred_field
        self.target_field = target_field

    @property
    def higher_is_better(self) -> bool | None:  # type: ignore[override]
        """The wrapped metric's direction (True: higher is better; None: unknown): what the
        best checkpoint's ``mode`` is taken from."""
        return self.inner.higher_is_better

    def update(self, example: Example, prediction: Prediction) -> None:
        try:
            preds = getattr(prediction, self.pred_field)
            target = getattr(example, self.target_field)
        except AttributeError as err:
            raise AttributeError(
                f"{type(self.inner).__name__} reads prediction.{self.pred_field} and "
                f"example.{self.target_field}: {err}"
            ) from err
        # contiguous: some metrics view their input flat (an augmented or channels-last
        # batch is not); free when it is already
        self.inner.update(preds.contiguous(), target.contiguous())

    def compute(self) -> Tensor | dict[str, Tensor]:
        return self.inner.compute()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.inner.reset()
        super().reset()


def returns_several(metric: Metric) -> bool:
    """Whether ``metric.compute()`` returns a dict of values rather than one tensor: said by its
    return annotation (``ClasswiseWrapper``'s says ``dict[str, Tensor]``; a ``StructMetric``
    asks its inner metric), else found by computing an empty copy once."""
    inner = metric.inner if isinstance(metric, StructMetric) else metric
    compute = type(inner).compute
    try:
        hint = typing.get_type_hints(compute).get("return")
    except Exception:  # an annotation naming what its module imports only for type checkers
        raw = str(getattr(compute, "__annotations__", {}).get("return", ""))
        hint = (dict if raw.lower().startswith(("dict", "mapping")) else Tensor) if raw else None
    if hint is not None:
        origin = typing.get_origin(hint) or hint
        return isinstance(origin, type) and issubclass(origin, Mapping)
    empty = inner.clone()
    empty.sync_on_compute = False  # every rank asks alike; no collective for a test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return isinstance(empty.compute(), Mapping)
        except Exception:  # some metrics cannot compute without data (R^2): not a dict
            return False


def several_values(name: str, metric: Metric, values: Mapping[str, Any]) -> dict[str, Tensor]:
    """The scalars ``name/<key>`` of a metric's dict of values (nested dicts: ``name/<k1>/<k2>``).
    ``ClasswiseWrapper``'s own prefix (its metric's class name, when given neither ``prefix`` nor
    ``postfix``) is dropped: ``f1_per_label/cat``, not ``f1_per_label/multiclassf1score_cat``."""
    inner = metric.inner if isinstance(metric, StructMetric) else metric
    drop = ""
    if isinstance(inner, ClasswiseWrapper) and not inner._prefix and not inner._postfix:
        drop = f"{type(inner.metric).__name__.lower()}_"
    flat: dict[str, Tensor] = {}
    for key, value in values.items():
        key = str(key)
        key = key[len(drop) :] if drop and key.startswith(drop) else key
        if isinstance(value, Mapping):
            flat.update(several_values(f"{name}/{key}", metric, value))
        else:
            flat[f"{name}/{key}"] = torch.as_tensor(value)
    return flat


def regression_metrics(
    target_shape: Sequence[int] | None = (),
    pred_field: str = "value",
    target_field: str = "target",
    data_range: float = 1.0,
) -> MetricCollection:
    """The metrics of regression, chosen by the shape of one target (``target_shape``):

    - ``()`` (one value per example) or ``(T,)`` (T outputs): mean squared error, mean absolute
      error and R^2 (averaged over the outputs);
    - two dims or more (an image ``(C, H, W)``, a map ``(H, W)``): MSE, MAE and PSNR, the peak
      signal-to-noise ratio in dB for values spanning ``data_range`` (1.0: images in [0, 1]);
      R^2 is not defined there;
    - None (unknown): MSE and MAE, which take any shape.

    MSE and MAE are over every element.
    """
    metrics: dict[str, Metric | MetricCollection] = {
        "mse": StructMetric(torchmetrics.MeanSquaredError(), pred_field, target_field),
        "mae": StructMetric(torchmetrics.MeanAbsoluteError(), pred_field, target_field),
    }
    if target_shape is not None and len(target_shape) <= 1:
        metrics["r2"] = StructMetric(torchmetrics.R2Score(), pred_field, target_field)
    elif target_shape is not None:
        psnr = torchmetrics.image.PeakSignalNoiseRatio(data_range=data_range)
        metrics["psnr"] = StructMetric(psnr, pred_field, target_field)
    return MetricCollection(metrics, compute_groups=False)


def segmentation_metrics(num_classes: int) -> MetricCollection:
    """Mean IoU over the classes (background included) and pixel accuracy, from per-pixel logits
    (N x K x H x W) against ``example.mask`` (N x H x W)."""
    metrics: dict[str, Metric | MetricCollection] = {
        "iou": StructMetric(
            torchmetrics.JaccardIndex(task="multiclass", num_classes=num_classes), "pred", "mask"
        ),
        "pixel_accuracy": StructMetric(
            torchmetrics.Accuracy(task="multiclass", num_classes=num_classes), "pred", "mask"
        ),
    }
    return MetricCollection(metrics, compute_groups=False)


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy, macro accuracy and (for more than 5 classes) top-5 accuracy, from logits."""
    metrics: dict[str, Metric | MetricCollection] = {
        "accuracy": StructMetric(torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)),
        "accuracy_macro": StructMetric(
            torchmetrics.Accuracy(task="multiclass", num_classes=num_classes, average="macro")
        ),
    }
    if num_classes > 5:
        metrics["accuracy_top5"] = StructMetric(
            torchmetrics.Accuracy(task="multiclass", num_classes=num_classes, top_k=5)
        )
    return MetricCollection(metrics, compute_groups=False)
