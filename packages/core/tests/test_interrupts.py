"""Interruptions as a user meets them, through the real CLI of the synthetic image task: Ctrl-C
in the middle of a step and again while the checkpoint is saved, SLURM's requeue (SIGUSR1),
``kill -9`` and the CSV log, and the way back from a NaN that the error message describes.

What each test checks is what the user sees: the exit status, the lines printed, the files
before and after (the checkpoint, config.yaml, metrics.csv), and that the resumed run trains
what an uninterrupted one trains. Signals go to real processes (a subprocess, or this very
process where the test needs the weights in memory). The probes (``reliability_probes.py``,
``resume_probes.py``) reach the CLI by class path, as a user's own callback would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from litforge import testing
from litforge.run.safety import SaveOnInterrupt

pytestmark = pytest.mark.slow  # every test starts two runs or more, some of them processes

TESTS = Path(__file__).resolve().parent
QUIET = testing.QUIET
STEPS_PER_EPOCH = 6  # images.yaml: 256 images - 64 for validation, batches of 32
RECIPE = ["--model.dropout=0.5", "--trainer.deterministic=true", "--run.test_after_fit=false"]
BARE = ["--trainer.callbacks=[]", "--run.test_after_fit=false"]  # no diagnostics: seconds saved


@pytest.fixture(scope="module", autouse=True)
def probes_importable() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        yield


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a terminal (a shell that started pytest in the
    background may have left it ignored); pytest's own handler is put back after."""
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, handler)


def probe(class_path: str, **init_args: Any) -> str:
    return f"--trainer.callbacks+={json.dumps({'class_path': class_path, 'init_args': init_args})}"


def fit(*args: str) -> Any:
    """An in-process ``fit`` of the synthetic task; pass --run.dir in args."""
    return testing.main(["fit", "--run.loggers=[csv]", *QUIET, *args])


def load_ckpt(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def batch_progress(ckpt: dict[str, Any]) -> dict[str, int]:
    return ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]


def trained_batches(path: Path) -> list[tuple[int, list[int]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["step"], r["index"]) for r in rows]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LITFORGE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true", **extra)
    return env


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python <args>`` in its own process group, output into ``log``, with Ctrl-C's default
    action (as in a terminal) even if this process was started with it ignored."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill(proc)
            pytest.fail(f"{path.name} never appeared:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        pytest.fail(f"did not finish in {timeout} s:\n{log.read_text()[-3000:]}")


def train_steps(metrics_csv: Path) -> list[int]:
    """The steps of the per-step training rows of a metrics.csv."""
    rows = csv.DictReader(io.StringIO(metrics_csv.read_text()))
    return [int(r["step"]) for r in rows if r.get("train/synthetic/loss/total_step")]


# ---------------------------------------------------------------------- Ctrl-C in a step
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two epochs of the dropout model in one go, recording the batches it trained on."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    record = tmp / "batches.jsonl"
    before = torch.are_deterministic_algorithms_enabled()
    try:
        cli = fit(
            f"--run.dir={tmp / 'run'}",
            "--trainer.max_epochs=2",
            *RECIPE,
            probe("resume_probes.RecordBatches", path=str(record)),
        )
    finally:
        torch.use_deterministic_algorithms(before)
    return {"state": cli.model.state_dict(), "batches": trained_batches(record)}


def interrupt_and_resume(run: Path, record: Path) -> tuple[int, dict[str, Any], Any]:
    """Ctrl-C in the middle of step 9 (after the backward pass, before the optimizer step, 3
    batches into the second epoch), then the documented resume; returns the exit status,
    the checkpoint and the resumed CLI."""
    recorder = probe("resume_probes.RecordBatches", path=str(record))
    with pytest.raises(SystemExit) as exit_:
        fit(
            f"--run.dir={run}",
            "--trainer.max_epochs=2",
            *RECIPE,
            recorder,
            probe("reliability_probes.SignalMidStep", step=8, send="SIGINT"),
        )
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_ckpt(last)
    resumed = fit(
        f"--run.dir={run}", f"--ckpt_path={last}", "--trainer.max_epochs=2", *RECIPE, recorder
    )
    return int(exit_.value.code), ckpt, resumed


def test_ctrl_c_in_a_step_finishes_the_step_and_resumes_bit_exact(
    uninterrupted: dict[str, Any],
    tmp_path: Path,
    restore_determinism: None,
    ctrl_c_as_in_a_terminal: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    status, ckpt, resumed = interrupt_and_resume(tmp_path / "run", tmp_path / "batches.jsonl")
    assert status == 130  # one status for Ctrl-C, wherever it lands
    assert "Ctrl-C: stopping after the step under way" in capfd.readouterr().err
    # the step under way finished: 9 steps, 3 batches of epoch 1 read and all 3 completed
    assert ckpt["global_step"] == 9 and ckpt["epoch"] == 1
    assert batch_progress(ckpt)["ready"] == batch_progress(ckpt)["completed"] == 3
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert trained_batches(tmp_path / "batches.jsonl") == uninterrupted["batches"]
    assert same_weights(resumed.model.state_dict(), uninterrupted["state"])

    # Control: Ctrl-C raised as a KeyboardInterrupt where it lands (Python's default, which
    # Lightning catches) stops before the optimizer step with the batch read: the resumed run
    # skips that batch, and the test above would fail.
    monkeypatch.setattr(SaveOnInterrupt, "_install_ctrl_c", lambda self: None)
    control = tmp_path / "control"
    status, ckpt, resumed = interrupt_and_resume(control / "run", control / "batches.jsonl")
    assert ckpt["global_step"] == 8  # the 9th batch was read, its step never taken
    assert trained_batches(control / "batches.jsonl") != uninterrupted["batches"]
    assert not same_weights(resumed.model.state_dict(), uninterrupted["state"])


def test_a_further_ctrl_c_is_ignored_while_the_checkpoint_is_saved(tmp_path: Path) -> None:
    """Ctrl-C at step 8, then Ctrl-C again while last.ckpt is being written (the probe holds
    the write until the test says go): the second one is said to be ignored, the checkpoint is
    whole at step 8, and the exit status is 130, as for one Ctrl-C."""
    run, paused, saving, go = (
        tmp_path / "run",
        tmp_path / "paused",
        tmp_path / "saving",
        tmp_path / "go",
    )
    log = tmp_path / "out.log"
    plugin = {
        "class_path": "reliability_probes.PausedCheckpointIO",
        "init_args": {"marker": str(saving), "go": str(go), "pause_at": 2},
    }
    args = [
        "-m", "litforge.testing", "fit", f"--run.dir={run}", "--run.loggers=[csv]", *QUIET,
        "--trainer.max_epochs=2", *BARE, f"--trainer.plugins={json.dumps(plugin)}",
        probe("reliability_probes.PauseForSignal", step=8, marker=str(paused)),
    ]  # fmt: skip
    proc = start(args, log, env_for())
    try:
        wait_for(paused, proc, log)
        proc.send_signal(signal.SIGINT)
        wait_for(saving, proc, log)  # the save after the stop has begun, and waits
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while "Ctrl-C again" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        go.touch()
        status = finish(proc, log)
    finally:
        kill(proc)
    out = log.read_text()
    assert status == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert "Ctrl-C: stopping after the step under way" in out
    assert re.search(r"Ctrl-C again: ignored, .*kill -9 \d+", out), out[-3000:]
    ckpt = load_ckpt(run / "checkpoints" / "last.ckpt")  # whole: it loads
    assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"


def test_ctrl_c_outside_a_training_step_exits_130_too(tmp_path: Path) -> None:
    """Ctrl-C during the test after fit (Lightning catches the KeyboardInterrupt there and
    exits with 1 by itself): the same status as in training, no traceback, the run's
    status.json says interrupted and its checkpoints are there."""
    run, testing_now, log = tmp_path / "run", tmp_path / "testing", tmp_path / "out.log"
    args = [
        "-m", "litforge.testing", "fit", f"--run.dir={run}", "--run.loggers=[csv]", *QUIET,
        "--trainer.max_epochs=1", "--trainer.callbacks=[]",
        probe("reliability_probes.PauseInTest", marker=str(testing_now)),
    ]  # fmt: skip
    proc = start(args, log, env_for())
    try:
        wait_for(testing_now, proc, log)
        proc.send_signal(signal.SIGINT)
        status = finish(proc, log)
    finally:
        kill(proc)
    out = log.read_text()
    assert status == 130, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert load_ckpt(run / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    assert not (run / "results.json").exists()


# ---------------------------------------------------------------------- SLURM's requeue
def test_slurm_requeue_saves_requeues_and_the_same_command_resumes(tmp_path: Path) -> None:
    """As under ``#SBATCH --signal=SIGUSR1@90``: SLURM sends SIGUSR1 before the time limit;
    Lightning saves hpc_ckpt_1.ckpt in the run folder and calls ``scontrol requeue <job id>``
    (a stand-in here, which records its arguments); SLURM then stops the job with SIGTERM. The
    requeued job runs the very same command, which resumes (from the later of last.ckpt and
    the hpc checkpoint) and finishes the run: every step trained once, the CSV history whole."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.log"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    env = env_for(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_ID="4242", SLURM_JOB_NAME="litforge-test", SLURM_NTASKS="1",
        SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_NODELIST="localhost",
    )  # fmt: skip
    run, paused, starts = tmp_path / "run", tmp_path / "paused", tmp_path / "starts.jsonl"
    command = [
        "-m", "litforge.testing", "fit", f"--run.dir={run}", "--run.loggers=[csv]", *QUIET,
        "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1", *BARE,
        probe("reliability_probes.PauseForSignal", step=8, marker=str(paused)),
        probe("reliability_probes.RecordStart", path=str(starts)),
    ]  # fmt: skip
    first_log = tmp_path / "first.log"
    proc = start(command, first_log, env)
    try:
        wait_for(paused, proc, first_log)
        proc.send_signal(signal.SIGUSR1)
        wait_for(calls, proc, first_log)  # Lightning asked SLURM to requeue the job
        proc.send_signal(signal.SIGTERM)  # ... and SLURM stops it
        first_status = finish(proc, first_log)
    finally:
        kill(proc)
    first_out = first_log.read_text()
    assert first_status == 143, first_out[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    hpc = load_ckpt(run / "hpc_ckpt_1.ckpt")
    assert hpc["global_step"] == 8

    second_log = tmp_path / "second.log"
    status = finish(start(command, second_log, env), second_log)  # the requeued job
    out = second_log.read_text()
    assert status == 0, out[-3000:]
    assert f"requeued: resuming from {run / 'checkpoints' / 'last.ckpt'}" in out, out[-3000:]
    assert [json.loads(line)["step"] for line in starts.read_text().splitlines()] == [0, 8]
    assert load_ckpt(run / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    assert train_steps(run / "csv" / "metrics.csv") == list(range(2 * STEPS_PER_EPOCH))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


# ---------------------------------------------------------------------- kill -9 and the log
def test_kill_9_then_resume_logs_every_step_once(tmp_path: Path) -> None:
    """The CSV logger flushes every 100 steps: a run killed at step 101 has rows up to step
    99 on disk, its last checkpoint is step 96's (4 epochs of 24). The resume logs steps 96..
    again; the rows the killed run wrote after its checkpoint are dropped first."""
    run, paused, log = tmp_path / "run", tmp_path / "paused", tmp_path / "first.log"
    command = [
        "-m", "litforge.testing", "fit", f"--run.dir={run}", "--run.loggers=[csv]", *QUIET,
        "--data.batch_size=8", "--trainer.max_epochs=5", "--trainer.log_every_n_steps=1",
        "--trainer.limit_val_batches=0", *BARE,
    ]  # fmt: skip
    proc = start(
        [*command, probe("reliability_probes.PauseForSignal", step=101, marker=str(paused))],
        log,
        env_for(),
    )
    try:
        wait_for(paused, proc, log)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        kill(proc)
    metrics = run / "csv" / "metrics.csv"
    assert max(train_steps(metrics)) >= 96  # rows logged after the checkpoint were on disk
    last = run / "checkpoints" / "last.ckpt"
    assert load_ckpt(last)["global_step"] == 96

    resume_log = tmp_path / "resume.log"
    args = [*command, f"--ckpt_path={last}"]
    status = finish(start(args, resume_log, env_for()), resume_log)
    assert status == 0, resume_log.read_text()[-3000:]
    assert train_steps(metrics) == list(range(5 * 24))  # each step once, in order


# ---------------------------------------------------------------------- NaN, then a lower lr
def test_nan_then_the_resume_the_message_describes_trains_with_the_lower_lr(
    tmp_path: Path,
) -> None:
    """A rate too high (the probe turns the loss into NaN while the rate is above 0.002, from
    step 7 on) with a StepLR schedule. The error names the last good checkpoint and the setting
    to lower; the printed resume command with that setting added trains on: the restored
    schedule goes on from step 6, scaled to the new rate, and config.yaml records it."""
    run, lrs = tmp_path / "run", tmp_path / "lr.jsonl"
    schedule = [
        "--model.lr_scheduler=torch.optim.lr_scheduler.StepLR",
        "--model.lr_scheduler.init_args.step_size=4",
        "--model.lr_scheduler.init_args.gamma=0.5",
    ]
    probes = [
        probe("reliability_probes.PoisonAboveLr", step=7, lr=0.002),
        probe("reliability_probes.RecordLr", path=str(lrs)),
        probe("litforge.StopOnNonFinite"),
    ]
    command = [
        "-m", "litforge.testing", "fit", f"--run.dir={run}", "--run.loggers=[csv]", *QUIET,
        "--trainer.max_epochs=2", "--trainer.callbacks=[]", *schedule, *probes,
    ]  # fmt: skip
    log = tmp_path / "first.log"
    status = finish(start(command, log, env_for()), log)
    out = log.read_text()
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert status == 1 and len(errors) == 1 and "Traceback" not in out, out[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert f"The last good checkpoint, {last}, is kept" in errors[0], errors[0]
    assert "--model.optimizer.init_args.lr=0.001 added" in errors[0], errors[0]
    assert load_ckpt(last)["global_step"] == STEPS_PER_EPOCH

    printed = re.search(r"to resume if interrupted: (python -m \S+ fit .*)", out)
    assert printed, out[-3000:]
    resume = [*shlex.split(printed.group(1))[1:], "--model.optimizer.init_args.lr=0.001"]
    resume_log = tmp_path / "resume.log"
    status = finish(start(resume, resume_log, env_for()), resume_log)
    out = resume_log.read_text()
    assert status == 0, out[-3000:]
    assert (
        "the optimizer settings of this command replace the checkpoint's: lr 0.01 -> 0.001" in out
    )
    rates = {}
    for line in lrs.read_text().splitlines():  # the last record of a step wins: the resume's
        row = json.loads(line)
        rates[row["step"]] = row["lr"][0]
    for step, rate in rates.items():  # StepLR: base x 0.5 ** (step // 4)
        base = 0.01 if step < STEPS_PER_EPOCH else 0.001
        assert rate == pytest.approx(base * 0.5 ** (step // 4)), (step, rate)
    assert sorted(rates) == list(range(2 * STEPS_PER_EPOCH))
    final = load_ckpt(last)
    group = final["optimizer_states"][0]["param_groups"][0]
    assert group["initial_lr"] == pytest.approx(0.001)
    assert final["lr_schedulers"][0]["base_lrs"] == pytest.approx([0.001])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["optimizer"]["init_args"]["lr"] == 0.001
