"""Host syncs per training step, through a real Trainer fit of the synthetic image task with
core's per-step callbacks (StopOnNonFinite, Lookahead, BudgetGuard, the diagnostics).

On a GPU, every call that reads a device value on the host (``.item()``, ``bool(tensor)``,
``float(tensor)``, ``.tolist()``, ``.cpu()``, ``torch.cuda.synchronize``) and every op whose
output size depends on the data (``torch.unique``, ``torch.nonzero``, ``torch.bincount``, which
reads the input's min and max) waits for the GPU: the host cannot queue the next step while the
GPU runs this one. There is no GPU here, so the test counts those calls on the CPU (the counters
wrap torch's functions for the duration of the fit; the run itself is real). Outside the steps
that log (``log_every_n_steps``) or check the loss (``StopOnNonFinite.every_n_steps``), a
training step must make none."""

from __future__ import annotations

import collections
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from litforge import Lookahead, StopOnNonFinite, testing
from litforge.run.budget import BudgetGuard, Plan
from litforge.run.handoff import HANDOFF_ENV
from litforge.testing.syncs import StepWindow, host_syncs, quiet_steps

LOG_EVERY, CHECK_EVERY = 5, 7
# SGD: Adam's step count is a tensor kept on the host even on a GPU (not capturable, not
# fused), whose .item() would be counted here although it waits for nothing
SGD = ["--model.optimizer=torch.optim.SGD", "--model.optimizer.init_args.lr=0.05",
       "--model.optimizer.init_args.momentum=0.9"]  # fmt: skip


@pytest.fixture(autouse=True)
def no_inherited_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HANDOFF_ENV, raising=False)


def test_a_training_step_syncs_only_when_it_logs_or_checks(tmp_path: Path) -> None:
    cli = testing.main(
        [f"--run.dir={tmp_path / 'run'}", "--run.loggers=[csv]", *testing.QUIET,
         "--trainer.max_epochs=3", "--trainer.max_steps=18",
         f"--trainer.log_every_n_steps={LOG_EVERY}", *SGD],
        run=False,
    )  # fmt: skip
    window = StepWindow()
    plan = Plan(3600.0, 0.0, 0.01, 0.01, 6, 2, 2, max_steps=18)  # far from its limit: no cut
    for callback in cli.trainer.callbacks:
        if isinstance(callback, StopOnNonFinite):
            callback.every_n_steps = CHECK_EVERY
    cli.trainer.callbacks[:0] = [window, Lookahead(every=2), BudgetGuard(plan)]
    cli.model.TRAIN_METRIC_EVERY = 4  # the joined metric update inside an epoch too: no sync
    calls: list[tuple[int, str]] = []
    with host_syncs(calls, lambda: window.step):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    steps = cli.trainer.global_step
    assert steps == 18 and len(window.epoch_ends) == 3

    per_step = collections.Counter(step for step, _ in calls)
    logging = {s for s in range(steps) if (s + 1) % LOG_EVERY == 0}
    quiet = quiet_steps(steps, window, LOG_EVERY, CHECK_EVERY)
    assert len(quiet) >= 8
    made = [(s, where) for s, where in calls if s in quiet]
    assert not made, f"training steps that neither log nor check synced: {made}"
    # a logging step reads the logged values once each (the loss, the step's learning rate)
    assert max(per_step[s] for s in logging - window.epoch_ends) <= 6, calls
    # the training accuracy, logged once per epoch, is still over every batch of the epoch;
    # the metrics left out of training steps are still computed in validation
    logged = cli.trainer.callback_metrics
    by_hand = torch.cat(window.hits[2]).float().mean()
    assert len(window.hits[2]) == 6 and 0.2 < by_hand < 1
    assert float(logged["train/synthetic/accuracy"]) == pytest.approx(float(by_hand), abs=1e-6)
    assert "val/synthetic/accuracy_macro" in logged


def test_lookahead_blends_every_float_tensor_by_its_formula() -> None:
    """Lookahead's blend (two fused ops over the pairs found at the fit's start) is, tensor by
    tensor, avg = d * avg + (1 - d) * live and live = avg, with d = base ** every * (t / T) **
    power; integer state (BatchNorm's batch count) is left alone."""
    module = pl.LightningModule()
    module.net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    lookahead = Lookahead(every=5, base=0.9, power=2.0)
    lookahead.on_fit_start(None, module)  # type: ignore[arg-type]
    start = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        for v in module.state_dict(keep_vars=True).values():
            v.add_(torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else 1)
    live = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = SimpleNamespace(global_step=5, estimated_stepping_batches=20)
    lookahead.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    d = 0.9**5 * (5 / 20) ** 2.0
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            expected = d * start[key] + (1 - d) * live[key]
            torch.testing.assert_close(value, expected)
            torch.testing.assert_close(lookahead.average[key], expected)
        else:
            assert torch.equal(value, live[key])
    # not a blend step: nothing moves
    trainer.global_step = 6
    before = {k: v.clone() for k, v in module.state_dict().items()}
    lookahead.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
