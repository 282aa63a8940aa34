"""Sweeps and seed groups (litforge.experiments) on the synthetic image task
(``python -m litforge.testing``): the sweep file's checks, the study's bookkeeping, and real
sweeps whose trials are real child runs (marked slow: each child run takes a few seconds)."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from litforge.errors import LitforgeError
from litforge.experiments import space, stats, study
from litforge.experiments.space import SweepFileError, load_sweep
from litforge.run.handoff import HANDOFF_ENV

# Every trial: one or a few epochs on 64 training images, no diagnostics, no test.
FAST = {
    "trainer.max_epochs": 1,
    "trainer.callbacks": [],
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
    "run.loggers": ["csv"],
    "run.test_after_fit": False,
    "data.n_train": 128,
}
METRIC = "val/synthetic/accuracy"


def write_sweep(folder: Path, name: str = "s", **fields: Any) -> Path:
    spec: dict[str, Any] = {
        "metric": METRIC,
        "direction": "maximize",
        "n_trials": 4,
        "sampler": {"type": "random", "seed": 0},
        "parameters": {
            "model.width": {"type": "int", "low": 4, "high": 16},
            "model.optimizer.init_args.lr": {
                "type": "float",
                "low": 1e-3,
                "high": 3e-2,
                "log": True,
            },
        },
        "fixed": dict(FAST),
    }
    spec.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "litforge.testing", *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(*args), env=env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def load(root: Path, name: str) -> optuna.Study:
    journal = root / "synthetic" / "sweeps" / name / "study.journal"
    return optuna.load_study(study_name=name, storage=study.open_storage(str(journal)))


def trial_config(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return yaml.safe_load((Path(t.user_attrs["run_dir"]) / "config.yaml").read_text())


def check_trial_folder(t: optuna.trial.FrozenTrial) -> None:
    """The trial ran once, in its own folder, with its own parameters."""
    config = trial_config(t)
    assert config["model"]["width"] == t.params["model.width"]
    lr = config["model"]["optimizer"]["init_args"]["lr"]
    assert lr == pytest.approx(t.params["model.optimizer.init_args.lr"])
    status = json.loads((Path(t.user_attrs["run_dir"]) / "status.json").read_text())
    assert status["attempts"] == 1, status
    # its link to the study came on its command line: listed with its callbacks
    (report,) = [c for c in config["trainer"]["callbacks"] if "OptunaReport" in c["class_path"]]
    assert report["init_args"]["trial"] == t.number and report["init_args"]["metric"] == METRIC


# ---------------------------------------------------------------------- the sweep file
def test_sweep_file_reads_every_kind_of_parameter(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "metric: val/x/loss/total\ndirection: minimize\nn_trials: 3\n"
        "sampler: {type: TPESampler, seed: 1}\npruner: median\n"
        "parameters:\n"
        "  model.width: {type: int, low: 8, high: 32, step: 8}\n"
        "  model.optimizer.init_args.lr: {type: float, low: 1e-4, high: 1e-1, log: true}\n"
        "  data.batch_size: [32, 64]\n"
        "fixed: {trainer.max_epochs: 2}\n"
    )
    sweep = load_sweep(path, n_trials=7)
    assert sweep.name == "ok" and sweep.n_trials == 7 and sweep.reduce == "best"
    lr = sweep.parameters["model.optimizer.init_args.lr"]
    assert lr["low"] == 1e-4 and lr["log"] is True  # YAML reads 1e-4 as a string: converted
    assert sweep.parameters["data.batch_size"] == {"type": "categorical", "choices": [32, 64]}
    assert type(sweep.make_sampler()).__name__ == "TPESampler"
    assert type(sweep.make_pruner()).__name__ == "MedianPruner"
    trial = optuna.create_study().ask()
    values = sweep.suggest(trial)
    assert values["model.width"] in (8, 16, 24, 32) and values["data.batch_size"] in (32, 64)
    assert space.cli_args({"a.b": 0.5, "c": [1, "x"], "d": "s", "e": False}) == [
        "--a.b=0.5",
        '--c=[1, "x"]',
        "--d=s",
        "--e=false",
    ]
    assert space.nested({"model.width": 8, "model.optimizer.init_args.lr": 0.1}) == {
        "model": {"width": 8, "optimizer": {"init_args": {"lr": 0.1}}}
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("direction: maximize\nn_trials: 2\nparameters: {a: [1]}", "without a metric"),
        ("metric: val/a\nn_trials: 2\nparameters: {a: [1]}", "direction is missing"),
        ("metric: acc\ndirection: maximize\nn_trials: 2\nparameters: {a: [1]}", "metric: 'acc'"),
        ("metric: val/a\ndirection: up\nn_trials: 2\nparameters: {a: [1]}", "direction: 'up'"),
        ("metric: val/a\ndirection: maximize\nn_trials: 0\nparameters: {a: [1]}", "n_trials: 0"),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: {type: float, low: 0, high: 1, log: true}}",
            "parameters.a: log needs low > 0",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: {type: float, low: 2, high: 1}}",
            "parameters.a: low (2) must be below high (1)",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: {type: normal}}",
            "parameters.a.type: 'normal'",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: {type: int, low: 1, high: x}}",
            "parameters.a.high: 'x' is not a number",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: [1]}\nsampler: {type: magic}",
            "sampler.type: 'magic' is not an Optuna sampler",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: [1]}\npruner: {type: median, patience: 3}",
            "pruner: MedianPruner refused",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: [1]}\ntrials: 3",
            "unknown key(s) trials",
        ),
        (
            "metric: val/a\ndirection: maximize\nn_trials: 2\nparameters: {a: [1]}\nfixed: {run.dir: x}",
            "run.dir is set by the sweep itself",
        ),
    ],
)
def test_sweep_file_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SweepFileError) as err:
        load_sweep(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


def test_a_sweep_without_a_metric_optimises_the_monitored_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No metric (nor direction) in the file: the sweep takes what the runs' best checkpoint is
    chosen by, as the fit would build it (its --run.monitor, else the model's best_metric), in
    that metric's own direction; the temporary run folder it builds them in does not stay."""
    from litforge.experiments.command import monitored
    from litforge.testing import main

    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path)
    spec = yaml.safe_load(path.read_text())
    del spec["metric"], spec["direction"]
    path.write_text(yaml.safe_dump(spec))
    before = set(tmp_path.iterdir()), set(Path(tempfile.gettempdir()).glob("litforge-monitor-*"))
    environ = dict(os.environ)
    sweep = load_sweep(path)
    assert (sweep.metric, sweep.direction) == (None, None)
    with pytest.raises(LitforgeError, match="not known yet"):
        _ = sweep.objective
    args = space.cli_args(sweep.fixed)
    assert monitored(main, args) == (METRIC, "maximize")  # a Classifier's accuracy
    loss = "val/synthetic/loss/total"
    assert monitored(main, [*args, f"--run.monitor={loss}"]) == (loss, "minimize")
    assert monitored(main, [*args, "--run.monitor_mode=min"]) == (METRIC, "minimize")
    assert sweep.with_objective(METRIC, "maximize").objective == (METRIC, "maximize")
    after = set(tmp_path.iterdir()), set(Path(tempfile.gettempdir()).glob("litforge-monitor-*"))
    assert after == before and dict(os.environ) == environ  # the trials inherit it


def test_sweeps_are_found_by_name_or_path(tmp_path: Path) -> None:
    (tmp_path / "configs" / "sweeps").mkdir(parents=True)
    (tmp_path / "configs" / "sweeps" / "quick.yaml").write_text("x: 1")
    assert space.find_sweep("quick", tmp_path).name == "quick.yaml"
    assert space.find_sweep(str(tmp_path / "configs/sweeps/quick.yaml"), Path("/")).is_file()
    with pytest.raises(SweepFileError, match="sweeps here: quick"):
        space.find_sweep("slow", tmp_path)


# ---------------------------------------------------------------------- study and statistics
def test_trials_of_dead_workers_are_failed_and_not_counted(tmp_path: Path) -> None:
    s = study.open_study(str(tmp_path / "j"), "s", "maximize", None, None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive, gone, silent = s.ask(), s.ask(), s.ask()
    for t, pid in ((alive, os.getpid()), (gone, dead.pid), (silent, os.getpid())):
        t.set_user_attr("host", study.HOST)
        t.set_user_attr("pid", pid)
        t.set_user_attr("heartbeat", time.time())
    silent.set_user_attr("heartbeat", time.time() - study.STALE_AFTER - 1)  # another host's
    finished = s.ask()
    s.tell(finished, 1.0)
    assert study.fail_stale(s) == [gone.number, silent.number]
    trials = {t.number: t for t in s.get_trials()}
    assert trials[alive.number].state == TrialState.RUNNING
    for n in (gone.number, silent.number):
        assert trials[n].state == TrialState.FAIL and study.is_interrupted(trials[n])
        assert not study.counts(trials[n])
    assert study.counts(trials[finished.number])


def test_student_t_interval() -> None:
    # t quantiles (0.975) from tables
    for df, t in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)]:
        assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    values = [0.5, 0.7, 0.6, 0.9]
    s = stats.spread(values)
    assert s.mean == pytest.approx(statistics.mean(values))
    assert s.std == pytest.approx(statistics.stdev(values))
    half = 3.182446 * s.std / 2
    assert (s.low, s.high) == pytest.approx((s.mean - half, s.mean + half), abs=1e-5)
    one = stats.spread([0.5])
    assert one.mean == 0.5 and one.std != one.std  # nan: no spread from one seed


def test_wandb_group_reaches_the_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from litforge.run.loggers import make_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    (logger,) = make_loggers(["wandb"], tmp_path / "run", "p", group="p-sweep-s")
    assert logger._wandb_init["group"] == "p-sweep-s"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- real sweeps
@pytest.mark.slow
def test_an_interrupted_sweep_runs_only_the_remaining_trials(tmp_path: Path) -> None:
    path, root = write_sweep(tmp_path, "four"), tmp_path / "runs"
    journal = root / "synthetic" / "sweeps" / "four" / "study.journal"
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        sweep = subprocess.Popen(
            command("sweep", str(path), "--root", str(root)),
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 240
        first: dict[int, Any] = {}
        while len(first) < 2:
            assert sweep.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
            if journal.is_file():
                trials = load(root, "four").get_trials(states=(TrialState.COMPLETE,))
                first = {t.number: t.datetime_complete for t in trials}
        sweep.kill()  # SIGKILL: no cleanup; its running trial's child dies with it
        sweep.wait()

    run("sweep", str(path), "--root", str(root))
    trials = load(root, "four").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4, [(t.number, t.state) for t in trials]
    for t in complete:
        if t.number in first:  # not run again
            assert t.datetime_complete == first[t.number]
        check_trial_folder(t)
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(others) <= 1 and all(study.is_interrupted(t) for t in others), others
    assert (
        len({(t.params["model.width"], t.params["model.optimizer.init_args.lr"]) for t in complete})
        == 4
    )
    for t in others:  # the killed sweep's child did not go on training
        status_file = Path(t.user_attrs["run_dir"]) / "status.json"
        if status_file.is_file():
            pid = json.loads(status_file.read_text())["pid"]
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    folder = root / "synthetic" / "sweeps" / "four"
    with open(folder / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(trials) and sum(r["state"] == "complete" for r in rows) == 4
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert set(best["model"]) == {"width", "optimizer"}
    assert (folder / "history.png").is_file() and (folder / "importance.png").is_file()


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    """Two sweep commands on one folder (as on two machines), one of them with two workers."""
    path, root = write_sweep(tmp_path, "shared"), tmp_path / "runs"
    sweeps = [
        subprocess.Popen(
            command("sweep", str(path), "--root", str(root), *workers),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for workers in (["--workers", "2"], [])
    ]
    for s in sweeps:
        out, _ = s.communicate(timeout=300)
        assert s.returncode == 0, out[-3000:]
    trials = load(root, "shared").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4
    for t in trials:
        check_trial_folder(t)


@pytest.mark.slow
def test_a_sweep_without_a_metric_runs_on_the_best_checkpoints_metric(tmp_path: Path) -> None:
    """A sweep file without metric and direction: the study maximises the synthetic
    classifier's monitored accuracy, each trial reports it, and a trial's value is its best
    validation accuracy in its own metrics.csv, the score of its best checkpoint."""
    path = write_sweep(tmp_path, "monitored", n_trials=2, fixed={**FAST, "trainer.max_epochs": 2})
    spec = yaml.safe_load(path.read_text())
    del spec["metric"], spec["direction"]
    path.write_text(yaml.safe_dump(spec))
    root = tmp_path / "runs"
    out = run("sweep", str(path), "--root", str(root)).stdout
    assert f"{METRIC} (maximize, the runs' monitored metric)" in out, out
    s = load(root, "monitored")
    assert s.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = s.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        check_trial_folder(t)  # its OptunaReport reported METRIC
        run_dir = Path(t.user_attrs["run_dir"])
        with open(run_dir / "csv" / "metrics.csv") as f:
            logged = [float(r[METRIC]) for r in csv.DictReader(f) if r.get(METRIC)]
        assert len(logged) == 2 and t.value == pytest.approx(max(logged))
        # the state of its best-checkpoint callback, as saved with its last checkpoint
        saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
        (best,) = [v for k, v in saved.items() if f"'monitor': '{METRIC}'" in k]
        assert float(best["best_model_score"]) == pytest.approx(t.value)
    with open(root / "synthetic" / "sweeps" / "monitored" / "trials.csv") as f:
        assert METRIC in next(csv.reader(f))


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_as_pruned_with_fewer_epochs(tmp_path: Path) -> None:
    # lr 0 keeps the accuracy at chance (0.22 here), lr 0.05 reaches 1.0 in an epoch: the
    # threshold pruner must stop the first after its second validation, never the second.
    path = write_sweep(
        tmp_path,
        "prune",
        n_trials=2,
        sampler={"type": "bruteforce", "seed": 0},
        pruner={"type": "threshold", "lower": 0.4, "n_warmup_steps": 1},
        parameters={"model.optimizer.init_args.lr": [0.0, 0.05]},
        fixed={**FAST, "trainer.max_epochs": 3},
    )
    root = tmp_path / "runs"
    out = run("sweep", str(path), "--root", str(root)).stdout
    trials = {t.params["model.optimizer.init_args.lr"]: t for t in load(root, "prune").get_trials()}
    pruned, complete = trials[0.0], trials[0.05]
    assert pruned.state == TrialState.PRUNED and complete.state == TrialState.COMPLETE, out
    assert len(pruned.intermediate_values) == 2 and len(complete.intermediate_values) == 3
    metrics = Path(pruned.user_attrs["run_dir"]) / "csv" / "metrics.csv"
    with open(metrics) as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get(METRIC)}
    assert epochs == {"0", "1"}  # it trained two epochs, not three
    assert "1 complete, 1 pruned" in out


@pytest.mark.slow
def test_a_submitit_local_job_runs_a_trial(tmp_path: Path) -> None:
    path, root = write_sweep(tmp_path, "jobs", n_trials=1), tmp_path / "runs"
    run("sweep", str(path), "--root", str(root), "--launcher", "local")
    (trial,) = load(root, "jobs").get_trials()
    assert trial.state == TrialState.COMPLETE
    check_trial_folder(trial)
    jobs = root / "synthetic" / "sweeps" / "jobs" / "submitit"
    assert list(jobs.glob("*_result.pkl")), list(jobs.iterdir())


@pytest.mark.slow
def test_the_seed_summary_matches_the_runs_results(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    fit_args = [f"--{k}={space.cli_value(v)}" for k, v in FAST.items() if k != "run.test_after_fit"]
    out = run("repeat", "--seeds", "3", "--workers", "2", "--root", str(root), "--", *fit_args)
    (group,) = (root / "synthetic" / "repeats").iterdir()
    results = [json.loads((group / f"seed-{s}" / "results.json").read_text()) for s in range(3)]
    configs = [yaml.safe_load((group / f"seed-{s}" / "config.yaml").read_text()) for s in range(3)]
    assert [c["seed_everything"] for c in configs] == [0, 1, 2]
    assert [c["data"]["seed"] for c in configs] == [0, 1, 2]
    assert len({c["run"]["wandb_group"] for c in configs}) == 1
    with open(group / "summary.csv") as f:
        rows = {r["metric"]: r for r in csv.DictReader(f)}
    metric = "test/synthetic/accuracy"
    values = [r[metric] for r in results]
    assert float(rows[metric]["mean"]) == pytest.approx(statistics.mean(values))
    assert float(rows[metric]["std"]) == pytest.approx(statistics.stdev(values))
    assert int(rows[metric]["n"]) == 3
    assert metric in out.stdout and "95% interval" in out.stdout
