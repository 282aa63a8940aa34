"""Reliability of a run through the real CLI: interruption and resume, determinism, bad input,
safe checkpoints and secrets. The synthetic task keeps every run to a few seconds.

Test-only callbacks (pause for a signal, crash, NaN batch) live in ``reliability_probes.py``
and reach the CLI by class path, as a user's own callback would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from litforge import NonFiniteLossError, testing
from litforge.run.handoff import HANDOFF_ENV

TESTS = Path(__file__).resolve().parent
QUIET = testing.QUIET
STEPS_PER_EPOCH = 6  # testing.yaml: 256 images - 64 for validation, batches of 32
# A fake W&B key shaped like a real one (W&B keys are 40+ characters).
WANDB_KEY = "litforge-test-key-" + secrets.token_hex(20)


@pytest.fixture(scope="module", autouse=True)
def probes_importable() -> Iterator[None]:
    """The probes are imported by class path, in this process and in subprocesses."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        mp.delenv(HANDOFF_ENV, raising=False)
        yield


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    """``--trainer.deterministic=true`` switches torch's global flag on; switch it back."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def probe(name: str, **init_args: Any) -> str:
    """The command-line argument that appends probe ``name`` to the trainer's callbacks."""
    spec = {"class_path": f"reliability_probes.{name}", "init_args": init_args}
    return f"--trainer.callbacks+={json.dumps(spec)}"


def fit(*args: str, loggers: str = "[csv]") -> Any:
    """An in-process ``fit`` of the synthetic task; pass --run.dir or --run.root in args."""
    return testing.main(["fit", f"--run.loggers={loggers}", *QUIET, *args])


def load_ckpt(path: Path) -> dict[str, Any]:
    """A checkpoint as an untrusted file is loaded: tensors and plain containers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


# ---------------------------------------------------------------------- SIGTERM and resume
def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true", **extra)
    return env


def run_cli(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Starts ``args`` in its own process group, stdout and stderr into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """Waits for ``proc``; on timeout kills its process group and fails with its output."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{proc.args!r} did not finish in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A W&B + CSV run stopped by SIGTERM from outside mid-epoch (step 5 of 14), then resumed
    by the very command it printed. Both processes see a fake WANDB_API_KEY."""
    tmp = tmp_path_factory.mktemp("sigterm")
    env = subprocess_env(WANDB_API_KEY=WANDB_KEY)
    marker, starts = tmp / "paused", tmp / "starts.jsonl"
    first_log, resume_log = tmp / "first.log", tmp / "resume.log"
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.root={tmp / 'runs'}",
        "--run.loggers=[csv,wandb]", *QUIET, "--data.n_train=512", "--trainer.max_epochs=2",
        "--trainer.callbacks=[]",  # no diagnostics: not the point here, and they take seconds
        probe("PauseForSignal", step=5, marker=str(marker)),
        probe("RecordStart", path=str(starts)),
    ]  # fmt: skip
    proc = run_cli(args, first_log, env)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run never reached step 5:\n{first_log.read_text()[-3000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        first_rc = finish(proc, first_log, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first_out = first_log.read_text()
    run_dirs = list((tmp / "runs" / "synthetic").iterdir())
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]
    ckpt = load_ckpt(run_dir / "checkpoints" / "last.ckpt")
    csv_before = (run_dir / "csv" / "metrics.csv").read_text()
    finished_early = (run_dir / "results.json").exists()

    found = re.search(
        r"to resume if interrupted: (python -m \S+ fit --config \S+ --ckpt_path \S+)", first_out
    )
    assert found, first_out[-3000:]
    command = shlex.split(found.group(1))
    proc = run_cli([sys.executable, *command[1:]], resume_log, env)
    resume_rc = finish(proc, resume_log, timeout=120)
    return {
        "tmp": tmp,
        "run_dir": run_dir,
        "first_rc": first_rc,
        "first_out": first_out,
        "interrupted_ckpt": ckpt,
        "csv_before": csv_before,
        "finished_early": finished_early,
        "command": command,
        "resume_rc": resume_rc,
        "resume_out": resume_log.read_text(),
        "starts": [json.loads(line) for line in starts.read_text().splitlines()],
    }


@pytest.mark.slow  # two processes, one stopped by SIGTERM: some 30 s
def test_sigterm_mid_epoch_leaves_a_checkpoint_at_that_step(interrupted: dict[str, Any]) -> None:
    out = interrupted["first_out"]
    assert "Interrupted (SIGTERMException)" in out, out[-3000:]
    assert interrupted["first_rc"] == 128 + signal.SIGTERM  # not 0: the run did not finish
    ckpt = interrupted["interrupted_ckpt"]
    assert ckpt["global_step"] == 5  # mid-epoch: 14 steps per epoch here
    assert ckpt["epoch"] == 0
    assert all_finite(ckpt["state_dict"])
    assert not interrupted["finished_early"]  # it did not test and write results.json


def train_steps(metrics_csv: str) -> list[int]:
    """The steps of the per-step training rows of a metrics.csv."""
    rows = csv.DictReader(io.StringIO(metrics_csv))
    return [int(r["step"]) for r in rows if r.get("train/synthetic/loss/total_step")]


@pytest.mark.slow
def test_documented_resume_continues_same_folder_step_and_wandb_run(
    interrupted: dict[str, Any],
) -> None:
    run_dir: Path = interrupted["run_dir"]
    out = interrupted["resume_out"]
    assert interrupted["resume_rc"] == 0, out[-3000:]
    assert interrupted["command"][:4] == ["python", "-m", "litforge.testing", "fit"]
    assert interrupted["command"][-1] == str(run_dir / "checkpoints" / "last.ckpt")
    # same run folder: no second one appeared
    assert list((interrupted["tmp"] / "runs" / "synthetic").iterdir()) == [run_dir]
    # the step count continues from the checkpoint's, mid-epoch, and the run finishes
    assert interrupted["starts"] == [{"step": 0, "epoch": 0}, {"step": 5, "epoch": 0}]
    final = load_ckpt(run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 2 * 14 and final["epoch"] == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test/synthetic/accuracy"] > 0.5, results
    # the same W&B run: every offline run folder carries the run folder's name as its id
    wandb_runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2, wandb_runs
    assert all(name.endswith(f"-{run_dir.name}") for name in wandb_runs), wandb_runs
    # nothing lost: the CSV history from before the interruption is still there, once
    assert train_steps(interrupted["csv_before"]) == [4]  # log_every_n_steps=5
    assert train_steps((run_dir / "csv" / "metrics.csv").read_text()) == list(range(4, 28, 5))
    # no warning a user can do nothing about: W&B's "anonymous setting has no effect",
    # Lightning's "checkpoint directory exists and is not empty" on resuming into the run folder
    for printed in (interrupted["first_out"], out):
        assert "anonymous setting" not in printed, printed[-3000:]
    assert "exists and is not empty" not in out, out[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["test", "predict"])
def test_evaluating_a_checkpoint_prints_no_warning_about_the_fit_that_wrote_it(
    interrupted: dict[str, Any], subcommand: str
) -> None:
    """``test`` / ``predict`` with the run's config and last.ckpt: Lightning used to warn that
    the callbacks that wrote the checkpoint "need to be provided" and that a ModelCheckpoint's
    "dirpath has changed", neither of which matters to an evaluation. It goes to a folder of
    its own; the fit's results.json is left as it was."""
    run_dir: Path = interrupted["run_dir"]
    results = (run_dir / "results.json").read_bytes()
    root = interrupted["tmp"] / f"{subcommand}-runs"
    log = interrupted["tmp"] / f"{subcommand}.log"
    args = [
        sys.executable, "-m", "litforge.testing", subcommand, f"--config={run_dir / 'config.yaml'}",
        f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"--run.root={root}",
        "--run.loggers=[csv]", *QUIET,
    ]  # fmt: skip
    status = finish(run_cli(args, log, subprocess_env()), log, timeout=120)
    out = log.read_text()
    assert status == 0, out[-3000:]
    assert "callbacks used to create the checkpoint" not in out, out[-3000:]
    assert "dirpath has changed" not in out, out[-3000:]
    (folder,) = (root / "synthetic").iterdir()
    written = "results.json" if subcommand == "test" else "predictions.pt"
    assert (folder / written).is_file()
    assert (run_dir / "results.json").read_bytes() == results


def files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
def test_wandb_key_reaches_no_file_and_no_output(interrupted: dict[str, Any]) -> None:
    """The SIGTERM run and its resume (W&B offline, a fake key in the environment)."""
    assert not files_holding(interrupted["tmp"], WANDB_KEY.encode())
    assert WANDB_KEY not in interrupted["first_out"] and WANDB_KEY not in interrupted["resume_out"]
    assert (interrupted["run_dir"] / "wandb").is_dir()  # W&B did write its files there


@pytest.mark.slow  # W&B's online start has to time out first: some 20 s
def test_wandb_online_with_a_key_and_no_server_falls_back_offline_and_leaks_no_key(
    tmp_path: Path,
) -> None:
    """The online path with a fake key: no WANDB_MODE, WANDB_BASE_URL at a local port that
    nothing listens on, HOME a fresh folder. W&B's start fails within WANDB_INIT_TIMEOUT, so
    this cannot hang; what the CLI does then (loggers.OfflineFallbackWandbLogger): one warning
    line naming the server, and the run goes on with W&B offline, its files in the run folder
    for a later ``wandb sync``: a run is not lost to the network. The key is in no file of the
    run folder nor of HOME (~/.config/wandb, ~/.cache/wandb, W&B's logs) and in no output."""
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env(
        WANDB_API_KEY=WANDB_KEY, WANDB_BASE_URL=url, WANDB_INIT_TIMEOUT="10", HOME=str(home)
    )
    env.update(NETRC=str(home / ".netrc"), no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    for name in ("WANDB_MODE", "WANDB_SILENT"):  # online, and W&B says all it says
        env.pop(name)
    log = tmp_path / "out.log"
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.root={tmp_path / 'runs'}",
        "--run.loggers=[csv,wandb]", *QUIET, "--trainer.max_epochs=1", "--trainer.callbacks=[]",
    ]  # fmt: skip
    rc = finish(run_cli(args, log, env), log, timeout=180)
    out = log.read_text()
    assert rc == 0, out[-3000:]
    assert f"W&B could not start online at {url}" in out, out[-3000:]
    (run_dir,) = (tmp_path / "runs" / "synthetic").iterdir()
    assert (run_dir / "results.json").is_file()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # it went on offline
    assert (home / ".cache" / "wandb").is_dir()  # W&B wrote in HOME too: scanned below
    assert not files_holding(tmp_path, WANDB_KEY.encode())  # run folder, HOME, the output
    assert WANDB_KEY not in out


# ---------------------------------------------------------------------- Ctrl-C, crash
@pytest.mark.slow  # a signal
def test_ctrl_c_leaves_a_checkpoint(tmp_path: Path) -> None:
    handler = signal.getsignal(signal.SIGINT)
    # As in a terminal: a shell that started this process in the background (CI may) leaves
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exit_:  # 130: a shell's status for Ctrl-C
            fit(
                f"--run.dir={tmp_path / 'run'}",
                probe("PauseForSignal", step=8, marker=str(tmp_path / "m"), send="SIGINT"),
            )
    finally:
        signal.signal(signal.SIGINT, handler)  # the run ignores further Ctrl-C
    assert exit_.value.code == 130
    ckpt = load_ckpt(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1
    # stopped at the step's end, as by SIGTERM: Lightning's counters agree (a resume is exact:
    # test_interrupts.py::test_ctrl_c_in_a_step_finishes_the_step_and_resumes_bit_exact)
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["ready"] == progress["completed"] == 2
    assert all_finite(ckpt["state_dict"])
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "interrupted"


def test_crash_leaves_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="probe crash at step 8"):
        fit(f"--run.dir={tmp_path / 'run'}", probe("CrashAt", step=8))
    ckpt = load_ckpt(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 8
    assert all_finite(ckpt["state_dict"])


# ---------------------------------------------------------------------- determinism
DETERMINISTIC = ["--trainer.deterministic=true"]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two epochs in one go, deterministic."""
    before = torch.are_deterministic_algorithms_enabled()
    tmp = tmp_path_factory.mktemp("two")
    try:
        return fit(f"--run.dir={tmp / 'run'}", "--trainer.max_epochs=2", *DETERMINISTIC)
    finally:
        torch.use_deterministic_algorithms(before)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


# The tests of two_epochs (two full deterministic runs, with diagnostics, before the first test)
# are in the slow tier: with them, make test took longer than its 90 s.
@pytest.mark.slow
def test_resume_at_an_epoch_boundary_is_bit_exact(
    two_epochs: Any, tmp_path: Path, restore_determinism: None
) -> None:
    run = tmp_path / "run"
    fit(f"--run.dir={run}", "--trainer.max_epochs=1", "--run.test_after_fit=false", *DETERMINISTIC)
    assert load_ckpt(run / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    resumed = fit(
        f"--run.dir={run}",
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "--trainer.max_epochs=2",
        *DETERMINISTIC,
    )
    assert resumed.trainer.global_step == two_epochs.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert_same_weights(resumed.model.state_dict(), two_epochs.model.state_dict())
    assert (run / "results.json").read_text() == (two_epochs.run_dir / "results.json").read_text()


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(
    two_epochs: Any, tmp_path: Path, restore_determinism: None
) -> None:
    again = fit(f"--run.dir={tmp_path / 'run'}", "--trainer.max_epochs=2", *DETERMINISTIC)
    first = json.loads((two_epochs.run_dir / "results.json").read_text())
    second = json.loads((again.run_dir / "results.json").read_text())
    assert first == second and "test/synthetic/accuracy" in first
    assert_same_weights(again.model.state_dict(), two_epochs.model.state_dict())
    csv = "csv/metrics.csv"
    assert (again.run_dir / csv).read_text() == (two_epochs.run_dir / csv).read_text()


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("where", ["flag", "yaml"])
def test_misspelled_config_key_is_named(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "flag":
        args, key = ["--trainer.max_epohcs=3"], "max_epohcs"
    else:
        bad = tmp_path / "bad.yaml"
        bad.write_text("modle:\n  num_classes: 4\n")
        args, key = [f"--config={bad}"], "modle"
    with pytest.raises(SystemExit) as exit_:
        fit(f"--run.root={tmp_path / 'runs'}", *args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert key in err, err
    assert not (tmp_path / "runs").exists()  # failed before anything was written


@pytest.mark.parametrize(
    "case",
    ["nan_at_epoch_end", "nan_before_mid_epoch_validation", "crash_after_nan"],
)
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    case: str, tmp_path: Path
) -> None:
    """NaN weights from step 9 (epoch 1) on. last.ckpt must stay the one of step 6."""
    run = tmp_path / "run"
    args = [f"--run.dir={run}", probe("PoisonBatch", step=8)]
    if case == "nan_at_epoch_end":  # validation and checkpoint at each epoch end (default)
        expected: Any = pytest.raises(NonFiniteLossError, match=r"at step 12 \(epoch 1\)")
    elif case == "nan_before_mid_epoch_validation":  # validation + checkpoint every 3 steps
        args += ["--trainer.val_check_interval=3"]
        expected = pytest.raises(NonFiniteLossError, match=r"at step 9 \(epoch 1\)")
    else:  # something else stops the run before the NaN is noticed
        args += [probe("CrashAt", step=10)]
        expected = pytest.raises(RuntimeError, match="probe crash at step 10")
    with expected as err:
        fit(*args)
    assert "nan" in str(err.value).lower() or case == "crash_after_nan"
    ckpt = load_ckpt(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == STEPS_PER_EPOCH, ckpt["global_step"]
    assert all_finite(ckpt["state_dict"])
    assert not (run / "results.json").exists()


def test_unwritable_run_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(SystemExit) as exit_:
        fit(f"--run.root={blocker / 'runs'}")
    message = str(exit_.value.code)
    assert str(blocker / "runs" / "synthetic") in message and "not writable" in message
    assert blocker.read_text() == "a file where a folder should be"


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        fit(f"--run.dir={tmp_path / 'run'}", f"--ckpt_path={missing}")


@pytest.mark.slow  # two_epochs
@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--data.n_train=0", "the training set is empty"),
        ("--data.batch_size=1000", r"batch_size=1000 is larger than .* \(192 items\): no batch"),
    ],
)
def test_resume_with_bad_data_is_named_and_keeps_the_checkpoint(
    arg: str, message: str, two_epochs: Any, tmp_path: Path
) -> None:
    """A resume that fails before its first step must not write over the checkpoint."""
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    good = (two_epochs.run_dir / "checkpoints" / "last.ckpt").read_bytes()
    last.write_bytes(good)
    with pytest.raises(ValueError, match=message):
        fit(f"--run.dir={tmp_path / 'run'}", f"--ckpt_path={last}", "--trainer.max_epochs=3", arg)
    assert last.read_bytes() == good


# ---------------------------------------------------------------------- safe checkpoints
def test_checkpoint_with_lookahead_loads_weights_only_and_resume_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    # only Lookahead: the diagnostics add no checkpoint state, and take seconds
    lookahead = [
        "--trainer.callbacks=[]",
        '--trainer.callbacks+={"class_path": "litforge.Lookahead"}',
        "--run.test_after_fit=false",
    ]
    fit(f"--run.dir={run}", *lookahead, "--trainer.max_epochs=1")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_ckpt(last)  # would raise on any pickled object beyond tensors and containers
    states = [v for k, v in ckpt["callbacks"].items() if k.startswith("Lookahead")]
    assert len(states) == 1 and states[0]["average"].keys() == ckpt["state_dict"].keys()

    # Resuming goes through the Trainer: it must load with weights_only=True even where the
    # environment asks torch to default to full unpickling.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    calls: list[Any] = []
    real_load = torch.load

    def spy(f: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    resumed = fit(f"--run.dir={run}", *lookahead, f"--ckpt_path={last}", "--trainer.max_epochs=2")
    assert calls and all(w is True for w in calls), calls
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
