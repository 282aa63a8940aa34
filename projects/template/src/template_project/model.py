"""The model: forward, compute_loss and metrics; BaseModel does steps, logging, optimizer."""

from typing import Any

import torch.nn.functional as F
import torchmetrics
from torch import nn

from litforge.metrics import StructMetric, classification_metrics
from litforge.model import BaseModel
from template_project.data import GROUPS, SHAPES
from template_project.structs import ShapeExample, ShapeLoss, ShapePrediction


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapeModel(BaseModel):
    """Args: ``width`` of the first conv, ``group_weight`` of the group loss; the rest: BaseModel."""

    def __init__(self, width: int = 16, group_weight: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_weight = group_weight
        # Real task: your network; it only has to map an Example to a Prediction.
        self.body = nn.Sequential(block(3, width), nn.MaxPool2d(2), block(width, 2 * width))
        self.shape_head = nn.Linear(2 * width, len(SHAPES))
        self.group_head = nn.Linear(2 * width, len(GROUPS))

    def forward(self, example: ShapeExample) -> ShapePrediction:  # type: ignore[override]
        features = self.body(example.image).mean(dim=(2, 3))
        return ShapePrediction(self.shape_head(features), group_logits=self.group_head(features))

    def compute_loss(self, example: ShapeExample, prediction: ShapePrediction) -> ShapeLoss:  # type: ignore[override]
        # Real task: your loss terms; each is logged by name, the total is optimised.
        shape = F.cross_entropy(prediction.logits, example.label)
        group = F.cross_entropy(prediction.group_logits, example.group)
        return ShapeLoss.weighted(shape, group, self.group_weight)

    def build_metrics(self) -> torchmetrics.MetricCollection:
        # Real task: any torchmetrics metric, told which prediction and example fields feed it.
        metrics = classification_metrics(len(SHAPES))  # accuracy, accuracy_macro
        accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=len(GROUPS))
        metrics.add_metrics({"group_accuracy": StructMetric(accuracy, "group_logits", "group")})
        return metrics
