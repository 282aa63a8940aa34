"""``python -m <project> sweep <name> [--workers N] [--trials N] [-- fit args]``: an Optuna study
whose trials are ordinary runs, ``<root>/<project>/sweeps/<name>/trial-<n>/``.

Each worker (a thread here; or the same command on another machine sharing the folder) asks the
study for a trial under a lock, runs ``python -m <project> fit --run.dir=... --<key>=<value>``
as a child, and tells the study how it ended: complete (with its value), pruned (exit status
PRUNED_EXIT) or failed. Asking stops when the trials that count, plus those running, reach
n_trials. A worker stops after its first MAX_FIRST_FAILURES trials all failed: a broken
setup, not bad luck. At the end: trials.csv, best.yaml and plots (report.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from litforge.errors import PRUNED_EXIT
from litforge.experiments import report
from litforge.experiments.launch import Job, wait_for, worker_env
from litforge.experiments.pruning import trial_callback
from litforge.experiments.space import Sweep, cli_args
from litforge.experiments.study import HOST, Heartbeat, ask_lock, counts, fail_stale, open_study

MAX_FIRST_FAILURES = 3
LOG_TAIL = 15  # lines of a failed trial's log to print


@dataclass
class SweepRun:
    """Everything a worker needs: the sweep, where it lives, how to start a child."""

    sweep: Sweep
    folder: Path
    storage: str
    module_args: list[str]  # python -m <module>
    extra: list[str]  # fit arguments after `--`
    group: str  # the W&B group of the sweep's runs
    launcher: Any
    stop: threading.Event

    @property
    def module(self) -> str:
        return self.module_args[-1]

    @property
    def study_name(self) -> str:
        return self.sweep.name

    def open(self) -> optuna.Study:
        s, (_, direction) = self.sweep, self.sweep.objective
        return open_study(self.storage, s.name, direction, s.make_sampler(), s.make_pruner())

    def child_args(self, number: int, params: dict[str, Any]) -> list[str]:
        """The trial's command line; last, its OptunaReport (reports to the study, prunes),
        added to whatever callbacks the arguments before chose."""
        run_dir = self.folder / f"trial-{number}"
        s = self.sweep
        return [
            *self.module_args,
            "fit",
            f"--run.dir={run_dir}",
            f"--run.wandb_group={self.group}",
            *cli_args(s.fixed),
            *self.extra,
            *cli_args(params),
            trial_callback(self.storage, self.study_name, number, s.objective[0], s.pruner),
        ]


def trial_value(sweep: Sweep, trial: optuna.trial.FrozenTrial, run_dir: Path) -> float | None:
    """The trial's value: its best (or last) reported value, else the metric in results.json."""
    reported = [v for _, v in sorted(trial.intermediate_values.items())]
    if reported:
        if sweep.reduce == "last":
            return reported[-1]
        return max(reported) if sweep.direction == "maximize" else min(reported)
    results = run_dir / "results.json"
    if results.is_file():
        value = json.loads(results.read_text()).get(sweep.metric)
        return None if value is None else float(value)
    return None


def _frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _ask(run: SweepRun, study: optuna.Study) -> optuna.Trial | None:
    with ask_lock(run.folder):
        stale = fail_stale(study)
        if stale:
            print(f"trials {stale} were left running by a stopped sweep: marked failed", flush=True)
        trials = study.get_trials(deepcopy=False)
        taken = sum(counts(t) or t.state == TrialState.RUNNING for t in trials)
        if taken >= run.sweep.n_trials:
            return None
        study.sampler = run.sweep.make_sampler(offset=len(trials))  # see make_sampler
        trial = study.ask()
        run.sweep.suggest(trial)
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("heartbeat", time.time())  # alive from the start (is_stale)
        trial.set_user_attr("run_dir", str(run.folder / f"trial-{trial.number}"))
        return trial


def tell(study: optuna.Study, trial: optuna.Trial, value: float | None, state: TrialState) -> None:
    """study.tell; the grid and brute-force samplers call study.stop() when their space is
    exhausted, which raises outside study.optimize, after the trial was stored: ignored, the
    sweep stops at n_trials by itself."""
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state, skip_if_finished=True)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def _describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k.rsplit('.', 1)[-1]}={report.fmt(v)}" for k, v in params.items())


def run_trial(
    run: SweepRun, study: optuna.Study, trial: optuna.Trial, worker: int, env: dict[str, str]
) -> TrialState:
    """Runs one trial as a child and tells the study how it ended."""
    sweep, number = run.sweep, trial.number
    run_dir = run.folder / f"trial-{number}"
    job = Job(run.child_args(number, trial.params), env, run_dir / "train.log")
    print(f"[worker {worker}] trial {number}: {_describe(trial.params)}", flush=True)
    started = time.time()
    heartbeat = Heartbeat(trial)
    try:
        code = run.launcher.run(job, run.stop)
    except BaseException:
        heartbeat.stop()
        trial.set_user_attr("interrupted", True)
        tell(study, trial, None, TrialState.FAIL)
        raise
    heartbeat.stop()
    wall = time.time() - started
    frozen = _frozen(study, number)
    if frozen.state.is_finished():  # another worker took it for stale (no heartbeat)
        print(
            f"[worker {worker}] trial {number}: ended with exit status {code}, but another "
            f"worker had already marked it {frozen.state.name.lower()}: left so",
            flush=True,
        )
        return frozen.state
    trial.set_user_attr("wall_s", round(wall, 2))
    trial.set_user_attr("exit_code", code)
    value = trial_value(sweep, frozen, run_dir) if code == 0 else None
    if run.stop.is_set() and code != 0:
        trial.set_user_attr("interrupted", True)
        state = TrialState.FAIL
        note = "interrupted"
    elif code == PRUNED_EXIT:
        state, note = TrialState.PRUNED, f"pruned after {len(frozen.intermediate_values)} epochs"
    elif code == 0 and value is not None:
        state, note = TrialState.COMPLETE, f"{sweep.metric}={value:.4f}"
    else:
        state = TrialState.FAIL
        note = f"failed (exit status {code})" if code else f"no value of {sweep.metric}"
        tail = (
            job.log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
            if job.log.is_file()
            else []
        )
        note += f"; log: {job.log}\n    " + "\n    ".join(tail)
    tell(study, trial, value if state == TrialState.COMPLETE else None, state)
    print(f"[worker {worker}] trial {number}: {note} ({wall:.0f} s)", flush=True)
    return state


def worker(run: SweepRun, index: int, env: dict[str, str], errors: list[BaseException]) -> None:
    """Asks, runs and tells trials until the study has its n_trials."""
    try:
        study = run.open()
        outcomes: list[TrialState] = []
        while not run.stop.is_set():
            trial = _ask(run, study)
            if trial is None:
                return
            outcomes.append(run_trial(run, study, trial, index, env))
            if len(outcomes) == MAX_FIRST_FAILURES and all(o == TrialState.FAIL for o in outcomes):
                if not run.stop.is_set():
                    print(
                        f"[worker {index}] stopped: its first {MAX_FIRST_FAILURES} trials all "
                        "failed; see their train.log",
                        flush=True,
                    )
                return
    except BaseException as err:
        errors.append(err)
        run.stop.set()


def run_sweep(run: SweepRun, workers: int, slots: list[str]) -> optuna.Study:
    """Runs ``workers`` workers (threads; worker i gets GPU slots[i % len] when there are GPUs)
    until the study is done or interrupted, then writes the report."""
    errors: list[BaseException] = []
    threads = []
    for i in range(workers):
        env = worker_env(i, workers, slots)
        thread = threading.Thread(target=worker, args=(run, i, env, errors), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        wait_for(threads, run.stop)
    finally:
        if run.stop.is_set():  # interrupted: the report so far
            report.write_report(run.open(), run.sweep, run.folder, run.module)
    if errors:
        raise errors[0]
    study = run.open()
    report.write_report(study, run.sweep, run.folder, run.module)
    return study
