"""Metrics that return several values (a dict: TorchMetrics' ``ClasswiseWrapper``, a per-class or
per-horizon metric of one's own): ``BaseModel`` logs one scalar per key,
``<stage>/<dataset>/<metric>/<key>``, computed at the epoch's end (no host sync in a training
step), which the best checkpoint can monitor; the summary prints many keys as one line. Real
Trainer fits of the synthetic image task, checked against scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torchmetrics
from sklearn.metrics import f1_score
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.wrappers import ClasswiseWrapper

from litforge import StructMetric
from litforge.run.checkpoints import known_monitors, resolve_monitor
from litforge.run.outputs import summary_lines
from litforge.tasks.metrics import classification_metrics, returns_several
from litforge.testing import SyntheticData, TinyClassifier
from litforge.testing.syncs import StepWindow, host_syncs, quiet_steps

CLASSES = ("class0", "class1", "class2", "class3")


class HitsPerClass(Metric):
    """The accuracy of each class, as a dict {"<class>": accuracy}: counted with index_add_,
    no host sync. Its compute is not annotated: found by computing an empty copy."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.add_state("hits", torch.zeros(num_classes), dist_reduce_fx="sum")
        self.add_state("seen", torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, logits: Tensor, label: Tensor) -> None:
        self.hits.index_add_(0, label, (logits.argmax(1) == label).float())
        self.seen.index_add_(0, label, torch.ones_like(label, dtype=torch.float))

    def compute(self):  # type: ignore[no-untyped-def]  # unannotated on purpose
        return {f"c{i}": h / s.clamp(min=1) for i, (h, s) in enumerate(zip(self.hits, self.seen))}


class PerClassClassifier(TinyClassifier):
    """The tiny classifier with each class's F1 (ClasswiseWrapper, validation and test) and
    each class's accuracy (also in training); checkpoints chosen by class1's F1."""

    best_metric = "f1/class1"
    train_metrics = ("accuracy", "hits")

    def build_metrics(self) -> MetricCollection:
        f1 = torchmetrics.F1Score(task="multiclass", num_classes=4, average=None)
        metrics = classification_metrics(4)
        metrics.add_metrics(
            {
                "f1": StructMetric(ClasswiseWrapper(f1, labels=list(CLASSES))),
                "hits": StructMetric(HitsPerClass(4)),
            }
        )
        return metrics


class ValScores(pl.Callback):
    """class1's validation F1 after each epoch's validation."""

    def __init__(self) -> None:
        self.scores: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.scores.append(float(trainer.callback_metrics["val/synthetic/f1/class1"]))


def test_which_metrics_return_several_values() -> None:
    f1 = torchmetrics.F1Score(task="multiclass", num_classes=4, average=None)
    assert returns_several(StructMetric(ClasswiseWrapper(f1)))  # by its annotation
    assert returns_several(HitsPerClass(4))  # unannotated: an empty copy computed
    assert not returns_several(StructMetric(torchmetrics.MeanAbsoluteError()))
    assert not returns_several(torchmetrics.R2Score())  # raises on no data: not a dict


def test_monitors_name_a_key_in_its_metrics_direction() -> None:
    data, model = SyntheticData(n_train=64, n_test=16, val_size=16), PerClassClassifier(4)
    known = known_monitors(model, data)
    assert next(iter(known.items())) == ("val/synthetic/f1/class1", "max")
    assert known["val/synthetic/f1/*"] == "max" and "val/synthetic/f1" not in known
    assert resolve_monitor(model, data) == ("val/synthetic/f1/class1", "max")
    assert resolve_monitor(model, data, "val/synthetic/hits/c2") == ("val/synthetic/hits/c2", "max")


def test_a_summary_prints_many_keys_as_one_line() -> None:
    metrics = {f"test/load/mae/h{h:02d}": float(h) for h in range(1, 25)}
    metrics |= {"test/load/mae_all": 12.5, "test/tags/f1/a": 0.5, "test/tags/f1/b": 0.75}
    lines = summary_lines(dict(sorted(metrics.items())))
    assert len(lines) == 4
    grouped = next(line for line in lines if "mae/*" in line).split()
    assert grouped[:3] == ["test/load/mae/*", "12.5000", "(mean"]
    assert "1.0000 at h01" in " ".join(grouped) and "24.0000 at h24" in " ".join(grouped)
    assert any(line.split() == ["test/tags/f1/b", "0.7500"] for line in lines)


def test_each_key_is_logged_monitored_and_equals_sklearn(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = SyntheticData(n_train=96, n_test=48, val_size=32, batch_size=16)
    # SGD: Adam's step count is a host tensor read with .item() (see test_host_syncs)
    model = PerClassClassifier(4, width=8, optimizer=lambda p: torch.optim.SGD(p, lr=0.03))
    scores, window = ValScores(), StepWindow()
    monitor, mode = resolve_monitor(model, data)
    best = pl.callbacks.ModelCheckpoint(tmp_path, monitor=monitor, mode=mode)
    trainer = pl.Trainer(
        max_epochs=3, callbacks=[window, scores, best], default_root_dir=tmp_path,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=4,
    )  # fmt: skip
    calls: list[tuple[int, str]] = []
    with host_syncs(calls, lambda: window.step):
        trainer.fit(model, datamodule=data)
    # no training step but those that log syncs: the dicts are computed at the epoch's end
    quiet = quiet_steps(trainer.global_step, window, 4)
    assert len(quiet) >= 6 and not [c for c in calls if c[0] in quiet], calls
    # the best checkpoint was chosen by one key
    assert len(scores.scores) == 3 and best.best_model_score is not None
    assert float(best.best_model_score) == pytest.approx(max(scores.scores))
    logged = trainer.callback_metrics
    assert {f"train/synthetic/hits/c{i}" for i in range(4)} <= set(logged)
    assert not any(k.startswith("train/synthetic/f1") for k in logged)  # not a train metric

    trainer.test(model, datamodule=data, verbose=False)
    logged = trainer.callback_metrics
    model.eval()
    with torch.no_grad():
        batches = [model(b) for b in data.test_dataloader()]
        labels = torch.cat([b.label for b in data.test_dataloader()])
    pred = torch.cat([p.logits for p in batches]).argmax(1)
    expected = f1_score(labels.numpy(), pred.numpy(), average=None, labels=range(4))
    for i, name in enumerate(CLASSES):
        assert float(logged[f"test/synthetic/f1/{name}"]) == pytest.approx(expected[i], abs=1e-6)
        hits = (pred[labels == i] == i).float().mean()
        assert float(logged[f"test/synthetic/hits/c{i}"]) == pytest.approx(float(hits), abs=1e-6)
    assert expected.min() < expected.max()  # the classes differ: the keys are not mixed up
    assert float(logged["test/synthetic/accuracy"]) == pytest.approx(
        float((pred == labels).float().mean())
    )


class EightClassF1(TinyClassifier):
    """Each class's F1 (ClasswiseWrapper without labels: keys 0 to 7); best by class 3's."""

    best_metric = "f1/3"

    def build_metrics(self) -> MetricCollection:
        f1 = torchmetrics.F1Score(task="multiclass", num_classes=self.num_classes, average=None)
        metrics = classification_metrics(self.num_classes)
        metrics.add_metrics({"f1": StructMetric(ClasswiseWrapper(f1))})
        return metrics


@pytest.mark.slow
def test_a_run_keeps_every_key_and_prints_them_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line: the best checkpoint by one key, results.json with every key,
    the closing summary with the eight as one line."""
    from litforge import testing
    from litforge.run.project import Project
    from litforge.testing.images import CONFIG

    main = Project("eight", EightClassF1, SyntheticData, CONFIG).main
    args = ["--data.n_classes=8", "--data.n_train=256", "--trainer.max_epochs=2"]
    cli = testing.train(main, tmp_path, "fit", "--trainer.callbacks=[]", *args)
    results = json.loads((cli.run_dir / "results.json").read_text())
    keys = {f"test/synthetic/f1/{i}" for i in range(8)}
    assert keys <= results.keys() and results["monitor"] == "val/synthetic/f1/3"
    assert "test/synthetic/f1" not in results
    f1 = [results[f"test/synthetic/f1/{i}"] for i in range(8)]
    summary = capsys.readouterr().out.split("=" * 72)[-2]
    (line,) = [x for x in summary.splitlines() if "test/synthetic/f1/" in x]
    assert line.split()[:2] == ["test/synthetic/f1/*", f"{sum(f1) / 8:.4f}"]
    assert f"{min(f1):.4f} at " in line and f"{max(f1):.4f} at " in line
