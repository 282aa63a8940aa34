"""BaseModel: the train / val / test / predict steps, written once for every task.

A task implements two methods:

    forward(example) -> Prediction
    compute_loss(example, prediction) -> Loss

and optionally ``build_metrics()`` (a MetricCollection of ``StructMetric``), ``param_groups()``
and ``example_error()`` (what the diagnostics rank examples by; default: the per-example loss).
``litforge.tasks.bases`` has ready bases for classification, regression and segmentation.
Every loss term and the total are logged as ``<stage>/<dataset>/loss/<term>``, every metric as
``<stage>/<dataset>/<metric>`` (e.g. ``val/cifar10/accuracy``); dataset names come from the data
module (``dataset_names(stage)``), so several validation or test sets stay apart.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from litforge.tasks.contracts import dataset_names
from litforge.tasks.structs import Example, Loss, Prediction

STAGES = ("train", "val", "test")


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3)


class BaseModel(pl.LightningModule):
    """The steps, metrics and optimizer of every task; a task adds forward and compute_loss.

    Args:
        optimizer: a callable taking the parameter groups (from YAML: ``class_path:
            torch.optim.SGD``).
        lr_scheduler: a callable taking the optimizer, stepped every ``lr_scheduler_interval``.
        lr_scheduler_interval: 'step' or 'epoch'.
    """

    def __init__(
        self,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: str = "step",
    ) -> None:
        super().__init__()
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ValueError(
                f"lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}"
            )
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.metrics = nn.ModuleDict()
        self.loss_means = nn.ModuleDict()  # evaluation loss terms, created when first logged
        self._dataset_names: dict[str, list[str]] = {}

    # ----------------------------------------------------------------- what a task implements
    def forward(self, example: Example) -> Prediction:  # type: ignore[override]
        """The network: a batch of the task's ``Example`` -> its ``Prediction`` (every task
        writes it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(example)")

    def compute_loss(self, example: Example, prediction: Prediction) -> Loss:
        """The batch's ``Loss``: ``total`` is optimised, each term is logged as
        ``<stage>/<dataset>/loss/<term>`` (the kinds' bases write it; a task of its own kind
        too)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss")

    def build_metrics(self) -> MetricCollection | None:
        """A fresh metric collection; cloned per stage and per dataset. None: no metrics."""
        return None

    def example_error(self, example: Example, prediction: Prediction) -> torch.Tensor:
        """One error per example (shape N), higher is worse: what Extremes ranks by. Default:
        ``compute_loss`` on each example alone (exact, but a call per example: a task with a
        vectorised per-example loss should override it, as ``litforge.tasks.bases`` do)."""
        return torch.stack(
            [
                self.compute_loss(example[i], prediction[i]).total.detach().float().reshape(())
                for i in range(len(example))
            ]
        )

    def param_groups(self) -> Any:
        """What the optimizer receives: parameters or a list of groups with their own lr."""
        return self.parameters()

    # ----------------------------------------------------------------- names and metrics
    def dataset_names(self, stage: str) -> list[str]:
        """Names of the datasets of a stage, from the data module; 'data' without one."""
        if stage not in self._dataset_names:
            self._dataset_names[stage] = dataset_names(self._trainer, stage) or ["data"]
        return self._dataset_names[stage]

    def metric_prefix(self, stage: str, dataloader_idx: int = 0) -> str:
        names = self.dataset_names(stage)
        name = names[dataloader_idx] if dataloader_idx < len(names) else f"data{dataloader_idx}"
        return f"{stage}/{name}/"

    def setup(self, stage: str) -> None:
        self._dataset_names.clear()
        template = self.build_metrics()
        if template is None:
            return
        for s in STAGES:
            for i in range(len(self.dataset_names(s))):
                key = f"{s}_{i}"
                if key not in self.metrics:
                    self.metrics[key] = template.clone(prefix=self.metric_prefix(s, i))

    # ----------------------------------------------------------------- the steps, once
    def _shared_step(self, stage: str, batch: Example, dataloader_idx: int = 0) -> dict[str, Any]:
        prediction = self(batch)
        loss = self.compute_loss(batch, prediction)
        prefix = self.metric_prefix(stage, dataloader_idx)
        for term, value in loss.items().items():
            name = f"{prefix}loss/{term}"
            if stage == "train":  # per step, this process's batch: no sync
                self.log(name, value.detach(), on_step=True, on_epoch=True, batch_size=len(batch))
                continue
            # Evaluation losses: the mean over every example of every process, weighted by
            # batch size (a MeanMetric syncs its sums; Lightning's own sync_dist mean does not
            # weight ranks by their share of an uneven set).
            key = name.replace("/", "|")
            if key not in self.loss_means:
                self.loss_means[key] = MeanMetric().to(self.device)
            mean: MeanMetric = self.loss_means[key]  # type: ignore[assignment]
            mean.update(value.detach().float(), weight=len(batch))
            self.log(
                name,
                mean,
                on_step=False,
                on_epoch=True,
                add_dataloader_idx=False,
                metric_attribute=f"loss_means.{key}",
            )
        metrics = self.metrics[f"{stage}_{dataloader_idx}"] if self.metrics else None
        if isinstance(metrics, MetricCollection):
            metrics.update(batch, prediction)
            self.log_dict(metrics, on_step=False, on_epoch=True, add_dataloader_idx=False)
        return {"loss": loss.total, "prediction": prediction.detach()}

    def training_step(self, batch: Example, batch_idx: int) -> dict[str, Any]:  # type: ignore[override]
        return self._shared_step("train", batch)

    def validation_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        return self._shared_step("val", batch, dataloader_idx)

    def test_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        return self._shared_step("test", batch, dataloader_idx)

    def predict_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> Prediction:
        return self(batch).detach()

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.param_groups())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval},
        }
