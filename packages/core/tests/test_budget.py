"""The time budget and the measured precision (litforge.run.budget) through real Trainer runs of the
synthetic regression task: what is planned, what is saved, what a resumed run keeps, and how
the guard moves the plan when the machine slows down.

The budget counts from process start; inside pytest the process is as old as the session, so
every budget here is "the process's age now + a few seconds"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from litforge import testing
from litforge.run import budget
from litforge.run.budget import BudgetGuard, process_age, steps_that_fit
from litforge.run.handoff import HANDOFF_ENV
from litforge.tasks.structs import RegressionExample
from litforge.testing import regression

TESTS = Path(__file__).resolve().parent  # reliability_probes.py
EPOCH_STEPS = 6  # 320 rows, 15% val, 20% test: 208 training rows, batch 32, drop_last


def budget_leaving(seconds: float) -> float:
    """A budget that leaves about ``seconds`` to measure, train and test after its margins (a
    command run inside pytest counts its time from its own start, not the process's)."""
    return (seconds + budget.MARGIN_S) / (1 - budget.MARGIN_FRACTION)


def saved_config(cli: Any) -> dict[str, Any]:
    return yaml.safe_load((cli.run_dir / "config.yaml").read_text())


def guard_of(cli: Any) -> BudgetGuard:
    return next(c for c in cli.trainer.callbacks if isinstance(c, BudgetGuard))


# ---------------------------------------------------------------------- the arithmetic
def simulated_steps(seconds: float, step_s: float, per_epoch: int, val_s: float) -> int:
    """Independent count: add steps one at a time; every started epoch ends in a validation."""
    n = 0
    while True:
        m = n + 1
        epochs_started = -(-m // per_epoch)
        if m * step_s + epochs_started * val_s > seconds:
            return n
        n = m


@pytest.mark.parametrize("seconds", [0.0, 4.0, 9.5, 10.0, 33.35, 100.0, 250.0])
@pytest.mark.parametrize(
    ("step_s", "per_epoch", "val_s"), [(1.0, 10, 5.0), (0.3, 7, 0.0), (2.5, 3, 1.25)]
)
def test_steps_that_fit_matches_a_step_by_step_count(
    seconds: float, step_s: float, per_epoch: int, val_s: float
) -> None:
    assert steps_that_fit(seconds, step_s, per_epoch, val_s) == simulated_steps(
        seconds, step_s, per_epoch, val_s
    )


# ---------------------------------------------------------------------- the step timed
class SleepySGD(torch.optim.SGD):
    """SGD whose every step also sleeps 50 ms: an optimizer far costlier than the stand-in."""

    def step(self, closure: Any = None) -> Any:
        time.sleep(0.05)
        return super().step(closure)


class NeedsTrainer(regression.MLPRegressor):
    def configure_optimizers(self) -> Any:
        return self.trainer.max_steps  # not attached: raises, as a schedule reading it would


def test_the_step_is_timed_with_the_models_own_optimizer() -> None:
    rows = regression.feature_rows(64)
    batch = RegressionExample(torch.arange(64), features=rows["features"], target=rows["target"])
    sleepy = regression.MLPRegressor(4, optimizer=lambda groups: SleepySGD(groups, lr=1e-3))
    assert isinstance(budget.own_optimizer(sleepy), SleepySGD)
    # the 50 ms sleep is in every timed step: the model's own optimizer stepped, not SGD
    assert budget.time_train_steps(sleepy, batch, torch.device("cpu"), "32-true") >= 0.05
    # where the optimizer cannot be built before fit, SGD with momentum stands in
    stand_in = budget.own_optimizer(NeedsTrainer(4))
    assert type(stand_in) is torch.optim.SGD and stand_in.defaults["momentum"] == 0.9


# ---------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_a_budgeted_run_trains_the_planned_steps_and_saves_them(tmp_path: Path) -> None:
    given = budget_leaving(8)
    cli = testing.train(regression.main, tmp_path, "fit", f"--run.time_budget={given:.1f}")
    plan = cli._plan  # the guard's copy is gone: testing the best checkpoint restores its state
    assert plan is not None and plan.budget_s == pytest.approx(given, abs=0.05)
    assert (plan.steps_per_epoch, plan.val_batches, plan.test_batches) == (EPOCH_STEPS, 2, 2)
    # the plan is the most steps that fit what was left when it was made
    left = (
        plan.budget_s
        - plan.elapsed_s
        - plan.test_s
        - budget.MARGIN_S
        - budget.MARGIN_FRACTION * plan.budget_s
    )
    val_s = plan.val_batches * plan.eval_batch_s
    assert plan.max_steps == simulated_steps(left, plan.step_s, plan.steps_per_epoch, val_s)
    assert plan.max_steps > 10 * EPOCH_STEPS  # a tiny model: many epochs fit in 8 s
    config = saved_config(cli)
    assert config["trainer"]["max_epochs"] == -1
    # the guard may have moved the step count while training; the trainer trained exactly it
    assert cli.trainer.global_step == cli.trainer.max_steps
    assert config["trainer"]["max_steps"] == plan.max_steps
    assert (cli.run_dir / "results.json").exists()
    assert json.loads((cli.run_dir / "results.json").read_text())["test/rows/mse"] >= 0


def test_without_a_budget_nothing_is_measured_or_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> float:
        raise AssertionError("timed a step without a budget or precision=auto")

    monkeypatch.setattr(budget, "time_train_steps", forbidden)
    cli = testing.train(regression.main, tmp_path, "fit", "--trainer.max_epochs=2")
    assert guard_of(cli).plan is None
    config = saved_config(cli)
    assert (config["trainer"]["max_steps"], config["trainer"]["max_epochs"]) == (-1, 2)
    assert config["trainer"]["precision"] is None or str(config["trainer"]["precision"]) in (
        "32",
        "32-true",
    )
    assert cli.trainer.global_step == 2 * EPOCH_STEPS


@pytest.mark.parametrize(
    ("fp32_s", "bf16_s", "expected"), [(2.0, 1.0, "bf16-mixed"), (1.0, 2.0, "32-true")]
)
def test_auto_precision_keeps_the_faster_and_saves_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fp32_s: float,
    bf16_s: float,
    expected: str,
) -> None:
    """The timer is replaced (a real timing is this machine's to decide): the choice follows the
    times, is printed with them and is what config.yaml and the trainer say."""
    times = {"32-true": fp32_s, "bf16-mixed": bf16_s}
    monkeypatch.setattr(
        budget, "time_train_steps", lambda m, b, d, precision, steps=3: times[precision]
    )
    with caplog.at_level("INFO"):
        cli = testing.train(
            regression.main, tmp_path, "fit", "--trainer.max_epochs=1", "--run.precision=auto"
        )
    assert saved_config(cli)["trainer"]["precision"] == expected
    assert cli.trainer.precision == expected
    assert (
        f"precision: {expected} (a training step took {fp32_s:.3f} s in fp32 and {bf16_s:.3f} s"
        in caplog.text
    )


def test_auto_precision_on_this_machine_is_one_of_the_two_and_trains(tmp_path: Path) -> None:
    cli = testing.train(
        regression.main, tmp_path, "fit", "--trainer.max_epochs=1", "--run.precision=auto"
    )
    chosen = saved_config(cli)["trainer"]["precision"]
    assert chosen in ("bf16-mixed", "32-true")
    assert cli.trainer.precision == chosen
    assert cli.trainer.global_step == EPOCH_STEPS


@pytest.mark.slow
def test_a_resumed_run_keeps_the_saved_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budgeted run stopped by SIGTERM at step 10, long before its planned end, then resumed
    with the command it printed: the resume trains on to the step count the guard had set
    (saved in the checkpoint), measuring nothing."""
    monkeypatch.syspath_prepend(str(TESTS))  # reliability_probes, by class path
    stop = {
        "class_path": "reliability_probes.PauseForSignal",
        "init_args": {"step": 10, "marker": str(tmp_path / "paused"), "send": "SIGTERM"},
    }
    with pytest.raises(SystemExit) as exit_:
        testing.train(
            regression.main,
            tmp_path,
            "fit",
            f"--run.time_budget={budget_leaving(2):.1f}",
            f"--trainer.callbacks+={json.dumps(stop)}",
        )
    assert exit_.value.code == 143
    (run_dir,) = (tmp_path / "rows").iterdir()
    config, last = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    saved_steps = ckpt["callbacks"]["BudgetGuard"]["max_steps"]
    assert ckpt["global_step"] == 10 < saved_steps  # unfinished: most of the plan is left

    def forbidden(*args: Any, **kwargs: Any) -> float:
        raise AssertionError("a resumed run measured again")

    monkeypatch.setattr(budget, "time_train_steps", forbidden)
    # Its saved budget is long gone (the process is older now): a new plan would raise
    # BudgetError or train other steps. A resumed run keeps the saved ones and measures nothing.
    resumed = testing.train(
        regression.main, tmp_path, "fit", f"--config={config}", f"--ckpt_path={last}"
    )
    assert resumed.run_dir == run_dir
    assert guard_of(resumed).plan is None
    # the step count the guard had set (it may have moved the planned one), not a new plan
    assert resumed.trainer.max_steps == saved_steps
    assert resumed.trainer.global_step == saved_steps


def test_a_budget_too_small_for_one_step_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(budget.BudgetError, match=r"--run.time_budget=1 s leaves no time to train"):
        testing.train(regression.main, tmp_path, "fit", "--run.time_budget=1")


@pytest.mark.slow
def test_the_guard_shortens_the_run_when_the_machine_slows_down(tmp_path: Path) -> None:
    given = budget_leaving(8)
    spec = {"class_path": "litforge.testing.SlowDown", "init_args": {"after": 12, "seconds": 0.02}}
    cli = testing.train(
        regression.main,
        tmp_path,
        "fit",
        f"--run.time_budget={given:.1f}",
        f"--trainer.callbacks+={json.dumps(spec)}",
    )
    plan = cli._plan  # the guard's copy is gone: testing the best checkpoint restores its state
    assert plan is not None
    # planned at the unslowed pace; the slowed steps cost ~20 ms more each, so fewer fit
    assert cli.trainer.global_step < plan.max_steps
    assert cli.trainer.global_step == cli.trainer.max_steps < plan.max_steps
    # ... and the run (test included) ended within its budget
    assert process_age() <= given + 2.0


@pytest.mark.slow
def test_ddp_children_train_the_parents_plan(tmp_path: Path) -> None:
    """Two processes with a budget: the launching process measures, its DDP child reuses the
    plan; the guard's checks are collectives at the same steps on both ranks. Each rank reports
    what it trained (ReportSteps writes rank<r>.json): a silent child fails the test. Step
    counts, not the wall clock: on a loaded machine the clock says nothing about the plan."""
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    reports = tmp_path / "reports"
    report = {"class_path": "reliability_probes.ReportSteps", "init_args": {"folder": str(reports)}}
    args = [
        sys.executable, "-m", "litforge.testing.regression", "fit", f"--run.root={tmp_path}",
        "--run.loggers=[csv]", *testing.QUIET, "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--data.batch_size=16",
        "--run.time_budget=25", f"--trainer.callbacks+={json.dumps(report)}",
    ]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert output.count("time budget 25 s:") == 1  # measured once, by the launching process
    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in reports.glob("rank*.json")}
    assert sorted(ranks) == [0, 1], ranks  # the child trained and said so
    assert all(r["world_size"] == 2 for r in ranks.values())
    # the same plan on both ranks, as the guard moved it, trained to its end by both
    assert ranks[0]["max_steps"] == ranks[1]["max_steps"] > 0
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == ranks[0]["max_steps"]
    (run_dir,) = (tmp_path / "rows").iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    assert config["trainer"]["max_steps"] > 0  # the plan, saved
    assert results["step"] <= ranks[0]["global_step"]  # the best checkpoint's step


@pytest.mark.slow
def test_a_budget_run_ends_on_a_validated_step_whatever_the_process_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's tests run its command inside pytest, whose process is minutes old: the
    budget counts this command's time, not the process's (it said "194.7 s are gone
    already"). The run's last step is validated, wherever in an epoch the plan ends (Lightning
    validates nothing at a step count reached mid-epoch), and the test scores a checkpoint of
    a validated step: here the last one, or a better earlier one."""
    import csv

    monkeypatch.setattr(budget, "_since_process_start", lambda: 500.0)  # an old process
    cli = testing.train(
        regression.main, tmp_path, "fit", "--run.time_budget=12", "--run.loggers=[csv]"
    )
    assert cli._plan is not None and cli._plan.elapsed_s < 100  # the command's own clock
    last = cli.trainer.global_step
    assert last == cli.trainer.max_steps
    with (cli.run_dir / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    validated = {int(r["step"]) for r in rows if r.get("val/rows/mse")}
    assert max(validated) in (last - 1, last), (sorted(validated), last, EPOCH_STEPS)
    scored = json.loads((cli.run_dir / "results.json").read_text())
    assert scored["step"] in {s + (last - max(validated)) for s in validated}
    budget.start_clock(in_process=False)
    assert budget.process_age() == 500.0  # a command of its own counts from its process start
