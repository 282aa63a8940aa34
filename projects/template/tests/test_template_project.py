"""The template task through the core test kit: the CLI end to end, overfitting, a real run."""

import json
import runpy
import sys

import pytest
import torch

from litforge import testing
from litforge.structs import ClassificationExample, ClassificationPrediction
from template_project import cli
from template_project.data import SHAPES, ShapesData
from template_project.model import ShapeModel

# A small data set keeps every run here to a second or two.
SMALL = ["--data.n_train=320", "--data.n_test=64", "--data.val_size=64", "--data.batch_size=32"]


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch):
    # The CLI leaves LITFORGE_RUN_DIR set (for DDP children); later runs in this process would
    # reuse that folder.
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def test_python_m_help(monkeypatch, capsys):
    """`python -m template_project --help`, through __main__."""
    monkeypatch.setattr(sys, "argv", ["template_project", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("template_project", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0 and "fit" in capsys.readouterr().out


def test_smoke(tmp_path):
    run = testing.smoke(cli.main, tmp_path, *SMALL)
    assert isinstance(run.model, ShapeModel) and isinstance(run.datamodule, ShapesData)


def test_a_batch_through_the_model():
    data = ShapesData(n_train=64, n_test=32, batch_size=16)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, ClassificationExample) and len(batch) == 16
    assert batch.image.shape == (16, data.in_channels, data.size, data.size)
    model = ShapeModel(num_classes=data.num_classes, in_channels=data.in_channels)
    prediction = model(batch)
    assert isinstance(prediction, ClassificationPrediction)
    assert prediction.logits.shape == (16, len(SHAPES))
    assert set(model.compute_loss(batch, prediction).items()) == {"cross_entropy", "total"}


def test_overfits_one_batch():
    torch.manual_seed(0)
    data = ShapesData(n_train=16, n_test=8, batch_size=16)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model = ShapeModel(4, optimizer=lambda params: torch.optim.AdamW(params, lr=0.01))
    testing.overfit(model, batch, steps=40, ratio=0.3)


def test_classes_and_channels_reach_the_model_from_the_data(tmp_path):
    """Linked by the CLI: a grayscale set of 6 classes needs no model setting."""
    run = testing.smoke(cli.main, tmp_path, *SMALL)
    assert run.model.num_classes == run.datamodule.num_classes == len(SHAPES)
    assert run.model.body[0][0].in_channels == run.datamodule.in_channels == 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LITFORGE_RUN_DIR", raising=False)
        return testing.train(
            cli.main,
            tmp_path_factory.mktemp("runs"),
            "fit",
            "--trainer.max_epochs=2",
            "--trainer.check_val_every_n_epoch=2",
            *SMALL,
        )


def test_run_writes_media_and_test_results(run):
    media = testing.media_files(run.run_dir)
    for key in (
        "val/shapes/confusion_matrix",
        "val/shapes/uncertainty",
        "test/shapes/extremes/highest_error",
        "test/shapes/extremes/lowest_error",
    ):
        assert media.get(key), f"no PNG for {key}; found {sorted(media)}"
        assert all(png.stat().st_size > 1000 for png in media[key])
    results = json.loads((run.run_dir / "results.json").read_text())
    for name in ("accuracy", "accuracy_macro", "ece", "loss/cross_entropy", "loss/total"):
        assert f"test/shapes/{name}" in results, sorted(results)
    assert results["test/shapes/accuracy"] > 0.35  # chance is 0.25; 0.5 after these 16 steps


def test_saved_config_reruns(run, tmp_path):
    rerun = testing.rerun_saved_config(cli.main, run.run_dir, tmp_path)
    assert rerun.trainer.state.finished and rerun.run_dir == tmp_path / "rerun"
