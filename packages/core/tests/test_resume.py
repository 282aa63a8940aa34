"""Resume that holds bit for bit, through the real CLI on the synthetic image task:

- checkpoints carry the global random generators (torch, numpy, Python: ``RngState``), so a
  model with dropout resumes at an epoch boundary to the very weights of an uninterrupted run;
- the device loader keeps its place in the epoch, so a run stopped by SIGTERM mid-epoch resumes
  with the next batch, trains on exactly the batches an uninterrupted run trains on, and ends
  with the same weights;
- checkpoint writes are atomic (``AtomicCheckpointIO``): a ``kill -9`` in the middle of writing
  ``last.ckpt`` leaves the previous one whole, and the run resumes from it.

All on the CPU with ``--trainer.deterministic=true``: bit for bit means ``torch.equal``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from litforge import RngState, testing
from litforge.data import DeviceLoader, ImageTransform
from litforge.run.checkpoint_io import AtomicCheckpointIO
from litforge.run.handoff import HANDOFF_ENV

TESTS = Path(__file__).resolve().parent
QUIET = testing.QUIET
STEPS_PER_EPOCH = 6  # images.yaml: 256 images - 64 for validation, batches of 32
# Dropout on the pooled features: a resumed run whose generators restarted from the seed would
# draw other masks. Translation and random flips (images.yaml) stay on: the loader's draws.
RECIPE = ["--model.dropout=0.5", "--trainer.deterministic=true", "--run.test_after_fit=false"]


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


def fit(*args: str) -> Any:
    """An in-process ``fit`` of the synthetic task; pass --run.dir in args."""
    return testing.main(["fit", "--run.loggers=[csv]", *QUIET, *args])


def probe(class_path: str, **init_args: Any) -> str:
    """The command-line argument that appends a callback to the trainer's callbacks."""
    return f"--trainer.callbacks+={json.dumps({'class_path': class_path, 'init_args': init_args})}"


def load_ckpt(path: Path) -> dict[str, Any]:
    """A checkpoint as an untrusted file is loaded: tensors and plain containers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def trained_batches(path: Path) -> list[tuple[int, list[int]]]:
    """(global step, example indices) of every training batch a RecordBatches probe saw."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["step"], r["index"]) for r in rows]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


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
    assert cli.trainer.global_step == 2 * STEPS_PER_EPOCH
    return {"state": cli.model.state_dict(), "batches": trained_batches(record)}


# ---------------------------------------------------------------------- the device loader
def image_loader(batch_size: int = 16) -> DeviceLoader:
    """A shuffled, augmented loader (random shifts drawn per batch, random flips) at epoch 3."""
    arrays = testing.synthetic_images(100)
    transform = ImageTransform(torch.zeros(3), torch.ones(3), translate=2, flip="random")
    return DeviceLoader(
        arrays,
        lambda index, fields: (index, fields["image"]),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        transform=transform,
        seed=5,
        epoch=lambda: 3,
    )


def test_device_loader_resumes_after_the_batches_it_handed_out(tmp_path: Path) -> None:
    full = list(image_loader())
    assert len(full) == 6
    loader = image_loader()
    batches = iter(loader)
    for _ in range(2):
        next(batches)
    saved = tmp_path / "state.pt"
    torch.save(loader.state_dict(), saved)
    state = torch.load(saved, weights_only=True)  # plain ints: loads as an untrusted file does
    assert state["epoch"] == 3 and state["batches"] == 2

    resumed = image_loader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    # the next batch is the third, and every later one is the very batch (indices and the
    # shifted, flipped pixels) of an uninterrupted epoch: the skipped batches' draws were made
    assert len(rest) == 4
    for (index, image), (index_full, image_full) in zip(rest, full[2:]):
        assert torch.equal(index, index_full) and torch.equal(image, image_full)
    # the loaded place serves one iteration: the next one is a whole epoch again
    again = list(resumed)
    assert len(again) == 6 and torch.equal(again[0][1], full[0][1])

    other_epoch = image_loader()
    other_epoch.load_state_dict({**state, "epoch": 2})  # a place in another epoch: no skip
    assert len(list(other_epoch)) == 6

    other_batch_size = image_loader(batch_size=20)
    with pytest.warns(UserWarning, match="of another loader"):
        other_batch_size.load_state_dict(state)
    assert len(list(other_batch_size)) == 5  # from the first batch


# ---------------------------------------------------------------------- atomic writes
def test_atomic_checkpoint_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    # created with the usual permissions (umask), not mkstemp's 0600
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    stale = target.with_name(".last.ckpt.0123456789ab.tmp")  # a killed write's leftover
    stale.write_bytes(b"half")
    io.save_checkpoint({"step": torch.tensor(2)}, str(target))
    assert int(load_ckpt(target)["step"]) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # leftover gone

    class Failing(AtomicCheckpointIO):
        def write(self, checkpoint: dict[str, Any], f: Any) -> None:
            f.write(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Failing().save_checkpoint({"step": torch.tensor(3)}, target)
    assert int(load_ckpt(target)["step"]) == 2  # the previous checkpoint, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


# ---------------------------------------------------------------------- RNG state: dropout
@pytest.mark.slow
def test_dropout_model_resumes_bit_exact_at_an_epoch_boundary(
    uninterrupted: dict[str, Any],
    tmp_path: Path,
    restore_determinism: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    first = fit(f"--run.dir={run}", "--trainer.max_epochs=1", *RECIPE)
    assert isinstance(first.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_ckpt(last)  # the RNG state is tensors and plain values: weights_only loads it
    assert ckpt["global_step"] == STEPS_PER_EPOCH
    rng = ckpt["callbacks"]["RngState"]
    assert {"torch", "numpy", "python"} <= rng.keys()
    assert rng["numpy"]["keys"].shape == (624,) and rng["python"]["state"].shape == (625,)
    control = tmp_path / "control"
    (control / "checkpoints").mkdir(parents=True)
    (control / "checkpoints" / "last.ckpt").write_bytes(last.read_bytes())

    resumed = fit(f"--run.dir={run}", f"--ckpt_path={last}", "--trainer.max_epochs=2", *RECIPE)
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert_same_weights(resumed.model.state_dict(), uninterrupted["state"])

    # Control: the same resume with the generators left as the seed set them (what Lightning
    # alone does) draws other dropout masks and ends elsewhere: the test can fail.
    monkeypatch.setattr(RngState, "load_state_dict", lambda self, state: None)
    unrestored = fit(
        f"--run.dir={control}",
        f"--ckpt_path={control / 'checkpoints' / 'last.ckpt'}",
        "--trainer.max_epochs=2",
        *RECIPE,
    )
    assert unrestored.trainer.global_step == 2 * STEPS_PER_EPOCH
    state = unrestored.model.state_dict()
    assert any(not torch.equal(state[k], v) for k, v in uninterrupted["state"].items())


# ---------------------------------------------------------------------- mid-epoch SIGTERM
@pytest.mark.slow
def test_sigterm_mid_epoch_resume_continues_with_the_next_batch_bit_exact(
    uninterrupted: dict[str, Any], tmp_path: Path, restore_determinism: None
) -> None:
    """SIGTERM after step 8, 2 batches into the second epoch (this very process signals itself;
    Lightning's handler only sets a flag), then the documented resume from last.ckpt."""
    run, record = tmp_path / "run", tmp_path / "batches.jsonl"
    recorder = probe("resume_probes.RecordBatches", path=str(record))
    stop = probe(
        "reliability_probes.PauseForSignal", step=8, marker=str(tmp_path / "m"), send="SIGTERM"
    )
    with pytest.raises(SystemExit) as exit_:
        fit(f"--run.dir={run}", "--trainer.max_epochs=2", *RECIPE, recorder, stop)
    assert exit_.value.code == 128 + signal.SIGTERM
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_ckpt(last)
    assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1
    (place,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (place["epoch"], place["batches"]) == (1, 2)

    resumed = fit(
        f"--run.dir={run}", f"--ckpt_path={last}", "--trainer.max_epochs=2", *RECIPE, recorder
    )
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
    # the resumed run trained on batches 3.. of that epoch, not on its first ones again: the
    # two processes together trained on exactly the uninterrupted run's batches, step by step
    assert trained_batches(record) == uninterrupted["batches"]
    assert_same_weights(resumed.model.state_dict(), uninterrupted["state"])


# ---------------------------------------------------------------------- kill -9 mid-write
def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true")
    return env


@pytest.mark.slow
def test_kill_9_while_writing_last_ckpt_keeps_the_previous_one(tmp_path: Path) -> None:
    """Design: the run's Trainer gets ``resume_probes.HangingCheckpointIO`` (by class path, as a
    user's plugin would come), the CLI's AtomicCheckpointIO with one change: its second write of
    last.ckpt (at the end of epoch 1) writes half of the checkpoint's bytes into the temporary
    file, then writes a marker and sleeps. The test sees the marker and sends SIGKILL: the
    process dies in the middle of a checkpoint write, with no chance to clean up. last.ckpt
    must still be epoch 0's, whole, and the run must resume from it."""
    run, marker, log = tmp_path / "run", tmp_path / "hung", tmp_path / "fit.log"
    plugin = {
        "class_path": "resume_probes.HangingCheckpointIO",
        "init_args": {"marker": str(marker), "name": "last.ckpt", "hang_at": 2},
    }
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.dir={run}",
        "--run.loggers=[csv]", *QUIET, "--trainer.max_epochs=2", "--trainer.callbacks=[]",
        "--run.test_after_fit=false", f"--trainer.plugins={json.dumps(plugin)}",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(),
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the write never hung:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    ckpt_dir = run / "checkpoints"
    ckpt = load_ckpt(ckpt_dir / "last.ckpt")  # whole: it loads
    assert ckpt["global_step"] == STEPS_PER_EPOCH and ckpt["epoch"] == 0  # epoch 0's
    (half,) = ckpt_dir.glob(".last.ckpt.*.tmp")  # the write the kill cut short
    assert half.stat().st_size > 0
    with pytest.raises((RuntimeError, OSError)):  # a truncated zip archive
        torch.load(half, weights_only=True)  # written in place, this would be last.ckpt now

    resumed = fit(
        f"--run.dir={run}",
        f"--ckpt_path={ckpt_dir / 'last.ckpt'}",
        "--trainer.max_epochs=2",
        "--trainer.callbacks=[]",
        "--run.test_after_fit=false",
    )
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
    assert load_ckpt(ckpt_dir / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    assert not list(ckpt_dir.glob(".last.ckpt.*.tmp"))  # the next write removed the leftover
