"""Debug presets (``--run.debug``, ``litforge.run.debug``): each sets what it says on the Trainer, and
a profiler writes its report into the run folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from litforge import testing
from litforge.data import DeviceLoader
from litforge.run.cli import LitforgeCLI, cli_main
from litforge.run.debug import PRESETS
from litforge.testing.images import CONFIG, SyntheticData, TinyClassifier


def built(tmp_path: Path, *args: str) -> LitforgeCLI:
    """The synthetic task's CLI with the trainer built and nothing run (``run=False``)."""
    return cli_main(
        TinyClassifier,
        SyntheticData,
        project="synthetic",
        default_config=CONFIG,
        args=[f"--run.root={tmp_path}", "--run.loggers=[csv]", *testing.QUIET, *args],
        run=False,
    )


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("fast", {"fast_dev_run": 1, "max_epochs": 1, "limit_train_batches": 1}),
        (
            "overfit",
            {"overfit_batches": 2, "limit_train_batches": 2, "limit_val_batches": 2},
        ),
        (
            "limit",
            {
                "limit_train_batches": 4,
                "limit_val_batches": 2,
                "limit_test_batches": 2,
                "max_epochs": 2,
            },
        ),
    ],
)
def test_preset_sets_the_trainer(
    preset: str, expected: dict[str, object], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        cli = built(tmp_path, f"--run.debug={preset}")
    trainer = cli.trainer
    for key, value in {**PRESETS[preset], **expected}.items():
        assert getattr(trainer, key) == value, (key, getattr(trainer, key), value)
    assert f"debug preset {preset}: trainer." in caplog.text  # it says what it set
    # what the preset set is in the run's config too (the saved config.yaml reruns it)
    assert all(cli.config.trainer[key] == value for key, value in PRESETS[preset].items())


def test_without_a_preset_nothing_changes(tmp_path: Path) -> None:
    trainer = built(tmp_path).trainer
    assert trainer.fast_dev_run is False and trainer.overfit_batches == 0
    assert trainer.limit_train_batches == 1.0 and trainer.max_epochs == 3
    assert type(trainer.profiler).__name__ == "PassThroughProfiler"


def test_overfit_trains_on_the_same_batches_every_epoch(tmp_path: Path) -> None:
    """Lightning turns a DataLoader's shuffling off for overfit_batches; the device loader does
    the same, so the 2 batches are the same ones in every epoch."""
    for debug, shuffled in ((["--run.debug=overfit"], False), ([], True)):
        cli = built(tmp_path, *debug)
        cli.datamodule.trainer = cli.trainer
        loader = cli.datamodule.train_dataloader()
        assert isinstance(loader, DeviceLoader) and loader.shuffle is shuffled


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "profiler", "reported"),
    [
        ("profile-simple", "SimpleProfiler", "training_step"),  # time per hook
        ("profile-advanced", "AdvancedProfiler", "training_step"),  # cProfile per hook
        ("profile-torch", "PyTorchProfiler", "aten::"),  # torch operators
    ],
)
def test_profiler_writes_its_report_into_the_run_folder(
    preset: str, profiler: str, reported: str, tmp_path: Path
) -> None:
    cli = testing.train(
        testing.main,
        tmp_path,
        "fit",
        f"--run.debug={preset}",
        "--trainer.callbacks=[]",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
    )
    assert type(cli.trainer.profiler).__name__ == profiler
    report = cli.run_dir / "profiler" / "fit-profile.txt"
    assert report.is_file(), sorted(p.name for p in cli.run_dir.rglob("*"))
    text = report.read_text()
    assert text.startswith("FIT Profiler Report") and len(text) > 500
    assert reported in text
    assert (cli.run_dir / "profiler" / "test-profile.txt").is_file()  # the test after fit
    if preset == "profile-torch":
        assert list((cli.run_dir / "profiler").glob("fit-profile*.pt.trace.json"))
