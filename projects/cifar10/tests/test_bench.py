"""The benchmarks' code, run on the CPU with tiny settings: `make bench-gpu` must work the first
time a GPU appears, and bench (d) must compare what it says it compares."""

import csv
import json
import statistics

import pytest

from cifar10_demo import bench, bench_gpu, reference

TINY = ["--model.widths=[8,16,16]", "--data.batch_size=50", "--data.eval_batch_size=50"]


@pytest.mark.slow  # a benchmark's run: seconds
def test_bench_gpu_writes_what_it_measured(tiny_image_folder, tmp_path):
    rows = bench_gpu.main(
        [
            f"--data={tiny_image_folder}",
            "--seeds=2",
            "--steps=2",
            f"--out={tmp_path}",
            "--",
            *TINY,
            "--trainer.max_epochs=1",
            "--trainer.precision=32-true",
        ]
    )
    (out,) = tmp_path.glob("*-gpu")
    with open(out / "seeds.csv") as f:
        saved = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in saved] == [0, 1]
    for row, kept in zip(rows, saved):
        assert float(kept["accuracy"]) == pytest.approx(row["accuracy"])
        assert 0 <= row["accuracy"] <= 1 and row["train_seconds"] > 0
    with open(out / "summary.csv") as f:
        summary = next(csv.DictReader(f))
    assert float(summary["accuracy_mean"]) == pytest.approx(
        statistics.mean(r["accuracy"] for r in rows)
    )
    assert int(summary["seeds"]) == 2
    assert float(summary["trainer_vs_raw_ratio_median_of_rounds"]) > 0


@pytest.mark.slow
def test_bench_d_runs_both_recipes_on_one_budget(tiny_image_folder, tmp_path):
    rows = bench.bench_budget(
        str(tiny_image_folder),
        budget=45,
        out=tmp_path,
        extra=["--size=null", "--run.precision=null", "--trainer.precision=32-true", *TINY],
        reference_extra=("--batch=50", "--widths=8,16,16", "--precision=fp32"),
    )
    ours, ref = rows
    assert ours["recipe"].startswith("litforge") and ref["recipe"].startswith("airbench94")
    assert ours["network"] == "None [8, 16, 16]" and ref["network"] == "airbench94 [8, 16, 16]"
    assert ours["steps"] >= 1 and ref["steps"] >= 1
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and row["budget"] == 45 and row["cpu"]
    results = json.loads(next((tmp_path / "runs" / "cifar10").glob("*/results.json")).read_text())
    assert ours["accuracy"] == results["test/cifar10/accuracy"]


def test_reference_tta_is_the_mean_of_six_views():
    import torch

    from cifar10_demo.model import Net

    net = Net((8, 8, 8), 24, 0.4, 10, 1 / 9).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = reference.tta_logits(net, x)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, padded[..., :32, :32], padded[..., 2:, 2:]]
        pairs = [0.5 * (net(v) + net(v.flip(-1))) for v in views]
        expected = 0.5 * pairs[0] + 0.25 * (pairs[1] + pairs[2])
    assert torch.allclose(got, expected, atol=1e-6)


def test_bench_e_times_each_network_and_saves_the_ratios(tmp_path, monkeypatch):
    """Widths (e): one row per network, its rate the batch over the (here fixed) step time, and
    its ratio to the first network's. The step timer is replaced: the test checks the
    arithmetic and the files, a real timing is this machine's."""
    import litforge
    from litforge.run import budget

    seconds = {(8, 16, 16): 0.5, (8, 16, 32): 0.25}  # per step of 8 images

    def timer(model, batch, device, precision, steps=3):
        widths = tuple(b[0].out_channels for b in model.net.blocks)
        return seconds[widths]

    monkeypatch.setattr(budget, "time_train_steps", timer)  # what choose_precision calls
    monkeypatch.setattr(litforge, "time_train_steps", timer)  # what the bench imports
    bench.main_bench(
        ["--only=e", "--widths=8/16/16,8/16/32", "--batch=8", "--rounds=2", f"--out={tmp_path}"]
    )
    (out,) = tmp_path.iterdir()
    with open(out / "widths.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["widths"] for r in rows] == ["8/16/16", "8/16/32"]
    assert [float(r["images_per_s"]) for r in rows] == [16.0, 32.0]
    assert [float(r["relative"]) for r in rows] == [1.0, 2.0]
    assert rows[0]["precision"] in ("bf16-mixed", "32-true") and rows[0]["cpu"]


@pytest.mark.slow
def test_bench_a_times_raw_bare_lightning_and_core_fit(tiny_image_folder, monkeypatch):
    """Part (a): the three sides train the same steps; core's side is the project's fit with
    its defaults (a run folder with its checkpoint), stopped by the timer after the timed steps;
    a second raw run per round gives the benchmark's noise."""
    from litforge.run.handoff import HANDOFF_ENV

    monkeypatch.delenv(HANDOFF_ENV, raising=False)
    extra = [*TINY, "--size=null", "--run.precision=null", "--trainer.precision=32-true",
             "--run.loggers=[csv]"]  # fmt: skip
    cli = bench.build(str(tiny_image_folder), extra)
    cli.datamodule.trainer = cli.trainer
    cli.datamodule.setup("fit")
    timer = bench.core_fit_rate(str(tiny_image_folder), extra, steps=3, warmup=1)
    assert timer.images == 3 * 50 and timer.rate > 0
    found = bench.bench_trainer_vs_raw(cli, 3, 1, 1, str(tiny_image_folder), extra)
    for side in ("lightning", "core"):
        assert found[f"{side}_img_s"] > 0 and f"{side}_added_ms_per_step" in found
    assert found["ratio_median_of_rounds"] == found["lightning_vs_raw_ratio"]
    # one round: the medians are that round's values
    core, lightning = found["core_img_s"], found["lightning_img_s"]
    assert found["core_minus_lightning_ms_per_step"] == pytest.approx(
        1000 * 50 * (1 / core - 1 / lightning)
    )
    assert found["raw_repeat_ms_per_step"] >= 0  # the noise: two raw runs of the round


def test_bench_f_times_each_precision_against_the_first():
    rows = bench.bench_precisions(["fp32-cl", "bf16-autocast-cl"], (4, 8, 8), 4, 1, 1)
    assert [r["mode"] for r in rows] == ["fp32-cl", "bf16-autocast-cl"]
    assert rows[0]["speed"] == 1.0 and rows[1]["speed"] > 0 and rows[1]["s_per_step"] > 0
    assert rows[1]["speed"] == pytest.approx(rows[0]["s_per_step"] / rows[1]["s_per_step"])


def test_a_precision_step_trains_in_the_precision_it_names():
    import torch

    for mode, dtype in (("bf16-weights-cl", torch.bfloat16), ("bf16-autocast-nchw", torch.float32)):
        step, net = bench.precision_step(mode, (4, 8, 8), 4)
        before = net.head.weight.detach().clone()
        step()
        assert net.head.weight.dtype == dtype and not torch.equal(net.head.weight, before)
