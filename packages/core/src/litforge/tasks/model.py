"""BaseModel: the train / val / test / predict steps, written once for every task.

A task implements two methods:

    forward(example) -> Prediction
    compute_loss(example, prediction) -> Loss

and optionally ``build_metrics()`` (a MetricCollection of ``StructMetric``; ``best_metric``
names the one the best checkpoint is chosen by), ``param_groups()`` and ``example_error()``
(what the diagnostics rank examples by; default: the per-example loss).
``litforge.tasks.bases`` has ready bases for classification, regression and segmentation.
Every loss term and the total are logged as ``<stage>/<dataset>/loss/<term>``, every metric as
``<stage>/<dataset>/<metric>`` (e.g. ``val/cifar10/accuracy``); dataset names come from the data
module (``dataset_names(stage)``), so several validation or test sets stay apart. A metric whose
``compute()`` returns a dict (``ClasswiseWrapper``, a per-horizon metric) is logged as one scalar
per key, ``<stage>/<dataset>/<metric>/<key>``, computed at the epoch's end. Metrics, the
diagnostics (the step returns ``example`` and ``prediction``) and predictions.pt read the structs
through ``in_user_units``: a target the data standardised for training is reported in its own
units (the Regressor's), the loss stays what the model optimises.
"""

from __future__ import annotations

import copy
import inspect
import math
from types import SimpleNamespace
from typing import Any, ClassVar, Literal, TypeVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from litforge.tasks.contracts import dataset_names
from litforge.tasks.dispatch import skip_unused_hooks
from litforge.tasks.metrics import StructMetric, returns_several, several_values
from litforge.tasks.structs import Example, Loss, Prediction, Struct

STAGES = ("train", "val", "test")
S = TypeVar("S", bound=Struct)
LRSchedule = Literal["constant", "cosine", "onecycle"]
ONECYCLE_START = 1 / 25  # the first step's rate, as a fraction of the peak (torch's div_factor)


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3)


class BaseModel(pl.LightningModule):
    """The steps, metrics and optimizer of every task; a task adds forward and compute_loss.

    Args:
        optimizer: a callable taking the parameter groups (from YAML: ``class_path:
            torch.optim.SGD``); its ``lr`` is the peak rate of ``lr_schedule``.
        lr_schedule: the rate over the run, spanning every step of it whatever
            ``trainer.max_epochs`` / ``max_steps`` (or a time budget) make it: 'constant';
            'cosine' (from the optimizer's rate down to 0); 'onecycle' (up from 1/25 of it over
            the first ``lr_warmup`` of the run, then down to 0, both halves cosine-shaped, as
            torch's ``OneCycleLR``).
        lr_warmup: the fraction of the run over which 'onecycle' rises.
        lr_scheduler: instead of ``lr_schedule``, any torch scheduler: a callable taking the
            optimizer, stepped every ``lr_scheduler_interval`` ('step' or 'epoch'). Its length
            is yours to match to the run (a per-step ``T_max`` of a few epochs is warned of).
    """

    # The metric of build_metrics() the best checkpoint is chosen by (``--run.monitor``
    # overrides it); None: the first in the collection's order (TorchMetrics sorts by name).
    best_metric: ClassVar[str | None] = None
    # The metrics of build_metrics() also updated on training batches (None: all of them). A
    # metric whose update reads a device value on the host (TorchMetrics' macro accuracy and
    # IoU count with torch.bincount, which waits for the GPU twice) would stall every training
    # step; validation and test always update every metric.
    train_metrics: ClassVar[tuple[str, ...] | None] = None
    # Training steps whose metric inputs are joined into one update (``_update_train_metrics``).
    TRAIN_METRIC_EVERY: ClassVar[int] = 16

    def __init__(
        self,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_schedule: LRSchedule = "constant",
        lr_warmup: float = 0.25,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: str = "step",
    ) -> None:
        super().__init__()
        save_plain_hyperparameters(self, inspect.currentframe())
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ValueError(
                f"lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}"
            )
        if lr_schedule not in ("constant", "cosine", "onecycle"):
            raise ValueError(
                f"lr_schedule must be 'constant', 'cosine' or 'onecycle', got {lr_schedule!r}"
            )
        if not 0 <= lr_warmup < 1:
            raise ValueError(f"lr_warmup must lie in [0, 1), got {lr_warmup}")
        if lr_scheduler is not None and lr_schedule != "constant":
            raise ValueError(
                f"give lr_schedule ({lr_schedule!r}) or lr_scheduler, not both: lr_schedule "
                "spans the run by itself; lr_scheduler is any torch scheduler"
            )
        self.optimizer_factory = optimizer
        self.lr_schedule, self.lr_warmup = lr_schedule, lr_warmup
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.metrics = nn.ModuleDict()
        self.loss_means = nn.ModuleDict()  # evaluation loss terms, created when first logged
        self._dataset_names: dict[str, list[str]] = {}
        self._several: set[str] = set()  # logged names of the metrics that return dicts
        self._train_loss_sums: dict[str, list[Any]] = {}  # name -> [device sum, count]
        self._train_metric_inputs: dict[tuple[str, str], list[torch.Tensor]] = {}
        # What a training step reads and writes, in a plain object: setting an attribute of an
        # nn.Module costs microseconds of checks a time.
        self._step = _StepState()

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

    def in_user_units(self, struct: S) -> S:
        """An Example or a Prediction with what the data standardised for training given back in
        the user's units: what the metrics, the diagnostics and predictions.pt read (the loss and
        ``forward`` stay in the model's units). Here the struct itself; the Regressor
        un-standardises ``target`` and ``value`` with the data's statistics."""
        return struct

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
        if self._trainer is not None:  # the per-step hooks no callback implements, not called
            skip_unused_hooks(self._trainer.callbacks)  # type: ignore[attr-defined]
        self._dataset_names.clear()
        self._step = _StepState()
        self._train_loss_sums.clear()
        self._train_metric_inputs.clear()
        template = self.build_metrics()
        if template is None:
            return
        several = {k for k, m in template.items(keep_base=True) if returns_several(m)}
        for s in STAGES:
            for i in range(len(self.dataset_names(s))):
                key = f"{s}_{i}"
                if key not in self.metrics:
                    chosen = self._train_template(template) if s == "train" else template
                    self.metrics[key] = chosen.clone(prefix=self.metric_prefix(s, i))
                prefix = self.metric_prefix(s, i)
                self._several.update(f"{prefix}{k}" for k in several)

    def _train_template(self, template: MetricCollection) -> MetricCollection:
        """The metrics of ``template`` named in ``train_metrics`` (all of them for None)."""
        if self.train_metrics is None:
            return template
        kept = {k: m for k, m in template.items(keep_base=True) if k in self.train_metrics}
        return MetricCollection(kept, compute_groups=False)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- the steps, once
    def _first_step_of_epoch(self, batch_idx: int) -> bool:
        """Whether this training step is the first of an epoch in this fit (a resumed epoch's
        first included). Logging a metric object registers it; Lightning computes and resets it
        at the epoch's end. Logging it again each step changes nothing but costs a few hundred
        microseconds of the host's time per metric, as long as a small GPU step."""
        step = self._step
        position = (self.current_epoch, batch_idx)
        first = step.position != (position[0], position[1] - 1)
        step.position = position
        return first

    def _shared_step(
        self, stage: str, batch: Example, dataloader_idx: int = 0, batch_idx: int = 0
    ) -> dict[str, Any]:
        prediction = self(batch)
        loss = self.compute_loss(batch, prediction)
        if stage == "train":
            return self._train_bookkeeping(batch, prediction, loss, batch_idx)
        prefix = self.metric_prefix(stage, dataloader_idx)
        for term, value in loss.items().items():
            name = f"{prefix}loss/{term}"
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
        example, prediction = self.in_user_units(batch), self.in_user_units(prediction)
        metrics = self.metrics[f"{stage}_{dataloader_idx}"] if self.metrics else None
        if isinstance(metrics, MetricCollection) and len(metrics):
            metrics.update(example, prediction)
            self._log_metric_objects(metrics)
        return {"loss": loss.total, "prediction": prediction.detach(), "example": example}

    def _log_metric_objects(self, metrics: MetricCollection) -> None:
        """Registers the collection's metrics with Lightning, which computes and resets them
        at the epoch's end."""
        scalars: Any = metrics
        if self._several:  # Lightning logs tensors only: the dicts go at the epoch's end
            pairs = metrics.items(keep_base=False, copy_state=False)
            scalars = {k: m for k, m in pairs if k not in self._several}
        self.log_dict(scalars, on_step=False, on_epoch=True, add_dataloader_idx=False)

    def _train_bookkeeping(
        self, batch: Example, prediction: Prediction, loss: Loss, batch_idx: int
    ) -> dict[str, Any]:
        """A training step's logging and metrics, at a few microseconds of host time besides
        what the loggers write every ``log_every_n_steps`` (``packages/core/tests/
        test_step_cost.py``): the loss terms' epoch sums stay on the device
        (``_log_train_loss``), the training metrics are updated on joined steps
        (``_update_train_metrics``), and what is the same at every step (names, the metrics'
        fields) is worked out at the first."""
        step, n = self._step, len(batch)
        if step.loss_names is None or len(step.loss_names) != len(loss.terms) + 1:
            prefix = self.metric_prefix("train")
            step.loss_names = {term: f"{prefix}loss/{term}" for term in loss.items()}
        trainer = self._trainer  # None: a step called outside a fit logs nothing, as self.log
        logging = trainer is not None and (
            trainer._logger_connector.should_update_logs or trainer.fast_dev_run  # type: ignore[attr-defined]
        )
        for term, value in loss.items().items():  # per step, this process's batch: no sync
            self._log_train_loss(step.loss_names[term], value.detach(), n, logging)
        example, prediction = self.in_user_units(batch), self.in_user_units(prediction)
        # a ModuleDict has no get
        metrics = self.metrics["train_0"] if "train_0" in self.metrics else None  # noqa: SIM401
        if isinstance(metrics, MetricCollection) and len(metrics):
            self._update_train_metrics(metrics, example, prediction)
            if self._first_step_of_epoch(batch_idx):
                self._log_metric_objects(metrics)
        return {"loss": loss.total, "prediction": prediction.detach(), "example": example}

    def _log_train_loss(self, name: str, value: torch.Tensor, n: int, logging: bool) -> None:
        """A training loss term, as ``self.log(name, value, on_step=True, on_epoch=True)`` logs
        it (``<name>_step`` at the steps the loggers write, ``<name>_epoch`` and ``<name>`` at the
        epoch's end: the mean weighted by batch size), at a fraction of the host time: the epoch's
        sum is kept on the device (one op a step) and ``self.log``, some hundred microseconds of
        Lightning's bookkeeping a call, runs only when a logger writes (``logging``: a step of
        ``log_every_n_steps``)."""
        total = self._train_loss_sums.get(name)
        if total is None:
            total = self._train_loss_sums[name] = [torch.zeros((), device=value.device), 0]
        total[0].add_(value.reshape(()), alpha=n)
        total[1] += n
        if logging:
            self.log(f"{name}_step", value, on_step=True, on_epoch=False, batch_size=n)

    def _update_train_metrics(
        self, metrics: MetricCollection, batch: Example, prediction: Prediction
    ) -> None:
        """The training metrics' update, once per ``TRAIN_METRIC_EVERY`` steps on the joined
        inputs of those steps (and at the epoch's end): a TorchMetrics update costs about a
        millisecond of host time whatever the batch, and a sum over batches (counts, sums, the
        kept values) is the same over their join. Metrics other than ``StructMetric`` (which read
        one prediction field and one example field) update every step."""
        step = self._step
        if step.metrics is not metrics:  # the first step of a fit: which fields they read
            each = list(metrics.values(copy_state=False))
            fields = {(m.pred_field, m.target_field) for m in each if isinstance(m, StructMetric)}
            step.metrics = metrics
            # each field once, however many metrics read it ("p": the prediction's)
            kept = {("p", p) for p, _ in fields} | {("e", t) for _, t in fields}
            structs = len(fields) and all(isinstance(m, StructMetric) for m in each)
            step.metric_fields = sorted(kept) if structs else None
        if step.metric_fields is None:
            metrics.update(batch, prediction)
            return
        inputs = self._train_metric_inputs
        for side, name in step.metric_fields:
            value = getattr(prediction if side == "p" else batch, name)
            inputs.setdefault((side, name), []).append(value.detach())
        if len(next(iter(inputs.values()))) >= self.TRAIN_METRIC_EVERY:
            self._flush_train_metrics()

    def _flush_train_metrics(self) -> None:
        inputs, metrics = self._train_metric_inputs, self._step.metrics
        if not inputs or metrics is None:
            return
        joined = {key: torch.cat(parts) for key, parts in inputs.items()}
        prediction = SimpleNamespace(**{f: v for (s, f), v in joined.items() if s == "p"})
        example = SimpleNamespace(**{f: v for (s, f), v in joined.items() if s == "e"})
        inputs.clear()
        metrics.update(example, prediction)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the epoch's last step (or the run's), the training metrics' update of the
        steps not yet counted (``_update_train_metrics``): before the epoch-end hooks of the
        callbacks, whose reads of ``trainer.callback_metrics`` (the progress bar's) compute
        them."""
        trainer = self.trainer
        if (
            batch_idx + 1 >= trainer.num_training_batches
            or trainer.should_stop
            or 0 <= trainer.max_steps <= trainer.global_step
        ):
            self._flush_train_metrics()

    def on_train_epoch_end(self) -> None:
        """Logs the epoch means of the training loss terms (``_log_train_loss``); updates the
        training metrics with any step not yet counted, then logs those of several values
        (``_log_several``). A subclass that overrides this hook or the validation / test ones
        calls ``super()``."""
        self._flush_train_metrics()
        self._log_several("train")
        for name, (total, count) in self._train_loss_sums.items():
            mean = total / max(1, count)
            self.log(f"{name}_epoch", mean, on_step=False, on_epoch=True, batch_size=1)
            self.log(name, mean, on_step=False, on_epoch=True, batch_size=1, logger=False)
        self._train_loss_sums.clear()

    def training_step(self, batch: Example, batch_idx: int) -> dict[str, Any]:  # type: ignore[override]
        return self._shared_step("train", batch, batch_idx=batch_idx)

    def validation_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        return self._shared_step("val", batch, dataloader_idx)

    def test_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        return self._shared_step("test", batch, dataloader_idx)

    def _log_several(self, stage: str) -> None:
        """Computes the stage's metrics that return dicts (every rank: their compute gathers)
        and logs one scalar per key, ``<stage>/<dataset>/<metric>/<key>``; then resets them."""
        for key, collection in self.metrics.items():
            if not key.startswith(f"{stage}_") or not isinstance(collection, MetricCollection):
                continue
            for name, metric in collection.items(keep_base=False):  # compute groups' states
                if name not in self._several or not metric.update_count:
                    continue
                for scalar, value in several_values(name, metric, metric.compute()).items():
                    # sync_dist: the values are already the same on every rank; it only keeps
                    # Lightning from asking for it
                    self.log(scalar, value, add_dataloader_idx=False, sync_dist=True)
                metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_several("val")

    def on_test_epoch_end(self) -> None:
        self._log_several("test")

    def predict_step(  # type: ignore[override]
        self, batch: Example, batch_idx: int, dataloader_idx: int = 0
    ) -> Prediction:
        return self(batch).detach()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Names the model's class in every checkpoint (``model_class_path``): ``litforge.load``
        rebuilds the model from the checkpoint alone."""
        checkpoint["model_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.param_groups())
        if self.lr_scheduler_factory is not None:
            scheduler = self.lr_scheduler_factory(optimizer)
            self._warn_short_cycle(scheduler)
            interval = self.lr_scheduler_interval
        elif self.lr_schedule != "constant":
            # torch's OneCycleLR / CosineAnnealingLR fix the run's length when built; a time
            # budget may change trainer.max_steps during the run, so the factor reads the
            # length at every step.
            schedule, warmup = self.lr_schedule, self.lr_warmup

            def factor(step: int) -> float:  # step 0 (at construction) needs no length yet
                return lr_factor(schedule, step, self._total_steps() if step else 1, warmup)

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            interval = "step"
        else:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }

    def _total_steps(self) -> int:
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} spans the run, which has no end: set "
                "trainer.max_epochs or trainer.max_steps"
            )
        return max(1, int(total))

    def _warn_short_cycle(self, scheduler: Any) -> None:
        """A per-step scheduler whose period (``T_max``) is far shorter than the run cycles the
        rate many times, almost never what was meant (a ``T_max`` written in epochs)."""
        period = getattr(scheduler, "T_max", None)
        if self.lr_scheduler_interval != "step" or not isinstance(period, int) or not self._trainer:
            return
        total = self.trainer.estimated_stepping_batches
        if math.isfinite(total) and period * 2 <= total:
            rank_zero_warn(
                f"{type(scheduler).__name__}(T_max={period}) steps every optimizer step "
                f"(lr_scheduler_interval: step), but the run has {int(total)} steps: the rate "
                f"cycles {total / period:.0f} times. Set T_max to the steps, "
                "lr_scheduler_interval: epoch, or model.lr_schedule: cosine (spans the run)"
            )


def is_plain(value: Any) -> bool:
    """Whether torch's ``weights_only=True`` loader reads ``value`` back without pickled
    objects: None, str, int, float, bool, tensors, and lists / tuples / dicts of them."""
    if value is None or isinstance(value, str | int | float | bool | torch.Tensor):
        return True
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and is_plain(v) for k, v in value.items())
    return False


def save_plain_hyperparameters(
    module: pl.LightningModule | pl.LightningDataModule, frame: Any
) -> None:
    """Saves the constructor's arguments (the subclasses' too) as the module's hyperparameters,
    so that ``Model.load_from_checkpoint(path)`` rebuilds it with no other argument.

    Built by LightningCLI, they are its config of the model: plain values, the values linked
    from the data (``num_classes``, ``in_channels``, ...) included, the optimizer as its
    ``class_path`` / ``init_args``, rebuilt by Lightning's own instantiator. Built in Python,
    they are the arguments given, less any that is not plain (an optimizer callable, a
    dataclass), which torch's ``weights_only=True`` loader would refuse: such an argument takes
    its default when the checkpoint is loaded. Not sent to the loggers (config.yaml holds
    them)."""
    given = _given_hyperparameters.get()
    if given is not None:
        module.save_hyperparameters(logger=False)
    else:
        module.save_hyperparameters(frame=frame, logger=False)
    cls = type(module)
    objects = [k for k, v in module.hparams.items() if not is_plain(v)]
    if given is None:  # a base's argument the class does not take (passed positionally)
        objects += [k for k in module.hparams if k not in objects and not _accepts(cls, k)]
    module.remove_ignored_hparams(objects)
    module._hparams_initial = copy.deepcopy(module.hparams)  # type: ignore[union-attr]


def _accepts(cls: type, name: str) -> bool:
    """Whether ``cls(name=...)`` reaches a constructor that takes ``name``: its own, or a
    base's through ``**kwargs``."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        named = params.get(name)
        if named is not None and named.kind not in (named.VAR_POSITIONAL, named.VAR_KEYWORD):
            return True
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return False
    return False


def lr_factor(schedule: LRSchedule, step: int, total: int, warmup: float = 0.25) -> float:
    """The rate at optimizer step ``step`` of ``total``, as a fraction of the optimizer's own:
    1 ('constant'); cosine from 1 down to 0 ('cosine'); 'onecycle' as torch's ``OneCycleLR``
    (cosine annealing, ``div_factor`` 25, ``pct_start`` = ``warmup``, ending near 0)."""
    if schedule == "constant":
        return 1.0
    t = min(step, total) / total
    if schedule == "onecycle" and t < warmup:
        return ONECYCLE_START + (1 - ONECYCLE_START) * (1 - math.cos(math.pi * t / warmup)) / 2
    start = warmup if schedule == "onecycle" else 0.0
    return (1 + math.cos(math.pi * (t - start) / (1 - start))) / 2


class _StepState:
    """What a fit's training steps carry from one to the next (``BaseModel._step``)."""

    __slots__ = ("loss_names", "metric_fields", "metrics", "position")

    def __init__(self) -> None:
        self.position = (-1, -1)  # (epoch, batch index) of the last training step
        self.loss_names: dict[str, str] | None = None  # loss term -> its logged name
        self.metrics: MetricCollection | None = None  # the training metrics
        # the (side, field) pairs the training metrics read, "p" the prediction's, "e" the
        # example's; None: the metrics update every step
        self.metric_fields: list[tuple[str, str]] | None = None
