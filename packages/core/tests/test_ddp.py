"""DDP on two CPU processes (gloo) through the real CLI, in a subprocess: ``strategy=ddp`` inside
pytest would re-launch pytest itself.

Two processes with half the batch each train as one process does: the DeviceLoader gives rank r
the items r, r + 2, ... of the same permutation, so each global step sees the very batch the
single process sees, and DDP averages the two half-batch gradients into that batch's gradient.
Translation is switched off (its random shifts are drawn per process batch); what is left
differs only by float summation order.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from litforge import testing
from litforge.cli import RUN_DIR_ENV
from litforge.structs import ClassificationExample

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 120  # a hung collective fails the test instead of hanging it
EPOCHS, STEPS = 2, 6  # 192 training images: 6 steps of 32 (one process) or 2 x 16 (two)
COMMON = [
    "--run.loggers=[csv]", *testing.QUIET, f"--trainer.max_epochs={EPOCHS}",
    "--data.translate=0", "--trainer.accelerator=cpu",
]  # fmt: skip
# Tolerances, two processes against one (see the module docstring). Only float summation order
# differs: measured here, the weights differ by 7e-8 after the 12 steps and the test loss by
# 1e-8; 1e-5 leaves room for another CPU's kernels. Accuracy is a count over 64 images: a
# borderline image may flip with such rounding, so one image (1/64) is allowed; the ECE moves by
# at most 2/64 when one image changes confidence bin.
WEIGHT_ATOL, LOSS_ATOL = 1e-5, 1e-5
ACCURACY_ATOL, ECE_ATOL = 1 / 64 + 1e-6, 2 / 64 + 1e-6


def run_ddp(tmp: Path) -> tuple[Path, float]:
    env = {k: v for k, v in os.environ.items() if k != RUN_DIR_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    spec = {
        "class_path": "reliability_probes.DumpTestState",
        "init_args": {"folder": str(tmp / "dump")},
    }
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.root={tmp / 'runs'}", *COMMON,
        "--trainer.strategy=ddp", "--trainer.devices=2", "--data.batch_size=16",
        f"--trainer.callbacks+={json.dumps(spec)}",
    ]  # fmt: skip
    log = tmp / "ddp.log"
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher's rank-1 child is in the same group
        proc.wait()
        pytest.fail(f"DDP run hung for {TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
    assert rc == 0, log.read_text()[-4000:]
    return log, time.perf_counter() - start


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ddp")
    log, seconds = run_ddp(tmp)
    run_dirs = list((tmp / "runs" / "synthetic").iterdir())
    single = testing.main(["fit", f"--run.dir={tmp / 'single'}", *COMMON, "--data.batch_size=32"])
    return {"tmp": tmp, "log": log, "seconds": seconds, "run_dirs": run_dirs, "single": single}


def last_val_row(run_dir: Path) -> dict[str, float]:
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    val = [r for r in rows if r.get("val/synthetic/accuracy")]
    return {k: float(v) for k, v in val[-1].items() if v}


def test_two_processes_train_like_one(runs: dict[str, Any]) -> None:
    (ddp_dir,) = runs["run_dirs"]
    single = runs["single"]
    ddp_ckpt = torch.load(ddp_dir / "checkpoints" / "last.ckpt", weights_only=True)
    one_ckpt = torch.load(single.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ddp_ckpt["global_step"] == one_ckpt["global_step"] == EPOCHS * STEPS
    for key, weight in one_ckpt["state_dict"].items():
        assert torch.allclose(ddp_ckpt["state_dict"][key], weight, atol=WEIGHT_ATOL), key

    ddp_val, one_val = last_val_row(ddp_dir), last_val_row(single.run_dir)
    assert ddp_val["step"] == one_val["step"]
    assert (
        abs(ddp_val["val/synthetic/accuracy"] - one_val["val/synthetic/accuracy"]) <= ACCURACY_ATOL
    )
    loss = "val/synthetic/loss/total"
    assert abs(ddp_val[loss] - one_val[loss]) <= LOSS_ATOL, (ddp_val, one_val)

    ddp_test = json.loads((ddp_dir / "results.json").read_text())
    one_test = json.loads((single.run_dir / "results.json").read_text())
    assert ddp_test.keys() == one_test.keys()
    for key, value in one_test.items():
        atol = ACCURACY_ATOL if "accuracy" in key else ECE_ATOL if "ece" in key else LOSS_ATOL
        assert abs(ddp_test[key] - value) <= atol, (key, ddp_test[key], value)
    assert one_test["test/synthetic/accuracy"] > 0.9


def test_one_run_folder_and_diagnostics_emitted_once(runs: dict[str, Any]) -> None:
    (ddp_dir,) = runs["run_dirs"]  # rank 1 made no folder of its own
    dumps = sorted((runs["tmp"] / "dump").glob("rank*.json"))
    states = [json.loads(p.read_text()) for p in dumps]
    assert [s["rank"] for s in states] == [0, 1] and states[0]["world_size"] == 2
    assert {s["default_root_dir"] for s in states} == {str(ddp_dir)}
    media = ddp_dir / "media"
    files = sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())
    expected = []
    for what in (
        "extremes/highest_error",
        "extremes/lowest_error",
        "uncertainty",
        "confusion_matrix",
    ):
        steps = [STEPS * (e + 1) for e in range(EPOCHS)]
        expected += [f"val/synthetic/{what}/{s}.png" for s in steps]
        expected += [f"test/synthetic/{what}/{EPOCHS * STEPS}.png"]
        if what.startswith("extremes"):
            expected += [f"val/synthetic/{what}/{s}.json" for s in steps]
            expected += [f"test/synthetic/{what}/{EPOCHS * STEPS}.json"]
    assert files == sorted(expected)


def brute_force_errors(ckpt_path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(error = per-example cross-entropy, prediction, label) of every test image, from the
    checkpoint alone."""
    model = testing.TinyClassifier(num_classes=4)
    missing, unexpected = model.load_state_dict(
        torch.load(ckpt_path, weights_only=True)["state_dict"], strict=False
    )
    assert not missing and not unexpected, (missing, unexpected)
    data = testing.SyntheticData(n_train=256, n_test=64, n_classes=4, val_size=64)
    data.setup("fit")  # mean and std of the training split, as the run computed them
    test = data.splits["test"]
    x = (test.images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    model.eval()
    with torch.no_grad():
        pred = model(ClassificationExample(torch.arange(len(x)), x, test.labels))
    ce = torch.nn.functional.cross_entropy(pred.logits, test.labels, reduction="none")
    return ce, pred.pred, test.labels


def test_extremes_and_confusion_match_brute_force_over_the_whole_test_set(
    runs: dict[str, Any],
) -> None:
    (ddp_dir,) = runs["run_dirs"]
    errors, pred, labels = brute_force_errors(ddp_dir / "checkpoints" / "last.ckpt")
    folder = ddp_dir / "media" / "test" / "synthetic" / "extremes"
    k = 4  # testing.yaml
    for name, highest in (("highest_error", True), ("lowest_error", False)):
        shown = json.loads((folder / name / f"{EPOCHS * STEPS}.json").read_text())
        ranked = sorted(range(len(errors)), key=lambda i: (-errors[i] if highest else errors[i], i))
        assert len(shown["index"]) == len(set(shown["index"])) == k
        # the shown errors are those of the shown images, and the k most extreme of all 64
        assert torch.allclose(torch.tensor(shown["error"]), errors[shown["index"]], atol=1e-5)
        assert torch.allclose(torch.tensor(shown["error"]), errors[ranked[:k]], atol=1e-5)
        # the very images, where no near-tie at the k-th place makes the order a matter of rounding
        if abs(float(errors[ranked[k - 1]] - errors[ranked[k]])) > 1e-5:
            assert shown["index"] == ranked[:k], (name, shown["index"], ranked[:k])
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(labels.tolist(), pred.tolist()):
        expected[t, p] += 1
    for dump in (runs["tmp"] / "dump").glob("rank*.json"):  # every rank got the gathered matrix
        matrix = torch.tensor(json.loads(dump.read_text())["confusion"]["test/synthetic"])
        assert int(matrix.sum()) == 64  # each test image counted once, no padding duplicates
        assert torch.equal(matrix, expected), (dump.name, matrix, expected)
