"""What core does every training step, kept cheap (docs/performance.md, "Host time per step"):
the training loss handed to Lightning's logging only when a logger writes, the same values as
logging it every step; the progress bar redrawn at most twice a second; the per-step hooks no
callback implements left out of Lightning's dispatch; the training metrics' inputs kept once."""

from __future__ import annotations

import csv
import importlib
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torchmetrics
from pytorch_lightning.profilers import Profiler

from litforge import testing
from litforge.run.progress import PacedProgressBar
from litforge.tasks.dispatch import PER_STEP_HOOKS, skip_unused_hooks
from litforge.tasks.metrics import StructMetric

LOG_EVERY = 4


class LossRecorder(pl.Callback):
    """Each training step's total loss and batch size, read from the step's output."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float, int]] = []  # (epoch, step, loss, batch size)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = float(outputs["loss"])
        self.rows.append((trainer.current_epoch, trainer.global_step - 1, loss, len(batch)))


@pytest.mark.slow
def test_the_training_loss_logs_the_values_of_logging_it_every_step(tmp_path: Path) -> None:
    """metrics.csv has each logging step's loss (``_step``) and each epoch's mean weighted by
    batch size (``_epoch``), as ``self.log(on_step=True, on_epoch=True)`` every step gave:
    checked against the step outputs recorded by a callback."""
    recorder = LossRecorder()
    cli = testing.main(
        [f"--run.dir={tmp_path / 'run'}", "--run.loggers=[csv]", *testing.QUIET,
         "--trainer.max_epochs=3", f"--trainer.log_every_n_steps={LOG_EVERY}",
         "--data.n_train=600", "--data.batch_size=40"],
        run=False,
    )  # fmt: skip
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    with open(next(Path(cli.trainer.log_dir or "").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    name = "train/synthetic/loss/total"
    logged = {int(r["step"]): float(r[f"{name}_step"]) for r in rows if r.get(f"{name}_step")}
    expected = {s: v for _, s, v, _ in recorder.rows if (s + 1) % LOG_EVERY == 0}
    assert sorted(logged) == sorted(expected) and len(logged) >= 3
    for step, value in expected.items():
        assert logged[step] == pytest.approx(value, rel=1e-6)
    epochs = {int(r["epoch"]): float(r[f"{name}_epoch"]) for r in rows if r.get(f"{name}_epoch")}
    assert sorted(epochs) == [0, 1, 2]
    for epoch, value in epochs.items():
        mine = [(v, n) for e, _, v, n in recorder.rows if e == epoch]
        mean = sum(v * n for v, n in mine) / sum(n for _, n in mine)
        assert value == pytest.approx(mean, rel=1e-5)
    # the callback metrics keep the epoch value under the plain name too (a monitor's key)
    assert float(cli.trainer.callback_metrics[name]) == pytest.approx(epochs[2], rel=1e-6)


def draws(bar: PacedProgressBar, step: int, total: int) -> bool:
    """Whether the bar redraws at ``step``: Lightning's rule (every ``refresh_rate``-th batch and
    the last), less the redraws the pacing leaves out."""
    lightning = step % bar.refresh_rate == 0 or step == total
    return lightning and not bar._skip(step, SimpleNamespace(total=total))


def test_the_progress_bar_redraws_every_n_steps_and_at_most_twice_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bar = PacedProgressBar(refresh_rate=10, min_interval_s=0.5)
    clock = [100.0]
    progress = importlib.import_module("litforge.run.progress")
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    drawn = []
    for step in range(1, 101):
        clock[0] += 0.01  # 10 ms steps: every 10th step is 0.1 s after the last
        if draws(bar, step, 100):
            drawn.append(step)
    # the first 10th step, then one every 0.5 s (50 steps), and the bar's last step
    assert drawn == [10, 60, 100]
    slow = PacedProgressBar(refresh_rate=10, min_interval_s=0.5)
    clock[0] = 0.0
    drawn = []
    for step in range(1, 31):
        clock[0] += 1.0  # slow steps: every 10th, as Lightning's own
        if draws(slow, step, 1000):
            drawn.append(step)
    assert drawn == [10, 20, 30]


class Hits(pl.Callback):
    """Each training step's correct predictions, from the step's output, per epoch."""

    def __init__(self) -> None:
        self.hits: dict[int, list[torch.Tensor]] = {}

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        right = outputs["prediction"].logits.argmax(-1) == batch.label
        self.hits.setdefault(trainer.current_epoch, []).append(right)


@pytest.mark.slow
def test_the_joined_training_metrics_count_every_step_with_the_progress_bar_on(
    tmp_path: Path,
) -> None:
    """The training accuracy joined over 5 steps at a time (steps per epoch not a multiple of
    it) is each epoch's accuracy over all its batches, counted by hand, also when the progress
    bar computes the epoch's metrics in its own epoch-end hook (before the model's)."""
    hits = Hits()
    cli = testing.main(
        [f"--run.dir={tmp_path / 'run'}", "--run.loggers=[csv]",
         "--trainer.enable_progress_bar=true", "--trainer.enable_model_summary=false",
         "--trainer.max_epochs=2", "--data.n_train=600", "--data.batch_size=40"],
        run=False,
    )  # fmt: skip
    cli.model.TRAIN_METRIC_EVERY = 5
    cli.trainer.callbacks.append(hits)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    with open(next(Path(cli.trainer.log_dir or "").rglob("metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/synthetic/accuracy")]
    assert len(rows) == 2 and len(hits.hits[0]) % 5 != 0
    for row in rows:
        by_hand = torch.cat(hits.hits[int(row["epoch"])]).float().mean()
        assert float(row["train/synthetic/accuracy"]) == pytest.approx(float(by_hand), abs=1e-6)


class Quiet(pl.Callback):
    """No per-step hook of its own; one epoch hook."""

    def __init__(self) -> None:
        self.epochs = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.epochs += 1


class Busy(pl.Callback):
    """Two per-step hooks of its own, counted."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.calls["on_train_batch_end"] += 1

    def on_before_backward(self, *args: Any) -> None:
        self.calls["on_before_backward"] += 1


class ActionNames(Profiler):
    """Counts the actions Lightning enters: ``[Callback]<name>.<hook>`` for each hook it calls
    on each callback."""

    def __init__(self) -> None:
        super().__init__()
        self.names: Counter[str] = Counter()

    def start(self, action_name: str) -> None:
        self.names[action_name] += 1

    def stop(self, action_name: str) -> None:
        pass

    def summary(self) -> str:
        return ""


def test_callbacks_are_called_only_for_the_per_step_hooks_they_implement() -> None:
    """A core model's fit leaves out of Lightning's per-step dispatch the hooks a callback
    inherits empty from ``Callback`` (``litforge.tasks.dispatch``): only the per-step hooks a
    callback implements are entered, each once a step; the others' epoch hooks still run. Also
    the check that Lightning still skips a hook set to None: without it this fit would fail."""
    cli = testing.main([*testing.QUIET, "--data.n_train=96", "--data.batch_size=16"], run=False)
    quiet, busy, names = Quiet(), Busy(), ActionNames()
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[quiet, busy], profiler=names, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(cli.model, datamodule=cli.datamodule)
    steps = trainer.global_step
    assert steps == 2 * trainer.num_training_batches > 2 and quiet.epochs == 2
    assert busy.calls == {"on_train_batch_end": steps, "on_before_backward": steps}
    entered = {
        name: count
        for name, count in names.names.items()
        if name.startswith("[Callback]") and name.rsplit(".", 1)[1] in PER_STEP_HOOKS
    }
    assert entered == {
        "[Callback]Busy.on_train_batch_end": steps,
        "[Callback]Busy.on_before_backward": steps,
    }
    assert names.names["[Callback]Quiet.on_train_epoch_end"] == 2
    assert quiet.on_train_batch_start is None and busy.on_train_batch_start is None
    assert skip_unused_hooks([busy]) == []  # once is enough; own hooks untouched


def test_the_joined_training_metrics_hold_each_step_once() -> None:
    """The classification metrics (three, reading the same logits and labels, and a fourth
    reading other scores with the same labels) keep each step's inputs once: after 20 steps of
    16 examples, joined and flushed, each metric has counted 320 examples, and the accuracy
    equals one counted by hand."""
    cli = testing.main([*testing.QUIET], run=False)
    model = cli.model
    metrics = model.build_metrics()
    # and one reading another prediction field with the same labels
    metrics.add_metrics(
        {"scores": StructMetric(torchmetrics.Accuracy(task="multiclass",
                                num_classes=model.num_classes), pred_field="scores")}
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    hits = []
    for _ in range(20):
        logits = torch.randn(16, model.num_classes, generator=generator)
        label = torch.randint(0, model.num_classes, (16,), generator=generator)
        hits.append(logits.argmax(1) == label)
        model._update_train_metrics(
            metrics, SimpleNamespace(label=label), SimpleNamespace(logits=logits, scores=logits)
        )
    model._flush_train_metrics()
    for name, metric in metrics.items():
        inner = metric.inner
        assert int(inner.tp.sum() + inner.fn.sum()) == 320, name
    by_hand = torch.cat(hits).float().mean()
    assert float(metrics["accuracy"].compute()) == pytest.approx(float(by_hand), abs=1e-6)
