"""What a run does beyond its config is visible, and what crosses processes has one place:

- every callback and plugin core adds to a fit is printed at its start and listed at the end of
  its config.yaml, and they are exactly what the trainer has beyond the config's own;
- ``litforge.run.handoff``: a DDP child (a direct child of the writing process) reads the run
  folder its launcher handed it; the writer itself, a later command and a grandchild do not;
- ``Project``: the one value a project's cli.py defines, whose name ``run`` uses for ``runs``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar

from litforge import Project, run, testing
from litforge.run import handoff
from litforge.run.checkpoint_io import AtomicCheckpointIO
from litforge.run.rundir import added_note

QUIET = ["--trainer.enable_model_summary=false", "--run.loggers=[csv]"]


def test_what_core_adds_is_printed_listed_in_config_yaml_and_all_the_trainer_has_beyond_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = '{"class_path": "litforge.StopOnNonFinite"}'
    with caplog.at_level("INFO"):
        cli = testing.main(
            [
                "fit",
                f"--run.dir={tmp_path / 'run'}",
                *QUIET,
                "--trainer.max_epochs=1",
                "--data.n_train=96",
                "--run.test_after_fit=false",
                "--trainer.callbacks=[]",
                f"--trainer.callbacks+={own}",
            ]
        )
    expected = cli.core_adds
    for item in [
        "ModelCheckpoint(best by val/synthetic/accuracy, max)",
        "ModelCheckpoint(last.ckpt)",
        "SaveOnInterrupt",
        "BudgetGuard",
        "RngState",
        "PacedProgressBar(refresh_rate=10)",
    ]:
        assert item in expected, expected
    assert expected[-1] == "AtomicCheckpointIO (plugin: atomic checkpoint writes)"
    printed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("core adds:")]
    assert printed == [f"core adds: {', '.join(expected)} (docs/runs.md)"]

    text = (cli.run_dir / "config.yaml").read_text()
    assert text.endswith(added_note(expected))
    saved = yaml.safe_load(text)  # the note is a comment: the config reads back the same
    assert [c["class_path"] for c in saved["trainer"]["callbacks"]] == ["litforge.StopOnNonFinite"]

    # the trainer's callbacks: the config's own, then exactly what was listed (Lightning's
    # own defaults aside: the model summary and the config saver)
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert names[0] == "StopOnNonFinite"
    added = [c for c in cli.trainer.callbacks[1:] if type(c).__name__ != "RunConfigSaver"]
    # Lightning moves the checkpoint callbacks to the end, keeping their order
    assert sorted(type(c).__name__ for c in added) == sorted(e.split("(")[0] for e in expected[:-1])
    best, last = [c for c in added if isinstance(c, ModelCheckpoint)]
    assert best.monitor == "val/synthetic/accuracy" and best.dirpath == last.dirpath
    assert Path(str(last.dirpath)) == cli.run_dir / "checkpoints" and last.monitor is None
    assert cli.trainer.checkpoint_callback is best  # what ckpt_path="best" names
    (bar,) = [c for c in added if isinstance(c, TQDMProgressBar)]
    assert bar.refresh_rate == 10
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_test_command_adds_only_the_progress_bar(tmp_path: Path) -> None:
    cli = testing.main(["test", f"--run.dir={tmp_path / 'run'}", *QUIET, "--data.n_train=96"])
    assert cli.core_adds == ["PacedProgressBar(refresh_rate=10)"]
    off = testing.main(
        ["test", f"--run.dir={tmp_path / 'b'}", *QUIET, "--trainer.enable_progress_bar=false"]
    )
    assert off.core_adds == []


# ---------------------------------------------------------------------- the handoff
READER = (
    "from litforge.run import handoff; import sys, subprocess; "
    "print(handoff.inherited_run_dir()); sys.stdout.flush(); "
    "subprocess.run([sys.executable, '-c', "
    "'from litforge.run import handoff; print(handoff.inherited_run_dir())'])"
)


@pytest.mark.slow  # python processes that import litforge: seconds each
def test_the_run_folder_reaches_a_direct_child_only(tmp_path: Path) -> None:
    before = os.environ.get(handoff.HANDOFF_ENV)
    with handoff.handing_off():
        handoff.hand_run_dir(str(tmp_path / "run"))
        handoff.hand_fit_plan({"max_steps": 7, "max_epochs": -1}, None)
        assert handoff.inherited_run_dir() is None  # not for the process that wrote it
        done = subprocess.run(
            [sys.executable, "-c", READER], capture_output=True, text=True, check=True
        )
        child, grandchild = done.stdout.split()
        assert child == str(tmp_path / "run")  # a DDP rank Lightning starts
        assert grandchild == "None"  # that rank's own children are not its launcher's
    assert os.environ.get(handoff.HANDOFF_ENV) == before  # gone when the command ends
    done = subprocess.run(
        [sys.executable, "-c", READER], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["None", "None"]


@pytest.mark.slow  # python processes that import litforge: seconds each
def test_the_plan_reaches_a_direct_child(tmp_path: Path) -> None:
    # as a DDP rank does: it hands its own run folder on first, then reads its launcher's plan
    code = (
        "from litforge.run import handoff; handoff.hand_run_dir('elsewhere'); "
        "print(handoff.inherited_fit_plan())"
    )
    with handoff.handing_off():
        handoff.hand_fit_plan({"max_steps": 7, "max_epochs": -1}, {"max_steps": 7})
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
    plan = {"overrides": {"max_steps": 7, "max_epochs": -1}, "plan": {"max_steps": 7}}
    assert done.stdout.strip() == str(plan)


# ---------------------------------------------------------------------- Project
def test_a_project_is_one_value_and_run_reads_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project("elsewhere", testing.TinyClassifier, testing.SyntheticData, [])
    assert project.config_files() == []
    on_call = Project("x", testing.TinyClassifier, testing.SyntheticData, lambda: ["a.yaml"])
    assert on_call.config_files() == ["a.yaml"]
    assert testing.project.name == "synthetic"
    assert testing.main == testing.project.main

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setattr(sys, "argv", ["x", "runs", f"--root={tmp_path}"])
    with pytest.raises(SystemExit) as exit_:
        run(project)
    assert exit_.value.code == 0
    assert f"no runs in {tmp_path / 'elsewhere'}" in capsys.readouterr().out

    with pytest.raises(TypeError, match=r"litforge\.Project"):
        run(testing.main)  # type: ignore[arg-type]


def test_a_kit_fit_under_pytest_gives_no_args_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main(args)`` while sys.argv holds a command line of its own (pytest's, as in every
    project test): LightningCLI's "args parameter is intended to run from within Python" warning
    is not given, the args alone are parsed, and sys.argv is the process's own again after."""
    pytest_like = [sys.argv[0], "-q", "tests/test_x.py", "--data.n_train=7"]
    monkeypatch.setattr(sys, "argv", pytest_like)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = testing.smoke(testing.main, tmp_path, "--data.n_train=160")
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "args parameter" in m], messages
    assert cli.datamodule.n_train == 160  # the args, not the command line's --data.n_train=7
    assert sys.argv == pytest_like


def test_fewer_batches_than_the_logging_interval_is_not_warned_of_and_logs_go_on(
    tmp_path: Path,
) -> None:
    """3 training batches an epoch, ``log_every_n_steps=10``: Lightning's "number of training
    batches (3) is smaller than the logging interval" warning is dropped (nothing to act on),
    and the logs show why: the step values still come every 10 steps, counted across epochs,
    and the epoch values at the end of every epoch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = testing.train(
            testing.main,
            tmp_path,
            "fit",
            "--trainer.max_epochs=4",
            "--trainer.log_every_n_steps=10",
            "--data.n_train=160",
        )
    assert cli.trainer.num_training_batches == 3 and cli.trainer.global_step == 12
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "logging interval" in m], messages
    with open(Path(cli.run_dir) / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    step_rows = [r for r in rows if r.get("train/synthetic/loss/total_step")]
    epoch_rows = [r for r in rows if r.get("train/synthetic/loss/total_epoch")]
    assert [int(r["step"]) for r in step_rows] == [9]  # the 10th step, in the 4th epoch
    assert [int(r["epoch"]) for r in epoch_rows] == [0, 1, 2, 3]
