"""Faults, round 2 (issue 28), as a user meets them: each case a real command in its own process,
checking the exit status, the one ``error: ...`` line (under 200 characters, no traceback) and
the run's files before and after, byte for byte. docs/runs.md, "Faults and bad input", lists
every case with its test. Subprocess fits: slow tier."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from litforge.run.handoff import HANDOFF_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--run.loggers=[csv]"]
SYNTHETIC = ["-m", "litforge.testing", "fit", *QUIET]
TEMPLATE = ["-m", "template_project", "fit", *QUIET, "--data.n_train=256", "--data.n_test=64"]
TEMPLATE += ["--data.val_size=64"]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env.update(OMP_NUM_THREADS="1")
    return env


def command(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(done: subprocess.CompletedProcess[str], status: int, *names: str) -> str:
    """The one ``error:`` line of stderr (under 200 characters), after checking the status, the
    names and that no traceback was printed."""
    out = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    assert "Traceback" not in done.stdout + done.stderr, out
    assert done.returncode == status, out
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    missing = [name for name in names if name not in errors[0]]
    assert not missing, f"{missing} not in: {errors[0]}"
    print(errors[0])
    return errors[0]


def hashes(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` (hidden ones included) -> its sha256."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished template run (one epoch, tested: metrics.csv holds test rows) and a finished
    run of the synthetic image task (another project)."""
    root = tmp_path_factory.mktemp("runs")
    template, synthetic = root / "template", root / "synthetic"
    done = command(*TEMPLATE, f"--run.dir={template}", "--trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    done = command(*SYNTHETIC, f"--run.dir={synthetic}", "--trainer.max_steps=2")
    assert done.returncode == 0, done.stderr[-3000:]
    return {"template": template, "synthetic": synthetic}


def test_a_failed_resume_changes_no_file_of_any_run(finished_runs: dict[str, Path]) -> None:
    """The printed resume command with ``--model.width=32``, and the template given the other
    project's checkpoint: one line each, and every file of both runs (status.json,
    csv/metrics.csv with its test rows, checkpoints, config.yaml) byte for byte as it was. The
    checkpoint is checked against the model before anything is written."""
    template, synthetic = finished_runs["template"], finished_runs["synthetic"]
    before = hashes(template, synthetic)
    assert "test/" in (template / "csv" / "metrics.csv").read_text()  # the rows at stake
    resume = [*TEMPLATE, f"--config={template / 'config.yaml'}"]
    resume += [f"--ckpt_path={template / 'checkpoints' / 'last.ckpt'}"]
    line = error_line(command(*resume, "--model.width=32"), 1, "does not fit", "of another shape")
    assert len(line) - len(resume[-1]) < 200, line  # the path is the user's
    other = [*TEMPLATE, f"--ckpt_path={synthetic / 'checkpoints' / 'last.ckpt'}"]
    line = error_line(command(*other), 1, str(synthetic), "another model", "another project")
    assert len(line) - len(other[-1]) < 200, line
    assert hashes(template, synthetic) == before
    assert '"status": "finished"' in (template / "status.json").read_text()


def test_two_writers_of_one_run_the_second_is_refused(
    finished_runs: dict[str, Path], tmp_path: Path
) -> None:
    """Two resumes of one run started 0.3 s apart: one trains on (exit 0), the other is refused
    before it writes anything, its one line naming the holder (pid, command); every step is
    logged once, no ``best-...-v1.ckpt``; the lock is gone after."""
    import csv
    import shutil

    run = Path(shutil.copytree(finished_runs["template"], tmp_path / "run"))
    resume = [*TEMPLATE, f"--config={run / 'config.yaml'}", "--trainer.max_epochs=30"]
    resume += [f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    procs = []
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [sys.executable, *resume],
                cwd=REPO,
                env=environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        time.sleep(0.3)
    outputs = [p.communicate(timeout=300) for p in procs]
    done = [subprocess.CompletedProcess(p.args, p.returncode, *o) for p, o in zip(procs, outputs)]
    codes = sorted(d.returncode for d in done)
    assert codes == [0, 1], [d.stderr[-2000:] for d in done]
    winner = procs[[d.returncode for d in done].index(0)]
    loser = done[[d.returncode for d in done].index(1)]
    line = error_line(loser, 1, f"the run folder {run} is in use by process {winner.pid}")
    assert "template_project fit" in line and len(line) - len(str(run)) < 200, line
    assert not (run / ".lock").exists()
    with (run / "csv" / "metrics.csv").open() as f:
        epochs = [r["epoch"] for r in csv.DictReader(f) if r.get("val/shapes/loss/total")]
    assert sorted(epochs, key=int) == [str(e) for e in range(30)]  # each validation once
    assert not [p for p in (run / "checkpoints").iterdir() if "-v1" in p.name]


def test_a_killed_writer_leaves_no_stuck_lock(tmp_path: Path) -> None:
    """``kill -9`` of a fit that holds the lock (the OOM killer, a node lost): the lock file
    names the dead process, and the printed resume command runs (the kernel's lock ended with
    the process; no pid guessing)."""
    import signal

    run = tmp_path / "run"
    args = [*SYNTHETIC, f"--run.dir={run}", "--trainer.max_epochs=50"]
    args += ["--trainer.limit_val_batches=0", "--run.test_after_fit=false"]
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=environment())
    deadline = time.monotonic() + 120
    last = run / "checkpoints" / "last.ckpt"
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert f'"pid": {proc.pid}' in (run / ".lock").read_text()  # left behind, named
    resume = [*SYNTHETIC, f"--config={run / 'config.yaml'}", f"--ckpt_path={last}"]
    # the killed fit may have saved several epochs before the kill: two more than it saved
    saved = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    done = command(*resume, f"--trainer.max_epochs={saved + 2}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / ".lock").exists()


def test_a_text_file_as_checkpoint_is_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    done = command(*SYNTHETIC, f"--ckpt_path={text}", f"--run.root={tmp_path / 'runs'}")
    error_line(done, 1, str(text), "is not a checkpoint")
    assert not (tmp_path / "runs").exists()


def test_pictures_of_a_fit_name_their_own_epoch_and_step(tmp_path: Path) -> None:
    """Validation pictures drawn during fit (every epoch) say the epoch and step of the weights
    they show, those of the checkpoint written at that validation, and never "final"."""
    import json

    run = tmp_path / "run"
    callbacks = (
        "--trainer.callbacks=[{class_path: litforge.ConfusionMatrix, init_args: {val_every: 1}}]"
    )
    done = command(*TEMPLATE, f"--run.dir={run}", "--trainer.max_epochs=2", callbacks)
    assert done.returncode == 0, done.stderr[-3000:]
    pictures = sorted((run / "media" / "val" / "shapes" / "confusion_matrix").glob("*.json"))
    models = [json.loads(p.read_text())["model"] for p in pictures]
    assert [(m["epoch"], m["step"]) for m in models] == [(0, 3), (1, 6)]
    assert all(m["checkpoint"] is None for m in models)  # the weights in training


def test_val_size_1_is_refused_as_ambiguous(tmp_path: Path) -> None:
    """``--data.val_size=1.0`` was read as a count of one example (which then chose the best
    checkpoint): 1 and 1.0 read alike, so it is refused, before a run folder is made."""
    done = command(*TEMPLATE[:-1], "--data.val_size=1.0", f"--run.root={tmp_path / 'runs'}")
    error_line(done, 2, "--data.val_size=1", "a fraction below 1", "count of 2 or more")
    assert not list((tmp_path / "runs").glob("*/*"))  # no run folder


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (
            "{class_path: litforge.Extremess}",
            ["litforge.Extremess", "did you mean litforge.Extremes"],
        ),
        ("{class_path: litforge.Extremes, init_args: {kk: 3}}", ["'kk'", "did you mean k?"]),
    ],
)
def test_a_wrong_class_path_or_argument_is_one_short_line(
    spec: str, names: list[str], tmp_path: Path
) -> None:
    done = command(*SYNTHETIC, f"--trainer.callbacks=[{spec}]", f"--run.root={tmp_path}")
    line = error_line(done, 2, "--trainer.callbacks", *names)
    assert len(line) < 200, line


def test_a_bad_sweep_file_exits_2(tmp_path: Path) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(
        "metric: val/shapes/accuracy\ndirection: maximize\nn_trials: 2\n"
        "parameters:\n  model.width: {type: int, low: 32, high: 8}\n"
    )
    done = command("-m", "template_project", "sweep", str(sweep), cwd=tmp_path)
    error_line(done, 2, str(sweep), "model.width")


def test_wandb_online_without_a_key_never_prompts_in_a_terminal(
    tmp_path: Path, hermetic_home: Path
) -> None:
    """``WANDB_MODE=online`` and no key, in a terminal (a pseudo-terminal: W&B asks for a key
    only when stdin is one): no login menu, the run trains offline and says so in one line."""
    import pty

    main, child = pty.openpty()
    env = environment()
    env.update(WANDB_MODE="online", HOME=str(hermetic_home))
    args = [*SYNTHETIC[:-1], "--run.loggers=[wandb]", "--trainer.max_steps=2"]
    proc = subprocess.Popen(
        [sys.executable, *args, f"--run.dir={tmp_path / 'run'}"],
        cwd=REPO,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = b""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    status = proc.wait(timeout=30)
    text = out.decode(errors="replace")
    assert status == 0, text[-3000:]
    assert "Create a W&B account" not in text and "Enter your choice" not in text
    lines = [line for line in text.splitlines() if "W&B has no key" in line]
    assert len(lines) == 1 and "logging offline" in lines[0], text[-3000:]
    assert (tmp_path / "run" / "wandb").is_dir()


PROBES = REPO / "packages" / "core" / "tests"  # fault_probes.py


def probed(*args: str) -> subprocess.CompletedProcess[str]:
    env = environment()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(PROBES)]))
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_full_disk_while_a_checkpoint_is_written(tmp_path: Path) -> None:
    """ENOSPC while a checkpoint is written (injected where the bytes are written: no tmpfs can
    be mounted here), after one epoch: one line naming the file, exit status 1, the previous
    last.ckpt byte for byte as it was, no temporary file left."""
    run = tmp_path / "run"
    probe = "--trainer.callbacks+={class_path: fault_probes.FullDiskAt, init_args: {step: 8}}"
    keep = "--trainer.callbacks+={class_path: fault_probes.KeepLastAt, init_args: {step: 7}}"
    done = probed(*SYNTHETIC, f"--run.dir={run}", "--trainer.max_epochs=3", keep, probe)
    line = error_line(done, 1, "could not write the checkpoint", "No space left on device")
    assert "the previous" in line and len(line) - len(str(run)) < 200, line
    kept = (run / "kept.ckpt").read_bytes()
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == kept
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_the_run_folder_deleted_while_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    probe = (
        "--trainer.callbacks+={class_path: fault_probes.DeleteRunFolderAt, init_args: {step: 8}}"
    )
    done = probed(*SYNTHETIC, f"--run.dir={run}", "--trainer.max_epochs=3", probe)
    error_line(done, 1, f"the run folder {run} is gone", "start the run again")
    assert "Warning" not in done.stderr and not run.exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--seed_everything=-1"], ["--seed_everything=-1", "0 to 2**32 - 1"]),  # a traceback
        (["--trainer.max_epochs=1.5"], ["--trainer.max_epochs=1.5: expected int or null"]),
        (["--config={empty}"], ["{empty} is empty"]),  # "Unexpected config:"
        (["--trainer.max_steps=0"], ["--trainer.max_steps=0: fit would train nothing"]),  # exit 0
    ],
)
def test_more_bad_values_are_one_short_line(
    args: list[str], names: list[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    args = [a.format(empty=empty) for a in args]
    done = command(*SYNTHETIC, *args, f"--run.root={tmp_path / 'runs'}")
    line = error_line(done, 2, *[n.format(empty=empty) for n in names])
    assert len(line) - len(str(empty)) < 200, line
    assert not list((tmp_path / "runs").glob("*/*"))


def test_runs_of_a_folder_that_is_not_there(tmp_path: Path) -> None:
    """``runs --dir`` with a typo said "no runs in ..." with exit status 0."""
    done = command("-m", "litforge.testing", "runs", "--dir", str(tmp_path / "nowhere"))
    error_line(done, 2, f"--dir {tmp_path / 'nowhere'}: no such folder")
