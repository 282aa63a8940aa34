"""When the diagnostics draw, how many files they keep, and which model their pictures name:
real fits of the test kit's regression task (rows of features), with TensorBoard beside the
files to show that the loggers keep every drawing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from litforge import Extremes, Regression, Uncertainty, testing
from litforge.diagnostics.base import _LEDGERS, DRAW_PRIOR_S, _Ledger
from litforge.testing import regression

EPOCHS = 5


def callbacks(*items: dict[str, Any]) -> str:
    return "--trainer.callbacks=" + json.dumps([*items, {"class_path": "litforge.StopOnNonFinite"}])


def steps_in(folder: Path, suffix: str = ".png") -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in folder.glob(f"*{suffix}"))


def tensorboard_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    return sorted(e.step for e in acc.Images(tag))


@pytest.fixture(scope="module")
def cadence_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Five epochs: Regression every 2 epochs keeping 2 drawings, Extremes only at the end; the
    best checkpoint chosen by the highest validation loss, so that the test scores an early
    checkpoint and not the last weights."""
    return testing.train(
        regression.main,
        tmp_path_factory.mktemp("cadence"),
        "fit",
        f"--trainer.max_epochs={EPOCHS}",
        callbacks(
            {"class_path": "litforge.Regression", "init_args": {"val_every": 2, "keep_files": 2}},
            {"class_path": "litforge.Extremes", "init_args": {"k": 3, "val_every": "end"}},
        ),
        "--run.monitor=val/rows/loss/total",
        "--run.monitor_mode=max",
        loggers="[csv,tensorboard]",
    )


def test_validation_pictures_at_the_cadence_set(cadence_run: Any) -> None:
    trainer = cadence_run.trainer
    per_epoch = trainer.global_step // EPOCHS
    last = EPOCHS * per_epoch
    regression_cb = next(c for c in trainer.callbacks if isinstance(c, Regression))
    extremes = next(c for c in trainer.callbacks if isinstance(c, Extremes))
    val = [(step) for stage, _, step in regression_cb.drawn if stage == "val"]
    assert val == [2 * per_epoch, 4 * per_epoch, last]  # epochs 2 and 4, and the last (5)
    assert [s for stage, _, s in extremes.drawn if stage == "val"] == [last]  # the end only
    media = cadence_run.run_dir / "media" / "val" / "rows"
    # the run folder keeps the last 2 drawings; TensorBoard keeps all 3
    assert steps_in(media / "regression") == [4 * per_epoch, last]
    assert steps_in(media / "regression", ".json") == [4 * per_epoch, last]
    assert tensorboard_steps(cadence_run.run_dir, "val/rows/regression") == val
    assert steps_in(media / "extremes" / "highest_error") == [last]
    assert steps_in(media / "extremes" / "highest_error", ".csv") == [last]


def test_test_pictures_are_named_by_the_checkpoint_scored(cadence_run: Any, tmp_path: Path) -> None:
    results = json.loads((cadence_run.run_dir / "results.json").read_text())
    trainer = cadence_run.trainer
    assert results["checkpoint"].startswith("checkpoints/best-")
    assert results["step"] < trainer.global_step  # an early checkpoint, not the last weights
    model = {
        "stage": "test",
        "epoch": results["epoch"],
        "step": results["step"],
        "checkpoint": results["checkpoint"],
    }
    media = cadence_run.run_dir / "media" / "test" / "rows"
    for what in ("regression", "extremes/highest_error", "extremes/lowest_error"):
        assert steps_in(media / what) == [results["step"]], what
        facts = json.loads((media / what / f"{results['step']}.json").read_text())
        assert facts["model"] == model, what
    # a test on its own, of a checkpoint given: named by that checkpoint, not by step 0
    ckpt = cadence_run.run_dir / results["checkpoint"]
    tested = testing.train(regression.main, tmp_path, "test", f"--ckpt_path={ckpt}")
    assert tested.trainer.global_step == 0
    again = json.loads((tested.run_dir / "results.json").read_text())
    assert (again["epoch"], again["step"]) == (results["epoch"], results["step"])
    folder = tested.run_dir / "media" / "test" / "rows" / "regression"
    assert steps_in(folder) == [results["step"]]
    facts = json.loads((folder / f"{results['step']}.json").read_text())
    assert facts["model"]["checkpoint"] == str(ckpt)
    assert (facts["model"]["epoch"], facts["model"]["step"]) == (results["epoch"], results["step"])


def test_auto_draws_no_validation_picture_beyond_its_share(tmp_path: Path) -> None:
    """'auto' with a share no drawing fits in: numbers every epoch, no validation picture; the
    test pictures are drawn all the same."""
    cli = testing.train(
        regression.main,
        tmp_path,
        "fit",
        "--trainer.max_epochs=2",
        callbacks({"class_path": "litforge.Regression", "init_args": {"max_time_share": 1e-6}}),
    )
    regression_cb = next(c for c in cli.trainer.callbacks if isinstance(c, Regression))
    assert [stage for stage, _, _ in regression_cb.drawn] == ["test"]
    assert not (cli.run_dir / "media" / "val").exists()
    header = (cli.run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val/rows/residual_std" in header  # the numbers are logged at every validation


def test_auto_rule_keeps_the_diagnostics_within_their_share() -> None:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.state.fn = TrainerFn.FITTING
    callback = Uncertainty()  # val_every: auto, max_time_share: 0.05
    # 100 s of fit so far, 4 s of it in diagnostics: 1 s more would pass 5%, 0.5 s would not
    _LEDGERS[trainer] = _Ledger(start=time.perf_counter() - 100, spent=4.0)
    try:
        assert callback._draw_cost is None and DRAW_PRIOR_S <= 1.0
        assert callback._due(trainer, "val")  # before any drawing was timed: the prior
        callback._draw_cost = 0.5
        assert callback._due(trainer, "val")
        callback._draw_cost = 1.5
        assert not callback._due(trainer, "val")
        assert not callback._due(trainer, "val", last=True)  # the end too stays in the share
        assert callback._due(trainer, "test")  # test pictures: every time
        assert Uncertainty(val_every="end")._due(trainer, "val", last=True)
        assert not Uncertainty(val_every="end")._due(trainer, "val")
    finally:
        _LEDGERS.pop(trainer, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_every": 0}, "val_every"),
        ({"val_every": "sometimes"}, "val_every"),
        ({"val_every_seconds": 0}, "val_every_seconds"),
        ({"max_time_share": 0}, "max_time_share"),
        ({"keep_files": 0}, "keep_files"),
    ],
)
def test_bad_cadence_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Regression(**kwargs)
