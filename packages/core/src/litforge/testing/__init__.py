"""The test kit every project reuses, and a tiny synthetic task to test core itself.

Kit (each returns what it checked, so a test can assert more):
    data_args(Data, folder)       a tiny sample in the data module's own format, written by its
                                  ``write_test_data``, as --data.* arguments: no data set needed
    smoke(main, tmp)              fit with fast_dev_run through the project's CLI
    overfit(model, example)       the loss of one batch falls well below its start
    train(main, tmp, *args)       a short real run; returns the CLI (trainer, model, run_dir)
    media_files(run_dir)          every PNG the diagnostics wrote
    rerun_saved_config(main, ...) the saved config.yaml runs again as it is
    write_image_folder(root)      a tiny <split>/<class>/*.png folder (CIFAR-10's layout; JPEGs
                                  of mixed sizes with ``sizes``, ``suffix``)
    SlowDown(after, seconds)      a callback: every step from ``after`` on takes longer (a
                                  machine slowing down, for time-budget tests)

Tiny synthetic tasks, each runnable as ``python -m litforge.testing.<task> fit ...`` (for DDP
tests in a subprocess; ``python -m litforge.testing`` is the image task):
    images       image classification (8 x 8 RGB, 4 classes): ImageDataModule + Classifier
    regression   rows of float features -> one float: ArrayDataModule + Regressor
    sequence     token sequences -> a class: ArrayDataModule + Classifier, text decoded in tables
    denoise      noisy images -> the clean ones (image-to-image regression, its own structs):
                 the Regression diagnostic judges each image whole
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from litforge.run.cli import LitforgeCLI
from litforge.tasks.model import BaseModel

Main = Callable[[list[str]], LitforgeCLI]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


# ---------------------------------------------------------------------- the kit
def data_args(datamodule_class: Any, folder: Path) -> list[str]:
    """``--data.<key>=<value>`` for what ``datamodule_class.write_test_data(folder)`` wrote: a
    tiny sample in the module's own input format (none for data made in memory). Pass them to
    ``smoke`` / ``train`` so that a project's tests need no data set."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write = getattr(datamodule_class, "write_test_data", None)
    values = write(folder) if callable(write) else {}
    return [
        f"--data.{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in values.items()
    ]


def train(main: Main, tmp: Path, *args: str, loggers: str = "[csv]") -> LitforgeCLI:
    """Runs ``fit`` (or the subcommand in args[0]) with its run folder under ``tmp``."""
    args_list = list(args) or ["fit"]
    sub, rest = args_list[0], args_list[1:]
    return main([sub, f"--run.root={tmp}", f"--run.loggers={loggers}", *QUIET, *rest])


def smoke(main: Main, tmp: Path, *args: str) -> LitforgeCLI:
    """One batch of train, val and test through the project's CLI."""
    cli = train(main, tmp, "fit", "--trainer.fast_dev_run=true", *args)
    assert cli.trainer.state.finished, cli.trainer.state
    assert cli.trainer.global_step == 1, cli.trainer.global_step
    return cli


def overfit(
    model: BaseModel, example: Any, steps: int = 40, ratio: float = 0.3
) -> tuple[float, float]:
    """Trains on one batch with the model's own optimizer (``configure_optimizers``; with
    BaseModel's ``lr_schedule``, at the schedule's peak rate, not its first); the loss must end
    below ``ratio`` x its start. Returns (first loss, last loss)."""
    config = model.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config
    built_in = type(model).configure_optimizers is BaseModel.configure_optimizers
    if built_in and getattr(model, "lr_schedule", "constant") != "constant":
        for group in optimizer.param_groups:  # onecycle starts at 1/25 of the peak
            group["lr"] = group.get("initial_lr", group["lr"])
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.compute_loss(example, model(example)).total
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < ratio * losses[0], (
        f"did not overfit one batch: {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    return losses[0], losses[-1]


def media_files(run_dir: Path) -> dict[str, list[Path]]:
    """PNG files under <run dir>/media, by key (the folder path below media/)."""
    media = Path(run_dir) / "media"
    found: dict[str, list[Path]] = {}
    for png in sorted(media.rglob("*.png")):
        found.setdefault(str(png.parent.relative_to(media)), []).append(png)
    return found


def rerun_saved_config(main: Main, run_dir: Path, tmp: Path, *args: str) -> LitforgeCLI:
    """Runs fit again from ``<run dir>/config.yaml`` into a new folder (fast_dev_run)."""
    config = Path(run_dir) / "config.yaml"
    assert config.is_file(), f"no saved config at {config}"
    return main(
        [
            "fit",
            f"--config={config}",
            f"--run.dir={tmp / 'rerun'}",
            "--run.loggers=[csv]",
            "--trainer.fast_dev_run=true",
            *args,
        ]
    )


class SlowDown(pl.Callback):
    """From step ``after`` on, every training step takes ``seconds`` longer: the machine got
    slower (a time budget's guard must notice)."""

    def __init__(self, after: int, seconds: float) -> None:
        self.after, self.seconds = after, seconds

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.after:
            import time

            time.sleep(self.seconds)


# The image task is the default one: ``testing.main`` runs it (``testing.project`` is its Project).
from litforge.testing.folders import write_image_folder  # noqa: E402
from litforge.testing.images import (  # noqa: E402
    SyntheticData,
    TinyClassifier,
    main,
    project,
    synthetic_images,
)

__all__ = [
    "SyntheticData",
    "TinyClassifier",
    "data_args",
    "main",
    "media_files",
    "overfit",
    "project",
    "rerun_saved_config",
    "smoke",
    "synthetic_images",
    "train",
    "write_image_folder",
]
