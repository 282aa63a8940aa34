"""Fit the machine at hand: measure before training, then plan what fits.

- ``choose_precision``: on a CPU, times bf16 autocast against fp32 on the model itself (a few
  steps each, on a throw-away copy) and keeps the faster; on a GPU, bf16 (16-bit mixed where
  bf16 is not supported).
- ``plan``: with a wall-clock budget (seconds from process start to ``results.json``), times a
  few real training steps and evaluation batches on a throw-away copy of the model, then sets the
  number of steps so that fit, its validations and the final test end within the budget. Every
  schedule keyed on the trainer's step count (learning rate, Lookahead, warm-up) spans exactly
  those steps.
- ``BudgetGuard``: while training, re-measures the pace every tenth of the run and moves the
  planned step count so that the run still ends on time when the machine's speed drifts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info

from litforge.errors import LitforgeError
from litforge.run.handoff import hand_fit_plan, inherited_fit_plan
from litforge.tasks.structs import Example

MARGIN_S = 4.0  # fixed end-of-run costs: diagnostics' figures, the summary, closing loggers
MARGIN_FRACTION = 0.015  # and a share of the budget for the machine's speed drifting


class BudgetError(LitforgeError, ValueError):
    """A time budget too small for a single training step."""


_CLOCK: list[float] = []  # perf_counter at the start of a command run inside a process


def start_clock(in_process: bool) -> None:
    """Where the budget's clock starts: at the process's start for a command of its own
    (``python -m <project> fit``: its imports count), at this call for a command run inside a
    longer-lived process (``main([...])`` in pytest or a notebook, whose age is not the run's)."""
    _CLOCK[:] = [time.perf_counter()] if in_process else []


def process_age() -> float:
    """Seconds since this command started: since the process started (Linux: from /proc;
    elsewhere since import), or since ``start_clock(in_process=True)``."""
    if _CLOCK:
        return time.perf_counter() - _CLOCK[0]
    return _since_process_start()


def _since_process_start() -> float:
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _autocast(device: torch.device, precision: str) -> Iterator[None]:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
        yield


def own_optimizer(model: Any) -> torch.optim.Optimizer:
    """The optimizer that ``model.configure_optimizers()`` builds (its step can cost much more
    than SGD's: Muon's orthogonalization, second-moment updates), or SGD with momentum where it
    cannot be built before fit (it reads the trainer, or the model has none)."""
    configure = getattr(model, "configure_optimizers", None)
    try:
        conf = configure() if configure is not None else None
    except Exception:  # any failure only means: time a stand-in optimizer
        conf = None
    while isinstance(conf, list | tuple) and conf:  # [opt], (opt, sched), ([opt], [sched])
        conf = conf[0]
    if isinstance(conf, dict):
        conf = conf.get("optimizer")
    if isinstance(conf, torch.optim.Optimizer):
        return conf
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=1e-6, momentum=0.9)


def time_train_steps(
    model: Any, batch: Example, device: torch.device, precision: str, steps: int = 3
) -> float:
    """Seconds per training step (forward, loss, backward, the model's own optimizer step:
    ``own_optimizer``) of a copy of ``model`` on ``batch``, after one warm-up step. The model
    itself is not touched."""
    m = copy.deepcopy(model).to(device).train()
    batch = batch.to(device)
    opt = own_optimizer(m)
    times = []
    for _ in range(steps + 1):
        sync(device)
        start = time.perf_counter()
        with _autocast(device, precision):
            loss = m.compute_loss(batch, m(batch)).total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])  # the least disturbed by other work on the machine


@torch.no_grad()
def time_eval_batch(model: Any, batch: Example, device: torch.device, precision: str) -> float:
    """Seconds to predict one evaluation batch with a copy of ``model`` (test-time
    augmentation included, as the model's forward does it in eval mode), timed once after a
    warm-up on an eighth of it (a whole batch with test-time augmentation can take seconds)."""
    m = copy.deepcopy(model).to(device).eval()
    batch = batch.to(device)
    with _autocast(device, precision):
        m(batch[: max(1, len(batch) // 8)])
        sync(device)
        start = time.perf_counter()
        m(batch)
        sync(device)
    return time.perf_counter() - start


def choose_precision(model: Any, batch: Example, device: torch.device) -> tuple[str, str]:
    """(precision, why): bf16 on a GPU; on a CPU the faster of bf16 autocast and fp32."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", "a GPU with bf16"
        return "16-mixed", "a GPU without bf16"
    fp32 = time_train_steps(model, batch, device, "32-true", steps=2)
    bf16 = time_train_steps(model, batch, device, "bf16-mixed", steps=2)
    choice = "bf16-mixed" if bf16 < fp32 else "32-true"
    return choice, f"a training step took {fp32:.3f} s in fp32 and {bf16:.3f} s in bf16 autocast"


@dataclasses.dataclass
class Plan:
    """What the budget allows, and what it was computed from."""

    budget_s: float
    elapsed_s: float  # when the plan was made, since process start
    step_s: float
    eval_batch_s: float
    steps_per_epoch: int
    val_batches: int  # per validation (run once per epoch)
    test_batches: int
    max_steps: int

    @property
    def test_s(self) -> float:
        return self.test_batches * self.eval_batch_s

    def describe(self) -> str:
        epochs = self.max_steps / max(1, self.steps_per_epoch)
        return (
            f"time budget {self.budget_s:.0f} s: {self.elapsed_s:.1f} s gone at the plan; "
            f"a training step takes {self.step_s:.3f} s, an evaluation batch "
            f"{self.eval_batch_s:.3f} s (test: {self.test_s:.1f} s); "
            f"planned {self.max_steps} steps = {epochs:.2f} epochs"
        )


def steps_that_fit(seconds: float, step_s: float, steps_per_epoch: int, val_s: float) -> int:
    """The most training steps whose time, with one validation per started epoch, fits."""
    if seconds <= 0:
        return 0
    per_epoch = steps_per_epoch * step_s + val_s
    epochs = int(seconds // per_epoch)
    rest = seconds - epochs * per_epoch - val_s  # a partial epoch still ends in a validation
    return epochs * steps_per_epoch + max(0, min(steps_per_epoch, int(rest // step_s)))


def plan(
    budget_s: float,
    model: Any,
    train_batch: Example,
    eval_batch: Example,
    device: torch.device,
    precision: str,
    steps_per_epoch: int,
    val_batches: int,
    test_batches: int,
) -> Plan:
    """Measures, then plans the number of training steps that fit in ``budget_s``."""
    step_s = time_train_steps(model, train_batch, device, precision)
    eval_s = (
        time_eval_batch(model, eval_batch, device, precision)
        if test_batches or val_batches
        else 0.0
    )
    elapsed = process_age()
    left = budget_s - elapsed - test_batches * eval_s - MARGIN_S - MARGIN_FRACTION * budget_s
    steps = steps_that_fit(left, step_s, steps_per_epoch, val_batches * eval_s)
    if steps < 1:
        raise BudgetError(
            f"--run.time_budget={budget_s:g} s leaves no time to train: {elapsed:.1f} s are gone "
            f"already, the test takes {test_batches * eval_s:.1f} s and a step {step_s:.2f} s"
        )
    return Plan(
        budget_s, elapsed, step_s, eval_s, steps_per_epoch, val_batches, test_batches, steps
    )


class BudgetGuard(Callback):
    """Keeps a planned run within its budget while the machine's speed drifts and the costs the
    plan could not time (the framework's own per-step work, validations, diagnostics) show up:
    every twentieth of the planned steps it measures the pace of the run so far and sets the
    trainer's step count to what still fits. Schedules that read the trainer's step count
    follow. A resumed run ends at the step count the guard had set when its checkpoint was
    written (saved in the checkpoint's callback state); the guard is off then."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan
        self._start: tuple[float, int] | None = None
        self._next_check = 0
        self._next_check_t = 0.0
        self._epochs_seen = 0
        self._max_steps: int | None = None  # the step count as the guard last set it
        self._resumed_max_steps: int | None = None

    def _every(self) -> int:
        return max(5, self.plan.max_steps // 20) if self.plan else 1

    def _every_s(self) -> float:
        # and at least every 2% of the budget in seconds: a plan that underestimates the cost
        # of a step many times over (a tiny model, whose framework overhead the plan could not
        # time) would otherwise be checked only after the budget is gone
        return max(0.5, 0.02 * self.plan.budget_s) if self.plan else 1.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._resumed_max_steps is not None:
            trainer.fit_loop.epoch_loop.max_steps = self._resumed_max_steps
        self._max_steps = trainer.fit_loop.max_steps
        if self.plan is not None:
            self._start = (process_age(), trainer.global_step)
            # under DDP, checks are by step (every rank at the same one): the first one soon
            first_check = min(self._every(), 20) if trainer.world_size > 1 else self._every()
            self._next_check = trainer.global_step + first_check
            self._next_check_t = time.perf_counter() + self._every_s()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epochs_seen += 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        self._check_pace(trainer)
        # The step count ends the run mid-epoch, where Lightning validates nothing: the test
        # would score an older checkpoint and the last steps would go unseen. Asking the
        # trainer to stop at this step makes it validate it first (and save the checkpoints
        # that follow a validation).
        planned = self.plan is not None or self._resumed_max_steps is not None
        if planned and 0 < trainer.fit_loop.max_steps <= trainer.global_step:
            trainer.should_stop = True

    def _check_pace(self, trainer: pl.Trainer) -> None:
        if self.plan is None or self._start is None:
            return
        distributed = trainer.world_size > 1
        # Under DDP every rank must check at the same step (the check is a collective): by
        # steps only there.
        early = distributed or time.perf_counter() < self._next_check_t
        if trainer.global_step < self._next_check and early:
            return
        self._next_check_t = time.perf_counter() + self._every_s()
        plan, now = self.plan, process_age()
        started, first = self._start
        pace = (now - started) / max(1, trainer.global_step - first)  # s per step, all included
        if not self._epochs_seen:  # no validation yet: add its planned share
            pace += plan.val_batches * plan.eval_batch_s / max(1, plan.steps_per_epoch)
        left = plan.budget_s - now - plan.test_s - MARGIN_S - MARGIN_FRACTION * plan.budget_s
        target = trainer.global_step + max(1, math.floor(left / pace))
        # Shrink at once (the budget is a limit); grow by at most a quarter of the plan at a
        # time, so that one quick minute does not stretch the run past what a slow one allows.
        current = trainer.fit_loop.max_steps
        target = min(target, current + max(1, plan.max_steps // 4))
        # the next check: after 2% of the budget at this pace, or a twentieth of the plan
        next_check = trainer.global_step + max(
            1, min(self._every(), math.floor(self._every_s() / pace))
        )
        if distributed:  # rank 0's clock decides for every rank, or they would stop apart
            target, next_check = trainer.strategy.broadcast((target, next_check), src=0)
        self._next_check, target = int(next_check), int(target)
        if target != current:
            trainer.fit_loop.epoch_loop.max_steps = target
            self._max_steps = target

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.plan is not None and trainer.global_step != self.plan.max_steps:
            rank_zero_info(
                f"time budget: trained {trainer.global_step} steps (planned "
                f"{self.plan.max_steps}; the measured pace moved the plan)"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "plan": dataclasses.asdict(self.plan) if self.plan else None,
            "max_steps": self._max_steps,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Resumed: the new process's clock guards nothing; the run ends at the step count the
        # guard had set when the checkpoint was written (its schedules were spanning that).
        self.plan = None
        self._resumed_max_steps = state_dict.get("max_steps")


def device_of(accelerator: Any) -> torch.device:
    """The device a trainer with this ``accelerator`` setting will train on."""
    name = str(accelerator).lower()
    if torch.cuda.is_available() and name in ("auto", "gpu", "cuda"):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fit_the_machine(
    model: Any,
    datamodule: Any,
    accelerator: Any,
    precision: str | None,
    auto_precision: bool,
    budget_s: float | None,
) -> tuple[dict[str, Any], Plan | None]:
    """Trainer settings for this machine: the precision (when ``auto_precision``) and the step
    count that fits ``budget_s``, measured on throw-away copies of ``model``. Prints what it
    measured and chose. Returns (trainer overrides, plan)."""
    overrides: dict[str, Any] = {}
    # a plain float: the plan goes into checkpoints, which load with weights_only=True
    # (--run.time_budget parses to jsonargparse's PositiveFloat, which that loader refuses)
    budget_s = float(budget_s) if budget_s is not None else None
    saved = inherited_fit_plan()
    if saved is not None:  # a DDP child: its launching process measured already (same steps)
        found = Plan(**saved["plan"]) if saved["plan"] else None
        return saved["overrides"], found
    device = device_of(accelerator)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batch = next(iter(loader))
    if not isinstance(batch, Example) or not hasattr(model, "compute_loss"):
        raise ValueError(
            "run.precision=auto and run.time_budget time a litforge BaseModel on Example batches; "
            f"got {type(model).__name__} and {type(batch).__name__}"
        )
    if auto_precision:
        precision, why = choose_precision(model, batch, device)
        overrides["precision"] = precision
        rank_zero_info(f"precision: {precision} ({why})")
    found = None
    if budget_s:
        test = datamodule.test_dataloader() if datamodule.has_split("test") else []
        val = datamodule.val_dataloader() if datamodule.has_split("val") else []
        eval_batch = next(iter(test or val), batch)
        found = plan(
            budget_s,
            model,
            batch,
            eval_batch,
            device,
            precision or "32-true",
            len(loader),
            len(val),
            len(test),
        )
        overrides |= {"max_steps": found.max_steps, "max_epochs": -1}
        rank_zero_info(found.describe())
    # Only this process's DDP children reuse it (litforge.run.handoff): another run in this
    # process, or a run this one starts some other way, measures for itself.
    hand_fit_plan(overrides, dataclasses.asdict(found) if found else None)
    return overrides, found
