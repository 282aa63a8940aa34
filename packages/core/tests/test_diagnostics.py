"""Real Trainer runs of the synthetic task; the diagnostics are checked against brute force."""

import json
import math

import pytest
import torch

from litforge import ConfusionMatrix, Extremes, ImageArrays, Uncertainty, encode_strings, testing
from litforge.diagnostics.uncertainty import error_by_entropy, expected_calibration_error
from litforge.tasks.structs import ClassificationExample

# the diagnostics of images.yaml, drawn at every validation (the default, 'auto', draws as
# often as they cost under 5% of the fit's time: on this tiny task, at none)
EVERY_EPOCH = json.dumps(
    [
        {"class_path": "litforge.Extremes", "init_args": {"k": 4, "val_every": 1}},
        {"class_path": "litforge.Uncertainty", "init_args": {"val_every": 1}},
        {"class_path": "litforge.ConfusionMatrix", "init_args": {"val_every": 1}},
        {"class_path": "litforge.StopOnNonFinite"},
    ]
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return testing.train(
        testing.main,
        tmp,
        "fit",
        "--trainer.max_epochs=2",
        f"--trainer.callbacks={EVERY_EPOCH}",
        loggers="[csv,tensorboard,wandb]",
    )


def scored(run):
    """What the test after fit scored, as results.json says."""
    return json.loads((run.run_dir / "results.json").read_text())


def predictions(model, datamodule):
    """Brute force: the per-example cross-entropy and the prediction for every test example,
    normalised here by hand from the stored pixels and the training statistics."""
    model.eval()
    test = datamodule.splits["test"]
    x = (test.images.float() / 255 - datamodule.mean.view(1, -1, 1, 1)) / datamodule.std.view(
        1, -1, 1, 1
    )
    example = ClassificationExample(torch.arange(len(test)), image=x, label=test.labels)
    with torch.no_grad():
        pred = model(example)
    ce = torch.nn.functional.cross_entropy(pred.logits, test.labels, reduction="none")
    return ce, pred.pred


def brute_force(errors: torch.Tensor, k: int, highest: bool) -> list[int]:
    ranked = sorted(range(len(errors)), key=lambda i: (-errors[i] if highest else errors[i], i))
    return ranked[:k]


def callback(cli, cls):
    return next(c for c in cli.trainer.callbacks if isinstance(c, cls))


def test_extremes_match_brute_force(run):
    dm = run.datamodule
    errors, pred = predictions(run.model, dm)
    probs = torch.softmax(run.model(example_of(dm)).logits.detach(), -1)
    extremes = callback(run, Extremes)
    results = scored(run)
    names = dm.class_names
    for name, highest in (("highest_error", True), ("lowest_error", False)):
        shown = extremes.last_selection[("test", "synthetic", name)]
        assert shown["index"].tolist() == brute_force(errors.tolist(), 4, highest)
        assert torch.allclose(shown["error"], errors[shown["index"]], atol=1e-5)
        # the pixels drawn are the stored images at those indices (through the display
        # transform, which undoes the normalisation up to rounding)
        stored = dm.splits["test"].images[shown["index"]].int()
        assert (shown["view"].pixels.int() - stored).abs().max() <= 1
        # named by the step of the checkpoint the test scored, not the last step trained
        folder = run.run_dir / "media" / "test" / "synthetic" / "extremes" / name
        png = folder / f"{results['step']}.png"
        assert png.is_file() and png.stat().st_size > 1000
        assert [p.name for p in folder.glob("*.png")] == [png.name]
        facts = json.loads(png.with_suffix(".json").read_text())
        assert facts["index"] == shown["index"].tolist()
        assert facts["model"] == {
            "stage": "test",
            "epoch": results["epoch"],
            "step": results["step"],
            "checkpoint": results["checkpoint"],
        }
        # every fact of each caption is in the file beside it, with the brute-force values
        labels = dm.splits["test"].labels
        for record, i, caption in zip(
            facts["examples"], shown["index"].tolist(), shown["view"].captions
        ):
            assert record["index"] == i
            assert record["label"] == names[int(labels[i])]
            assert record["pred.pred"] == names[int(pred[i])]
            assert record["p(true)"] == pytest.approx(float(probs[i, labels[i]]), abs=1e-5)
            assert record["p(predicted)"] == pytest.approx(float(probs[i].max()), abs=1e-5)
            assert record["error"] == pytest.approx(float(errors[i]), abs=1e-5)
            assert f"{record['label']} -> {record['pred.pred']}" in caption
            assert f"#{i} · error " in caption


def example_of(dm):
    test = dm.splits["test"]
    x = (test.images.float() / 255 - dm.mean.view(1, -1, 1, 1)) / dm.std.view(1, -1, 1, 1)
    return ClassificationExample(torch.arange(len(test)), image=x, label=test.labels)


def test_confusion_matrix_matches_counts(run):
    dm = run.datamodule
    _, pred = predictions(run.model, dm)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(dm.splits["test"].labels.tolist(), pred.tolist()):
        expected[t, p] += 1
    matrix = callback(run, ConfusionMatrix).last_matrix[("test", "synthetic")]
    assert torch.equal(matrix, expected)
    assert int(matrix.sum()) == len(dm.splits["test"])


def test_uncertainty_bins_by_hand(run):
    entropy = torch.tensor([0.05, 0.15, 0.15, 0.55, 0.95, 1.0])
    correct = torch.tensor([1, 1, 0, 0, 0, 1])
    count, rate = error_by_entropy(entropy, correct, n_bins=5)
    # bins [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]: 3, 0, 1, 0, 2 examples
    assert count.tolist() == [3, 0, 1, 0, 2]
    assert rate[0].item() == pytest.approx(1 / 3)
    assert torch.isnan(rate[1]) and torch.isnan(rate[3])
    assert rate[2].item() == 1.0 and rate[4].item() == 0.5
    conf = torch.tensor([0.9, 0.9, 0.3, 0.3])
    ok = torch.tensor([1, 0, 0, 0])
    # bin of 0.9: acc 0.5, conf 0.9 -> 0.4 * 2/4; bin of 0.3: acc 0, conf 0.3 -> 0.3 * 2/4
    assert expected_calibration_error(conf, ok, 10).item() == pytest.approx(0.35)

    # the run's test picture: the bins beside it are those of the logged ECE
    results = scored(run)
    png = run.run_dir / "media" / "test" / "synthetic" / "uncertainty" / f"{results['step']}.png"
    facts = json.loads(png.with_suffix(".json").read_text())
    assert facts["ece"] == pytest.approx(results["test/synthetic/ece"], abs=1e-6)
    assert facts["classes"] == 4 and facts["examples"] == len(run.datamodule.splits["test"])
    bins = facts["confidence_bins"]
    assert sum(b["count"] for b in bins) == facts["examples"]
    ece = sum(
        b["count"] / facts["examples"] * abs(b["accuracy"] - b["mean_confidence"])
        for b in bins
        if b["count"]
    )
    assert ece == pytest.approx(facts["ece"], abs=1e-9)
    shown = callback(run, Uncertainty).last_bins[("test", "synthetic")]
    assert [b["count"] for b in bins] == shown["reliability"]["count"].tolist()
    assert all(
        math.isnan(a) == (b["accuracy"] is None)
        for a, b in zip(shown["reliability"]["accuracy"].tolist(), bins)
    )


def test_ece_and_metrics_logged_with_stage_and_dataset_names(run):
    results = json.loads((run.run_dir / "results.json").read_text())
    for key in ("test/synthetic/accuracy", "test/synthetic/ece", "test/synthetic/loss/total"):
        assert key in results, results.keys()
    assert results["test/synthetic/accuracy"] > 0.9
    assert 0 <= results["test/synthetic/ece"] <= 1
    header = (run.run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "val/synthetic/accuracy",
        "train/synthetic/loss/total_step",
        "val/synthetic/ece",
    } <= set(header)


def test_media_in_png_tensorboard_and_wandb(run):
    keys = testing.media_files(run.run_dir)
    for stage in ("val", "test"):
        for what in (
            "extremes/highest_error",
            "extremes/lowest_error",
            "uncertainty",
            "confusion_matrix",
        ):
            assert f"{stage}/synthetic/{what}" in keys, sorted(keys)
    # validation drawn at every epoch (val_every: 1), each file named by its step
    steps = sorted(int(p.stem) for p in keys["val/synthetic/uncertainty"])
    per_epoch = run.trainer.global_step // 2
    assert steps == [per_epoch, 2 * per_epoch]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.run_dir / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    tags = set(acc.Tags()["images"])
    assert {"test/synthetic/uncertainty", "test/synthetic/confusion_matrix"} <= tags, tags
    assert any(t.startswith("test/synthetic/extremes/highest_error") for t in tags), tags
    wandb_runs = list((run.run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    images = {
        p.parent.name + "/" + p.name.split("_")[0]
        for p in (wandb_runs[0] / "files" / "media" / "images").rglob("*.png")
    }
    assert any("confusion" in p for p in images) and any("uncertainty" in p for p in images), images
    assert any("highest" in p for p in images), images


def test_gather_dedup_drops_padding_duplicates():
    from litforge.diagnostics.base import dedup

    data = {"index": torch.tensor([3, 1, 3, 2, 1]), "v": torch.tensor([10, 11, 12, 13, 14])}
    out = dedup(data)
    assert out["index"].tolist() == [3, 1, 2] and out["v"].tolist() == [10, 11, 13]


def test_predict_saves_every_prediction_and_test_reads_the_checkpoint(run, tmp_path):
    # the checkpoint the test after fit scored (the best one), whose weights run.model holds
    scored = json.loads((run.run_dir / "results.json").read_text())["checkpoint"]
    ckpt = run.run_dir / scored
    cli = testing.train(testing.main, tmp_path, "predict", f"--ckpt_path={ckpt}")
    saved = torch.load(cli.run_dir / "predictions.pt", weights_only=True)
    n = len(run.datamodule.splits["test"])
    assert saved["logits"].shape == (n, 4) and saved["pred"].shape == (n,)
    assert torch.allclose(saved["probs"].sum(-1), torch.ones(n), atol=1e-5)
    _, pred = predictions(run.model, run.datamodule)
    assert torch.equal(saved["pred"], pred)
    tested = testing.train(testing.main, tmp_path, "test", f"--ckpt_path={ckpt}")
    results = json.loads((tested.run_dir / "results.json").read_text())
    expected = json.loads((run.run_dir / "results.json").read_text())
    assert results["test/synthetic/accuracy"] == expected["test/synthetic/accuracy"]


class NamedImages(testing.SyntheticData):
    """The synthetic images with a file name for each, as an image folder would give."""

    def load(self):
        train, test = super().load()
        names = encode_strings([f"img_{i:04d}.png" for i in range(len(test))])
        return train, ImageArrays(test.images, test.labels, test.class_names, id=names)


def test_captions_and_facts_name_examples_by_their_id(tmp_path):
    from litforge.run.project import Project
    from litforge.testing.images import CONFIG

    main = Project("named", testing.TinyClassifier, NamedImages, CONFIG).main
    cli = testing.train(main, tmp_path, "fit", "--trainer.max_epochs=1")
    shown = callback(cli, Extremes).last_selection[("test", "synthetic", "highest_error")]
    step = scored(cli)["step"]
    facts = json.loads(
        (cli.run_dir / "media/test/synthetic/extremes/highest_error" / f"{step}.json").read_text()
    )
    for i, caption, record in zip(
        shown["index"].tolist(), shown["view"].captions, facts["examples"]
    ):
        assert record["id"] == f"img_{i:04d}.png" and record["index"] == i
        assert f"id img_{i:04d}.png · error " in caption.splitlines()[-1]
