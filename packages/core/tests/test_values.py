"""Values, not files, on the synthetic image task through the real CLI: the logged ECE is the ECE
of the saved predictions (recomputed here by an independent implementation), the uncertainty
bins count every example once, and a re-run of a saved config.yaml has the settings saved in
it, not the defaults."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from litforge import ConfusionMatrix, Extremes, Uncertainty, testing
from litforge.run.handoff import HANDOFF_ENV
from litforge.testing.images import CONFIG

QUIET = testing.QUIET
N_TEST, N_VAL = 64, 64  # images.yaml


@pytest.fixture(autouse=True)
def no_inherited_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HANDOFF_ENV, raising=False)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One epoch (the model still unsure, so the ECE is far from 0), then the test after fit
    writes results.json."""
    tmp = tmp_path_factory.mktemp("values")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(HANDOFF_ENV, raising=False)
        yield testing.main(
            ["fit", f"--run.dir={tmp / 'run'}", "--run.loggers=[csv]", *QUIET,
             "--trainer.max_epochs=1"]
        )  # fmt: skip


def ece_by_hand(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> float:
    """The textbook expected calibration error: over ``n_bins`` equal-width bins of confidence
    (the top probability), sum of (share of examples in the bin) x |accuracy - mean confidence|
    in the bin; bins are [lo, hi), the last one [lo, 1]."""
    confidence, pred = probs.double().max(dim=1)
    correct = (pred == labels).double()
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (confidence >= lo) & ((confidence < hi) if b < n_bins - 1 else (confidence <= hi))
        if inside.any():
            share = float(inside.double().mean())
            total += share * abs(float(correct[inside].mean() - confidence[inside].mean()))
    return total


@pytest.mark.slow
def test_logged_ece_equals_the_ece_of_the_saved_predictions(one_epoch: Any, tmp_path: Path) -> None:
    results = json.loads((one_epoch.run_dir / "results.json").read_text())
    # the checkpoint the test after fit scored (the best one, or the final weights)
    scored = results.get("checkpoint", "final")
    ckpt = one_epoch.run_dir / ("checkpoints/last.ckpt" if scored == "final" else scored)
    predicted = testing.main(
        ["predict", f"--run.dir={tmp_path / 'predict'}", "--run.loggers=[]", *QUIET,
         f"--ckpt_path={ckpt}"]
    )  # fmt: skip
    saved = torch.load(predicted.run_dir / "predictions.pt", weights_only=True)
    probs = saved["probs"]
    labels = one_epoch.datamodule.splits["test"]["label"].cpu()  # predict runs the test set
    assert probs.shape == (N_TEST, 4) and torch.allclose(probs.sum(1), torch.ones(N_TEST))
    expected = ece_by_hand(probs, labels)
    assert expected > 0.01  # not a vacuous comparison: the model is far from calibrated
    assert abs(results["test/synthetic/ece"] - expected) <= 1e-6, (results, expected)

    # the calibration picture's bins: every example counted once, their ECE the logged one,
    # and the entropy view's errors are the predictions' errors
    uncertainty = next(c for c in one_epoch.trainer.callbacks if isinstance(c, Uncertainty))
    test_bins = uncertainty.last_bins[("test", "synthetic")]
    reliability, entropy = test_bins["reliability"], test_bins["entropy"]
    assert int(reliability["count"].sum()) == N_TEST == test_bins["n"]
    assert len(reliability["count"]) == len(entropy["count"]) == uncertainty.n_bins
    confidence, pred = probs.double().max(dim=1)
    hits = (reliability["accuracy"].nan_to_num(0) * reliability["count"]).sum()
    assert round(float(hits)) == int((pred == labels).sum())
    mean_confidence = (reliability["confidence"].nan_to_num(0) * reliability["count"]).sum()
    assert float(mean_confidence) == pytest.approx(float(confidence.sum()), abs=1e-4)
    errors = (entropy["rate"].nan_to_num(0) * entropy["count"]).sum()
    assert round(float(errors)) == int((pred != labels).sum())
    assert abs(float(test_bins["ece"]) - expected) <= 1e-6
    val_bins = uncertainty.last_bins[("val", "synthetic")]
    assert int(val_bins["reliability"]["count"].sum()) == N_VAL


@pytest.mark.slow
def test_rerun_of_a_saved_config_has_the_saved_settings(tmp_path: Path) -> None:
    settings = [
        "--model.width=12",
        "--data.batch_size=16",
        "--trainer.max_epochs=1",
        "--trainer.accumulate_grad_batches=2",
        "--trainer.callbacks=[]",
        "--run.test_after_fit=false",
    ]
    # each differs from the default, so a rerun that ignored the file would fail below
    defaults = yaml.safe_load(CONFIG.read_text())
    assert inspect.signature(testing.TinyClassifier).parameters["width"].default != 12
    assert defaults["data"]["batch_size"] != 16 and defaults["trainer"]["max_epochs"] != 1
    assert "accumulate_grad_batches" not in defaults["trainer"]  # Lightning's default: 1
    assert defaults["trainer"]["callbacks"]  # the diagnostics

    first = testing.main(
        ["fit", f"--run.dir={tmp_path / 'first'}", "--run.loggers=[csv]", *QUIET, *settings]
    )
    rerun = testing.rerun_saved_config(testing.main, first.run_dir, tmp_path)
    assert rerun.run_dir == tmp_path / "rerun"  # its own folder
    assert rerun.model.net[0].out_channels == 12
    assert rerun.datamodule.batch_size == 16
    assert len(next(iter(rerun.datamodule.train_dataloader()))) == 16
    assert rerun.trainer.accumulate_grad_batches == 2
    assert rerun.config["fit"]["trainer"]["max_epochs"] == 1  # fast_dev_run hides it on the trainer
    assert rerun.config["fit"]["run"]["test_after_fit"] is False
    diagnostics = (Extremes, Uncertainty, ConfusionMatrix)
    assert not any(isinstance(c, diagnostics) for c in rerun.trainer.callbacks)


def test_a_saved_config_with_tuple_defaults_reruns_equal(tmp_path: Path) -> None:
    """ArrayDataModule's ``standardize`` left at its default (an empty tuple): config.yaml
    writes a list, and the rerun reads it back equal to the first run's settings."""
    from litforge.run.cli import cli_main
    from litforge.testing import regression

    text = regression.CONFIG.read_text()
    assert "  standardize:" in text
    config = tmp_path / "no_standardize.yaml"
    config.write_text("\n".join(ln for ln in text.splitlines() if "standardize:" not in ln))

    def main(args: list[str]) -> Any:
        return cli_main(
            regression.MLPRegressor,
            regression.FeatureRows,
            project="rows",
            default_config=config,
            args=args,
        )

    first = main(["fit", f"--run.dir={tmp_path / 'first'}", "--run.loggers=[csv]", *QUIET])
    assert first.datamodule.standardize == ()
    rerun = testing.rerun_saved_config(main, first.run_dir, tmp_path)
    assert rerun.config["fit"]["data"] == first.config["fit"]["data"]
    assert rerun.config["fit"]["model"] == first.config["fit"]["model"]
