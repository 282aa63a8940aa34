"""The table of runs (``litforge.run.runs``): status.json written by the CLI (finished, interrupted,
failed, killed), the settings that differ, the final metrics, runs.csv and the curves' plot.
Real, short Trainer runs of the synthetic image task."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litforge import testing
from litforge.command import run
from litforge.run.handoff import HANDOFF_ENV
from litforge.run.runs import (
    RUNS_CSV,
    effective_status,
    final_metrics,
    find_runs,
    flatten,
    metric_series,
    plot_metric,
    read_status,
    shown_columns,
    table,
)

TESTS = Path(__file__).resolve().parent
COMMON = ["--run.loggers=[csv]", *testing.QUIET, "--trainer.callbacks=[]"]
VAL_ACCURACY = "val/synthetic/accuracy"


@pytest.fixture(scope="module", autouse=True)
def probes_importable() -> Iterator[None]:
    """The reliability probes (crash, signal) are given to the CLI by class path."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        mp.delenv(HANDOFF_ENV, raising=False)
        yield


def probe(name: str, **init_args: Any) -> str:
    spec = {"class_path": f"reliability_probes.{name}", "init_args": init_args}
    return f"--trainer.callbacks+={json.dumps(spec)}"


def fit(root: Path, *args: str) -> Any:
    return testing.main(["fit", f"--run.root={root}", *COMMON, *args])


def only_run(root: Path, before: set[Path]) -> Path:
    (new,) = set((root / "synthetic").iterdir()) - before
    return new


@pytest.fixture(scope="module")
def four_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two finished runs (other width and epochs), one stopped by SIGTERM at step 3, one crashed
    at step 2, in that order."""
    tmp = tmp_path_factory.mktemp("table")
    root = tmp / "runs"
    dirs = [
        fit(root, "--model.width=8", "--trainer.max_epochs=1").run_dir,
        fit(root, "--model.width=16", "--trainer.max_epochs=2").run_dir,
    ]
    before = set((root / "synthetic").iterdir())
    with pytest.raises(SystemExit) as stopped:
        fit(
            root,
            "--model.width=8",
            "--trainer.max_epochs=2",
            probe("PauseForSignal", step=3, marker=str(tmp / "m"), send="SIGTERM"),
        )
    assert stopped.value.code == 143
    dirs.append(only_run(root, before))
    before = set((root / "synthetic").iterdir())
    with pytest.raises(RuntimeError, match="probe crash at step 2"):
        fit(root, "--model.width=8", "--trainer.max_epochs=1", probe("CrashAt", step=2))
    dirs.append(only_run(root, before))
    return {"root": root, "dirs": dirs, "folder": root / "synthetic"}


@pytest.mark.slow
def test_table_lists_statuses_differing_settings_and_final_metrics(
    four_runs: dict[str, Any],
) -> None:
    dirs = four_runs["dirs"]
    assert find_runs(four_runs["folder"]) == dirs  # oldest first
    columns, rows = table(dirs)
    assert [r["run"] for r in rows] == [d.name for d in dirs]
    assert [r["status"] for r in rows] == ["finished", "finished", "interrupted", "failed"]
    failed = read_status(dirs[3])
    assert failed is not None and "RuntimeError: probe crash at step 2" in failed["error"]
    assert all(isinstance(r["wall_s"], float) and r["wall_s"] > 0 for r in rows)

    # only the settings that differ: width, epochs and the probes (none of the shared ones)
    differing = columns[4 : columns.index("checkpoint")]
    assert differing == sorted(
        [
            "model.width",
            "trainer.max_epochs",
            "trainer.callbacks",  # [] in the finished runs, a probe in the others
            "trainer.callbacks.PauseForSignal",
            "trainer.callbacks.PauseForSignal.marker",
            "trainer.callbacks.PauseForSignal.send",
            "trainer.callbacks.PauseForSignal.step",
            "trainer.callbacks.CrashAt",
            "trainer.callbacks.CrashAt.step",
        ]
    ), differing
    assert [r["model.width"] for r in rows] == [8, 16, 8, 8]
    assert [r["trainer.max_epochs"] for r in rows] == [1, 2, 2, 1]

    # the final metrics are those of results.json; the unfinished runs have none
    for run_dir, row in zip(dirs, rows):
        path = run_dir / "results.json"
        if row["status"] != "finished":
            assert not path.exists()
            assert all(row[c] is None for c in columns if c.startswith("test/"))
            continue
        saved = json.loads(path.read_text())
        metrics = final_metrics(saved)
        assert {c for c in columns if c.startswith("test/")} == set(metrics)
        assert {k: row[k] for k in metrics} == metrics
        assert (row["checkpoint"], row["epoch"]) == (saved["checkpoint"], saved["epoch"])


@pytest.mark.slow
def test_runs_command_prints_the_table_writes_csv_and_plots(
    four_runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m litforge.testing runs ...`` through litforge.run.cli.run, in this process."""
    root, folder, dirs = four_runs["root"], four_runs["folder"], four_runs["dirs"]
    args = ["litforge.testing", "runs", f"--root={root}", f"--plot={VAL_ACCURACY}"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_:
        run(testing.project)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "started", "status", "wall_s"] and "model.width" in header
    assert "test/synthetic/accuracy" in header and "test/synthetic/loss/total" in header
    assert "test/synthetic/loss/cross_entropy" not in header  # loss terms: in the CSV only
    for run_dir, status in zip(dirs, ["finished", "finished", "interrupted", "failed"]):
        (line,) = [x for x in lines if x.startswith(run_dir.name)]
        assert f" {status} " in line

    # runs.csv: every column, the same rows
    columns, rows = table(dirs)
    with (folder / RUNS_CSV).open(newline="") as f:
        saved = list(csv.DictReader(f))
    assert list(saved[0]) == columns and len(saved) == 4
    for got, row in zip(saved, rows):
        for key in ("run", "status", "model.width", "test/synthetic/accuracy"):
            assert got[key] == ("" if row[key] is None else str(row[key])), key

    # the plot: its path is printed; its data are the CSV logs' values
    png = folder / "plots" / f"{VAL_ACCURACY.replace('/', '_')}.png"
    assert f"plot of {VAL_ACCURACY} (2 of 4 runs logged it): {png}" in out
    assert png.is_file() and png.stat().st_size > 5000
    series = plot_metric(dirs, VAL_ACCURACY, png)
    assert list(series) == [dirs[0].name, dirs[1].name]  # the others stopped before validating
    for run_dir in dirs[:2]:
        with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
            logged = [r for r in csv.DictReader(f) if r[VAL_ACCURACY]]
        assert series[run_dir.name]["value"] == [float(r[VAL_ACCURACY]) for r in logged]
        assert series[run_dir.name]["step"] == [float(r["step"]) for r in logged]
    assert len(series[dirs[1].name]["value"]) == 2  # one validation per epoch
    assert metric_series(dirs, "val/synthetic/nothing") == {}

    # --last 2: the two most recent runs only
    monkeypatch.setattr(sys, "argv", [*args[:3], "--last=2", "--metric=accuracy"])
    with pytest.raises(SystemExit):
        run(testing.project)
    out = capsys.readouterr().out
    assert dirs[0].name not in out and dirs[1].name not in out
    assert dirs[2].name in out and dirs[3].name in out and "2 runs" in out


def test_shown_columns_and_flatten() -> None:
    columns = ["run", "status", "test/a/accuracy", "test/a/loss/ce", "test/a/loss/total"]
    assert shown_columns(columns) == ["run", "status", "test/a/accuracy", "test/a/loss/total"]
    assert shown_columns(columns, ["accuracy"]) == ["run", "status", "test/a/accuracy"]
    assert shown_columns(columns, ["test/a/loss/ce"]) == ["run", "status", "test/a/loss/ce"]
    config = {
        "model": {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}},
        "trainer": {"callbacks": [{"class_path": "a.B", "init_args": {"k": 2}}], "devices": [0]},
    }
    assert flatten(config) == {
        "model.optimizer.class_path": "torch.optim.SGD",
        "model.optimizer.lr": 0.1,
        "trainer.callbacks.B": True,
        "trainer.callbacks.B.k": 2,
        "trainer.devices": "[0]",
    }


def test_failure_before_training_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the training set is empty"):
        fit(tmp_path, f"--run.dir={tmp_path / 'run'}", "--data.n_train=0")
    status = read_status(tmp_path / "run")
    assert status is not None and status["status"] == "failed" and status["subcommand"] == "fit"
    assert "the training set is empty" in status["error"] and status["wall_s"] >= 0


def test_a_run_whose_process_is_gone_is_listed_as_killed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = {"status": "running", "host": socket.gethostname()}
    assert effective_status({**here, "pid": gone.pid}) == "killed"
    assert effective_status({**here, "pid": os.getpid()}) == "running"
    assert effective_status({**here, "host": "elsewhere", "pid": gone.pid}) == "running"
    assert effective_status(None) == "unknown"
    run_dir = tmp_path / "synthetic" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({**here, "pid": gone.pid, "started": "x"}))
    _, rows = table(find_runs(tmp_path / "synthetic"))
    assert rows[0]["status"] == "killed"


@pytest.mark.slow
def test_resumed_run_keeps_its_start_and_adds_up_its_wall_time(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    marker = tmp_path / "m"
    with pytest.raises(SystemExit):
        fit(
            tmp_path,
            f"--run.dir={run_dir}",
            "--trainer.max_epochs=1",
            probe("PauseForSignal", step=2, marker=str(marker), send="SIGTERM"),
        )
    first = read_status(run_dir)
    assert first is not None and first["status"] == "interrupted" and first["attempts"] == 1
    fit(
        tmp_path,
        f"--run.dir={run_dir}",
        "--trainer.max_epochs=1",
        f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
    )
    second = read_status(run_dir)
    assert second is not None and second["status"] == "finished" and second["attempts"] == 2
    assert second["started"] == first["started"] < second["last_started"]
    assert second["wall_s"] > first["wall_s"]


def test_a_pruned_trial_is_listed_as_pruned_not_failed() -> None:
    from litforge.errors import TrialPruned
    from litforge.run.runs import outcome_of

    assert outcome_of(TrialPruned("val/x/accuracy 0.2 at epoch 1"), "interrupted") == "pruned"
    assert outcome_of(RuntimeError("boom"), "interrupted") == "failed"
