"""Best checkpoints (``litforge.run.checkpoints``): the monitored metric and its direction, the best
k kept beside last.ckpt, the test after fit scoring the best one, and results.json saying so.
Real Trainer runs of the synthetic image task."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torchmetrics import MetricCollection

from litforge import testing
from litforge.errors import LitforgeError
from litforge.run.checkpoints import default_monitor, known_monitors, resolve_monitor
from litforge.run.cli import LitforgeCLI
from litforge.run.loggers import CheckpointWandbLogger, make_loggers
from litforge.run.runs import final_metrics
from litforge.tasks.metrics import StructMetric, classification_metrics, regression_metrics
from litforge.tasks.model import BaseModel
from litforge.testing import SyntheticData, TinyClassifier
from litforge.testing.regression import FeatureRows, MLPRegressor

FAST = ["--trainer.callbacks=[]"]  # no diagnostics: not the point here, and they take seconds
# The learning rate is multiplied by 30000 at the start of the last of 4 epochs (AdamW, 0.003
# -> 90): that epoch wrecks the weights; validation accuracy falls from 1.0 to about 0.5.
SPIKE = [
    "--trainer.max_epochs=4",
    "--model.optimizer.init_args.lr=0.003",
    '--model.lr_scheduler={"class_path": "torch.optim.lr_scheduler.MultiStepLR", '
    '"init_args": {"milestones": [3], "gamma": 30000}}',
    "--model.lr_scheduler_interval=epoch",
]


def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def val_curve(run_dir: Path, key: str) -> list[float]:
    """The value of ``key`` at each epoch's validation, from the CSV log."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def load_ckpt(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------- the monitored metric
class NoMetrics(BaseModel):
    pass


def test_struct_metric_passes_the_direction_through() -> None:
    accuracy, mae = classification_metrics(4)["accuracy"], regression_metrics()["mae"]
    assert isinstance(accuracy, StructMetric) and isinstance(mae, StructMetric)
    assert accuracy.higher_is_better is True and mae.higher_is_better is False


def test_default_monitor_is_the_models_best_metric_in_its_direction() -> None:
    images = SyntheticData(n_train=64, n_test=16, val_size=16)
    classifier = TinyClassifier(num_classes=4)
    assert default_monitor(classifier, images) == ("val/synthetic/accuracy", "max")
    rows = FeatureRows(n=64, val_size=0.25)
    regressor = MLPRegressor(num_features=4, target_shape=())
    template = regressor.build_metrics()
    assert isinstance(template, MetricCollection)
    # torchmetrics orders a collection by name (mae first); the Regressor names mse
    assert next(iter(template.keys())) == "mae" and regressor.best_metric == "mse"
    assert default_monitor(regressor, rows) == ("val/rows/mse", "min")
    assert known_monitors(regressor, rows)["val/rows/r2"] == "max"

    class FirstByName(MLPRegressor):
        best_metric = None  # names none: the first of the collection, by name

    assert default_monitor(FirstByName(4, target_shape=()), rows) == ("val/rows/mae", "min")
    # a model without metrics: the total loss, minimised
    assert default_monitor(NoMetrics(), images) == ("val/synthetic/loss/total", "min")


def test_monitor_and_mode_can_be_overridden() -> None:
    data, model = SyntheticData(n_train=64, n_test=16, val_size=16), TinyClassifier(4)
    loss = "val/synthetic/loss/total"
    assert resolve_monitor(model, data, loss) == (loss, "min")
    assert resolve_monitor(model, data, "val/synthetic/accuracy_macro") == (
        "val/synthetic/accuracy_macro",
        "max",
    )
    assert resolve_monitor(model, data, None, "min") == ("val/synthetic/accuracy", "min")
    # a metric a callback logs (not in build_metrics): its direction must be given
    with pytest.raises(LitforgeError, match=r"--run\.monitor_mode"):
        resolve_monitor(model, data, "val/synthetic/ece")
    assert resolve_monitor(model, data, "val/synthetic/ece", "min") == ("val/synthetic/ece", "min")


# ---------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def spiked(tmp_path_factory: pytest.TempPathFactory) -> LitforgeCLI:
    """4 epochs, the last one wrecked by a learning rate spike; default monitor (accuracy)."""
    tmp = tmp_path_factory.mktemp("best")
    return testing.train(testing.main, tmp, "fit", *FAST, *SPIKE)


@pytest.mark.slow
def test_a_worse_last_epoch_reports_the_best_epochs_test_score(
    spiked: LitforgeCLI, tmp_path: Path
) -> None:
    run_dir = spiked.run_dir
    got = results(run_dir)
    accuracy = val_curve(run_dir, "val/synthetic/accuracy")
    assert len(accuracy) == 4
    best_epoch = accuracy.index(max(accuracy))  # the first of equals: ModelCheckpoint keeps it
    assert accuracy[-1] < max(accuracy), accuracy  # the spike made the last epoch worse
    assert got["epoch"] == best_epoch < 3, (got, accuracy)
    assert got["monitor"] == "val/synthetic/accuracy"
    assert got["monitor_value"] == pytest.approx(max(accuracy))
    # the best checkpoint and last.ckpt, side by side; last.ckpt is still the resume point
    files = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert got["checkpoint"] == f"checkpoints/best-epoch{best_epoch:03d}-step{got['step']}.ckpt"
    assert files == sorted(["last.ckpt", Path(got["checkpoint"]).name]), files
    best = run_dir / got["checkpoint"]
    assert load_ckpt(best)["epoch"] == best_epoch
    assert load_ckpt(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 3
    assert spiked.trainer.checkpoint_callback.best_model_path == str(best)  # type: ignore[attr-defined]

    # results.json equals a recomputation: test the best checkpoint again, in a new run
    again = testing.train(testing.main, tmp_path, "test", *FAST, f"--ckpt_path={best}")
    recomputed = results(again.run_dir)
    assert final_metrics(recomputed) == pytest.approx(final_metrics(got), abs=1e-6)
    assert recomputed["checkpoint"] == str(best) and recomputed["epoch"] == best_epoch
    # and differs from testing the final weights (last.ckpt)
    last = testing.train(
        testing.main, tmp_path, "test", *FAST, f"--ckpt_path={run_dir / 'checkpoints/last.ckpt'}"
    )
    worse = final_metrics(results(last.run_dir))
    assert worse["test/synthetic/accuracy"] < got["test/synthetic/accuracy"] - 0.2, (worse, got)


@pytest.mark.slow
def test_monitor_a_loss_and_keep_the_best_two(tmp_path: Path) -> None:
    loss = "val/synthetic/loss/total"
    cli = testing.train(
        testing.main, tmp_path, "fit", *FAST, *SPIKE, f"--run.monitor={loss}", "--run.save_top_k=2"
    )
    got = results(cli.run_dir)
    losses = val_curve(cli.run_dir, loss)
    assert got["monitor"] == loss and got["epoch"] == losses.index(min(losses)) < 3, losses
    best_two = sorted(range(4), key=lambda e: losses[e])[:2]
    kept = sorted(p.name for p in (cli.run_dir / "checkpoints").glob("best-*.ckpt"))
    assert [f"best-epoch{e:03d}" for e in sorted(best_two)] == [k.split("-step")[0] for k in kept]


@pytest.mark.slow
def test_without_validation_the_final_weights_are_scored(tmp_path: Path) -> None:
    cli = testing.train(
        testing.main, tmp_path, "fit", *FAST, "--data.val_size=0", "--trainer.max_epochs=2"
    )
    got = results(cli.run_dir)
    assert got["checkpoint"] == "final" and "monitor" not in got
    last = load_ckpt(cli.run_dir / "checkpoints" / "last.ckpt")
    assert (got["epoch"], got["step"]) == (last["epoch"], last["global_step"]) == (1, 16)
    assert sorted(p.name for p in (cli.run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert got["test/synthetic/accuracy"] > 0.5


# ---------------------------------------------------------------------- W&B artifacts
def test_wandb_log_model_only_online_and_best_from_the_monitored_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    (offline,) = make_loggers(["wandb"], tmp_path, "p", log_model=True)
    assert isinstance(offline, CheckpointWandbLogger) and offline._log_model is False
    monkeypatch.setenv("WANDB_MODE", "online")  # nothing is sent before the run starts
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # online needs a key (no login prompt)
    (online,) = make_loggers(["wandb"], tmp_path, "p", log_model="all")
    assert online._log_model == "all"

    seen: list[Any] = []
    monkeypatch.setattr(
        "pytorch_lightning.loggers.WandbLogger.after_save_checkpoint",
        lambda self, callback: seen.append(callback.monitor),
    )

    class Callback:
        def __init__(self, monitor: str | None) -> None:
            self.monitor = monitor

    last, best = Callback(None), Callback("val/synthetic/accuracy")
    for callback in (last, best, last, best, last):
        online.after_save_checkpoint(callback)  # type: ignore[arg-type]
    # last.ckpt's callback is passed on only until a monitored one shows up
    assert seen == [None, "val/synthetic/accuracy", "val/synthetic/accuracy"]
