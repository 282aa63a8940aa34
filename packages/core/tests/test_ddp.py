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
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from litforge import Regression, testing
from litforge.run.handoff import HANDOFF_ENV
from litforge.run.runs import final_metrics
from litforge.tasks.structs import ClassificationExample
from litforge.testing import regression

pytestmark = pytest.mark.slow  # every test here starts two or three processes: make test-all

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 120  # a hung collective fails the test instead of hanging it
EPOCHS, STEPS = 2, 6  # 192 training images: 6 steps of 32 (one process) or 2 x 16 (two)
COMMON = [
    "--run.loggers=[csv]", *testing.QUIET, f"--trainer.max_epochs={EPOCHS}",
    "--data.translate=0", "--trainer.accelerator=cpu",
    # the test scores the final weights: a best checkpoint chosen by accuracy (a count, ties
    # at 1.0) could be another epoch's when one image flips with rounding
    "--run.save_top_k=0",
]  # fmt: skip
# Tolerances, two processes against one (see the module docstring). Only float summation order
# differs: measured here, the weights differ by 7e-8 after the 12 steps and the test loss by
# 1e-8; 1e-5 leaves room for another CPU's kernels. Accuracy is a count over 64 images: a
# borderline image may flip with such rounding, so one image (1/64) is allowed; the ECE moves by
# at most 2/64 when one image changes confidence bin.
WEIGHT_ATOL, LOSS_ATOL = 1e-5, 1e-5
ACCURACY_ATOL, ECE_ATOL = 1 / 64 + 1e-6, 2 / 64 + 1e-6


# images.yaml's diagnostics, drawing every validation (their default draws as often as they
# cost under 5% of the fit's time: not deterministic)
EVERY_EPOCH = [
    {"class_path": "litforge.Extremes", "init_args": {"k": 4, "val_every": 1}},
    {"class_path": "litforge.Uncertainty", "init_args": {"val_every": 1}},
    {"class_path": "litforge.ConfusionMatrix", "init_args": {"val_every": 1}},
    {"class_path": "litforge.StopOnNonFinite"},
]


def run_ddp(tmp: Path) -> tuple[Path, float]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    spec = {
        "class_path": "reliability_probes.DumpTestState",
        "init_args": {"folder": str(tmp / "dump")},
    }
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.root={tmp / 'runs'}", *COMMON,
        "--trainer.strategy=ddp", "--trainer.devices=2", "--data.batch_size=16",
        f"--trainer.callbacks={json.dumps([*EVERY_EPOCH, spec])}",
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
    assert ddp_test["checkpoint"] == one_test["checkpoint"] == "final"
    for key, value in final_metrics(one_test).items():
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
        for suffix in ("png", "json"):  # each picture, and what it shows as data
            expected += [f"val/synthetic/{what}/{s}.{suffix}" for s in steps]
            expected += [f"test/synthetic/{what}/{EPOCHS * STEPS}.{suffix}"]
    assert files == sorted(expected)


def brute_force_errors(
    ckpt_path: Path, n_test: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(error = per-example cross-entropy, prediction, label) of every test image, from the
    checkpoint alone."""
    model = testing.TinyClassifier(num_classes=4)
    missing, unexpected = model.load_state_dict(
        torch.load(ckpt_path, weights_only=True)["state_dict"], strict=False
    )
    assert not missing and not unexpected, (missing, unexpected)
    data = testing.SyntheticData(n_train=256, n_test=n_test, n_classes=4, val_size=64)
    data.setup("fit")  # mean and std of the training split, as the run computed them
    test = data.splits["test"]
    x = (test.images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    model.eval()
    with torch.no_grad():
        pred = model(ClassificationExample(torch.arange(len(x)), image=x, label=test.labels))
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


# ---------------------------------------------------------------------- the regression task
# Feature rows instead of images, through the same gathering. 63 test rows: rank 0 evaluates 32,
# rank 1 31, so gather_dedup pads rank 1's share before the all_gather and cuts the padding off
# after. 209 training rows: 6 steps of 32 (one process) or 2 x 16 (two) per epoch, the same
# batches either way, so the two runs differ only by float summation order (LOSS_ATOL).
ROWS_TEST = 63
ROWS_COMMON = [
    "--run.loggers=[csv]", *testing.QUIET, f"--trainer.max_epochs={EPOCHS}",
    "--trainer.accelerator=cpu", f"--data.test_size={ROWS_TEST}",
]  # fmt: skip


class RecordTestShards(Callback):
    """At test end every rank writes ``<folder>/rank<r>.json``: the test indices of its own
    batches, and what the Regression callback gathered over all ranks. Given to the CLI by class
    path (``test_ddp.RecordTestShards``, with this folder on PYTHONPATH)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.seen: list[int] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen = []

    def on_test_batch_end(  # type: ignore[override]
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.seen += batch.index.tolist()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]
        diagnostic = next(c for c in callbacks if isinstance(c, Regression))
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "seen": self.seen,
            "gathered": {k: v.tolist() for k, v in diagnostic.last[("test", "rows")].items()},
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(state))


def launch(args: list[str], log: Path) -> None:
    """Runs a command line (a DDP launch) to its end, or fails the test after TIMEOUT_S."""
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"DDP run hung for {TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
    assert rc == 0, log.read_text()[-4000:]


@pytest.fixture(scope="module")
def rows_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ddp_rows")
    spec = {"class_path": "test_ddp.RecordTestShards", "init_args": {"folder": str(tmp / "shards")}}
    args = [
        sys.executable, "-m", "litforge.testing.regression", "fit", f"--run.root={tmp / 'runs'}",
        *ROWS_COMMON, "--trainer.strategy=ddp", "--trainer.devices=2", "--data.batch_size=16",
        f"--trainer.callbacks+={json.dumps(spec)}",
    ]  # fmt: skip
    launch(args, tmp / "ddp.log")
    (ddp_dir,) = (tmp / "runs" / "rows").iterdir()
    single = regression.main(
        ["fit", f"--run.dir={tmp / 'single'}", *ROWS_COMMON, "--data.batch_size=32"]
    )
    shards = [json.loads((tmp / "shards" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"ddp_dir": ddp_dir, "single": single, "shards": shards}


@pytest.mark.slow
def test_regression_ranks_evaluate_disjoint_shards_that_cover_the_test_set(
    rows_runs: dict[str, Any],
) -> None:
    shards = rows_runs["shards"]
    assert [s["rank"] for s in shards] == [0, 1] and {s["world_size"] for s in shards} == {2}
    mine = [s["seen"] for s in shards]
    assert [len(m) for m in mine] == [32, 31]  # uneven: rank 1 is padded in the gather
    assert not set(mine[0]) & set(mine[1])
    assert sorted(mine[0] + mine[1]) == list(range(ROWS_TEST))
    for s in shards:  # every rank gathered both shards, in rank order, the padding cut off
        assert s["gathered"]["index"] == mine[0] + mine[1]


@pytest.mark.slow
def test_regression_diagnostics_over_two_processes_equal_one(rows_runs: dict[str, Any]) -> None:
    ddp_dir, single = rows_runs["ddp_dir"], rows_runs["single"]
    one = next(c for c in single.trainer.callbacks if isinstance(c, Regression))
    one = one.last[("test", "rows")]
    assert one["index"].tolist() == list(range(ROWS_TEST))
    for s in rows_runs["shards"]:
        two = {k: torch.tensor(v) for k, v in s["gathered"].items()}
        order = torch.argsort(two["index"])  # back to dataset order
        assert torch.equal(two["true"][order], one["true"])
        assert torch.allclose(two["pred"][order], one["pred"], atol=LOSS_ATOL, rtol=0)
        assert torch.allclose(two["error"][order], one["error"], atol=LOSS_ATOL, rtol=0)
        errors = one["error"]
        ranked = sorted(range(ROWS_TEST), key=lambda i: (-float(errors[i]), i))
        k = len(one["worst"])
        assert one["worst"].tolist() == ranked[:k]
        gaps = [float(errors[ranked[i]] - errors[ranked[i + 1]]) for i in range(k)]
        if min(gaps) > LOSS_ATOL:  # no near-tie that rounding could reorder
            assert two["worst"].tolist() == ranked[:k]

    # named by the step of the checkpoint each test scored (the same epoch: asserted below)
    step = json.loads((single.run_dir / "results.json").read_text())["step"]
    for side in ("highest_error", "lowest_error"):
        folder = Path("media") / "test" / "rows" / "extremes" / side
        ddp_shown = json.loads((ddp_dir / folder / f"{step}.json").read_text())
        one_shown = json.loads((single.run_dir / folder / f"{step}.json").read_text())
        assert ddp_shown["index"] == one_shown["index"], side
        assert torch.allclose(
            torch.tensor(ddp_shown["error"]), torch.tensor(one_shown["error"]), atol=LOSS_ATOL
        )

    ddp_results = json.loads((ddp_dir / "results.json").read_text())
    one_results = json.loads((single.run_dir / "results.json").read_text())
    assert ddp_results.keys() == one_results.keys()
    # both test their best checkpoint (by val mae), of the same epoch
    assert ddp_results["epoch"] == one_results["epoch"]
    metrics = [k for k in final_metrics(one_results) if "/loss/" not in k]  # losses: next test
    assert {"test/rows/mse", "test/rows/mae", "test/rows/r2", "test/rows/residual_std"} <= set(
        metrics
    )
    for key in metrics:
        assert abs(ddp_results[key] - one_results[key]) <= LOSS_ATOL, (
            key,
            ddp_results,
            one_results,
        )


@pytest.mark.slow
def test_regression_logged_losses_over_two_processes_equal_one(rows_runs: dict[str, Any]) -> None:
    ddp_results = json.loads((rows_runs["ddp_dir"] / "results.json").read_text())
    one_results = json.loads((rows_runs["single"].run_dir / "results.json").read_text())
    losses = [k for k in one_results if "/loss/" in k]
    assert losses
    for key in losses:
        assert abs(ddp_results[key] - one_results[key]) <= LOSS_ATOL, (
            key,
            ddp_results,
            one_results,
        )


# ---------------------------------------------------------------------- uneven image shards
# 63 test images on two ranks: rank 0 evaluates 32, rank 1 31 (evaluation shards are exact), so
# the diagnostics' gather_dedup pads rank 1's share before the all_gather and must cut the
# padding off after: no image counted twice, none left out.
IMAGES_TEST = 63


@pytest.fixture(scope="module")
def uneven_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ddp_uneven")
    spec = {
        "class_path": "reliability_probes.DumpTestState",
        "init_args": {"folder": str(tmp / "dump")},
    }
    args = [
        sys.executable, "-m", "litforge.testing", "fit", f"--run.root={tmp / 'runs'}", *COMMON,
        "--trainer.max_epochs=1", f"--data.n_test={IMAGES_TEST}", "--trainer.strategy=ddp",
        "--trainer.devices=2", "--data.batch_size=16", f"--trainer.callbacks+={json.dumps(spec)}",
    ]  # fmt: skip
    launch(args, tmp / "ddp.log")
    (run_dir,) = (tmp / "runs" / "synthetic").iterdir()
    dumps = [json.loads((tmp / "dump" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"run_dir": run_dir, "dumps": dumps}


@pytest.mark.slow
def test_uneven_image_shards_give_exact_extremes_confusion_and_bins(
    uneven_run: dict[str, Any],
) -> None:
    run_dir = uneven_run["run_dir"]
    results = json.loads((run_dir / "results.json").read_text())
    scored = results.get("checkpoint", "final")  # what the test after fit scored
    ckpt = run_dir / ("checkpoints/last.ckpt" if scored == "final" else scored)
    errors, pred, labels = brute_force_errors(ckpt, n_test=IMAGES_TEST)
    assert len(errors) == IMAGES_TEST
    folder = run_dir / "media" / "test" / "synthetic" / "extremes"
    k = 4  # images.yaml
    for name, highest in (("highest_error", True), ("lowest_error", False)):
        (shown_file,) = (folder / name).glob("*.json")
        shown = json.loads(shown_file.read_text())
        ranked = sorted(range(len(errors)), key=lambda i: (-errors[i] if highest else errors[i], i))
        assert len(shown["index"]) == len(set(shown["index"])) == k
        assert all(0 <= i < IMAGES_TEST for i in shown["index"])
        # the shown errors are those of the shown images, and the k most extreme of all 63
        assert torch.allclose(torch.tensor(shown["error"]), errors[shown["index"]], atol=1e-5)
        assert torch.allclose(torch.tensor(shown["error"]), errors[ranked[:k]], atol=1e-5)
        if abs(float(errors[ranked[k - 1]] - errors[ranked[k]])) > 1e-5:  # no near-tie
            assert shown["index"] == ranked[:k], (name, shown["index"], ranked[:k])
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(labels.tolist(), pred.tolist()):
        expected[t, p] += 1
    assert [d["rank"] for d in uneven_run["dumps"]] == [0, 1]
    for dump in uneven_run["dumps"]:  # every rank got the gathered results
        matrix = torch.tensor(dump["confusion"]["test/synthetic"])
        assert int(matrix.sum()) == IMAGES_TEST  # each image once: the padding was cut off
        assert torch.equal(matrix, expected), (dump["rank"], matrix, expected)
        assert sum(dump["uncertainty_counts"]["test/synthetic"]) == IMAGES_TEST
