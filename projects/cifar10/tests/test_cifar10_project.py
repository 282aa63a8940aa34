"""The CIFAR-10 demo end to end on the tiny generated image folder (``tiny_image_folder``, the
root conftest.py's) and, in the slow tier where the JPEG copy is (LITFORGE_CIFAR10_JPEG or
../shared/datasets/cifar10-jpeg), on real images; the model's pieces against hand-checked
facts, and the data errors a user meets first."""

import json

import pytest
import torch

from cifar10_demo.cli import main
from cifar10_demo.data import Cifar10Data, DataUnavailableError
from cifar10_demo.model import Cifar10Model, Net
from litforge import testing
from litforge.tasks.structs import ClassificationExample

TINY = ["--model.widths=[16,32,32]", "--trainer.precision=32-true"]
# The network and precision as given: no timing of this machine against a time budget (cpu.yaml).
AS_GIVEN = ["--size=null", "--run.time_budget=null", "--run.precision=null"]


def test_short_run_on_a_tiny_image_folder_learns_and_leaves_diagnostics(
    tiny_image_folder, tmp_path
):
    """fit, test, results.json and media, from 32 x 32 PNGs on disk (W&B: the slow real-data
    run below, and core's tests)."""
    cli = testing.train(
        main,
        tmp_path,
        "fit",
        f"--data.root={tiny_image_folder}",
        "--data.batch_size=50",
        "--data.eval_batch_size=50",
        "--trainer.max_epochs=4",
        "--model.widths=[8,16,16]",
        "--trainer.precision=32-true",
        *AS_GIVEN,
    )
    results = json.loads((cli.run_dir / "results.json").read_text())
    assert results["test/cifar10/accuracy"] > 0.25, results  # chance is 0.1; 16 steps: 0.34
    media = testing.media_files(cli.run_dir)
    for what in ("extremes/highest_error", "uncertainty", "confusion_matrix"):
        assert f"test/cifar10/{what}" in media, sorted(media)
    assert cli.datamodule.class_names == tuple(f"class{c}" for c in range(10))


@pytest.mark.slow
def test_short_run_on_real_images_beats_chance_and_leaves_diagnostics(jpeg_subset, tmp_path):
    cli = testing.train(
        main,
        tmp_path,
        "fit",
        f"--data.root={jpeg_subset}",
        *AS_GIVEN,
        "--data.batch_size=100",
        "--data.eval_batch_size=500",
        "--trainer.max_epochs=4",
        "--model.widths=[16,32,64]",
        "--trainer.precision=32-true",
        loggers="[csv,wandb]",
    )
    results = json.loads((cli.run_dir / "results.json").read_text())
    assert results["test/cifar10/accuracy"] > 0.3, results  # chance is 0.1
    media = testing.media_files(cli.run_dir)
    for what in (
        "extremes/highest_error",
        "extremes/lowest_error",
        "uncertainty",
        "confusion_matrix",
    ):
        assert f"test/cifar10/{what}" in media, sorted(media)
    shown = json.loads(
        next((cli.run_dir / "media/test/cifar10/extremes/highest_error").glob("*.json")).read_text()
    )
    assert len(shown["index"]) == 16
    wandb_run = next((cli.run_dir / "wandb").glob("offline-run-*"))
    images = [p.name for p in (wandb_run / "files" / "media" / "images").rglob("*.png")]
    for what in ("highest_error", "lowest_error", "uncertainty", "confusion_matrix"):
        assert any(what in name for name in images), images
    assert cli.datamodule.class_names[0] == "airplane"


def test_whitening_filters_decorrelate_patches():
    torch.manual_seed(0)
    mix = torch.randn(12, 12)
    patches = torch.randn(4000, 12) @ mix  # correlated 2x2x3 patches
    images = patches.view(-1, 2, 2, 3).permute(0, 3, 1, 2)  # N x C x 2 x 2: one patch each
    net = Net((8, 8, 8), 24, 0.4, 10, 1 / 9)
    net.init_whitening(images, eps=0.0)
    w = net.whiten.weight.reshape(24, 12)[:12]
    out = images.reshape(-1, 12) @ w.T  # the conv on each patch (c, h, w order)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def test_tta_views_and_overfit():
    model = Cifar10Model(widths=(8, 16, 16), channels_last=False)
    torch.manual_seed(0)
    x = torch.randn(20, 3, 32, 32)
    ex = ClassificationExample(torch.arange(20), image=x, label=torch.arange(20) % 10)
    model.eval()
    with torch.no_grad():
        tta = model(ex).logits
        model.tta = "flip"
        flip = model(ex).logits
        expected = 0.5 * (model.logits(x) + model.logits(x.flip(-1)))
    assert tta.shape == (20, 10) and torch.allclose(flip, expected, atol=1e-5)
    assert not torch.allclose(tta, flip)
    model = Cifar10Model(widths=(8, 16, 16), channels_last=False, tta="none")
    model.net.init_whitening(x)

    class FakeTrainer:  # configure_optimizers reads the schedule length from the trainer
        estimated_stepping_batches = 30

    model._trainer = FakeTrainer()  # type: ignore[assignment]
    testing.overfit(model, ex, steps=30, ratio=0.5)


def test_missing_data_folder_and_no_download_fail_fast_with_both_ways(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist") as err:
        Cifar10Data(root=str(tmp_path / "nope"))
    assert "DATA=" in str(err.value)
    data = Cifar10Data(root=str(tmp_path), url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DataUnavailableError) as err:
        data.prepare_data()
    message = str(err.value)
    assert "127.0.0.1:9" in message and "without DATA" in message and "DATA=" in message


def test_limit_is_class_balanced(tiny_image_folder):
    data = Cifar10Data(root=str(tiny_image_folder), limit=100)
    train, _ = data.load()
    assert len(train) == 100 and torch.bincount(train.labels).tolist() == [10] * 10
    assert train.images.shape[1:] == (3, 32, 32)
