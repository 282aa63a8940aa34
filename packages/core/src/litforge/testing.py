"""The test kit every project reuses, and a tiny synthetic task to test core itself.

Kit (each returns what it checked, so a test can assert more):
    smoke(main, tmp)              fit with fast_dev_run through the project's CLI
    overfit(model, example)       the loss of one batch falls well below its start
    train(main, tmp, *args)       a short real run; returns the CLI (trainer, model, run_dir)
    media_files(run_dir)          every PNG the diagnostics wrote
    rerun_saved_config(main, ...) the saved config.yaml runs again as it is

``python -m litforge.testing fit ...`` runs the synthetic task (for DDP tests in a subprocess).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from litforge.cli import LitforgeCLI, cli_main
from litforge.data import ImageArrays, ImageDataModule
from litforge.metrics import classification_metrics
from litforge.model import BaseModel
from litforge.structs import ClassificationExample, ClassificationPrediction, Loss

Main = Callable[[list[str]], LitforgeCLI]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


# ---------------------------------------------------------------------- the kit
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
    """Trains on one batch with the model's own optimizer; the loss must end below
    ``ratio`` x its start. Returns (first loss, last loss)."""
    config = model.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.compute_loss(example, model(example)).total
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
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


# ---------------------------------------------------------------------- a tiny task
def synthetic_images(n: int, num_classes: int = 4, size: int = 8, seed: int = 0) -> ImageArrays:
    """Noisy images whose class sets the mean colour and a bright quadrant: learnable, not trivial."""
    labels = torch.arange(n) % num_classes
    palette = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(1234))
    palette = palette * 160 + 40
    g = torch.Generator().manual_seed(seed)
    images = palette[labels] + torch.randn(n, 3, size, size, generator=g) * 40
    half = size // 2
    for c in range(num_classes):
        r, q = divmod(c % 4, 2)
        images[labels == c, :, r * half : (r + 1) * half, q * half : (q + 1) * half] += 50
    return ImageArrays(
        images.clamp(0, 255).to(torch.uint8), labels, tuple(f"class{c}" for c in range(num_classes))
    )


class SyntheticData(ImageDataModule):
    """Synthetic images in memory: ``n_train`` / ``n_test`` of ``num_classes`` classes."""

    name = "synthetic"

    def __init__(
        self, n_train: int = 256, n_test: int = 64, num_classes: int = 4, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.num_classes = n_train, n_test, num_classes

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        return (
            synthetic_images(self.n_train, self.num_classes, seed=0),
            synthetic_images(self.n_test, self.num_classes, seed=1),
        )


class TinyClassifier(BaseModel):
    """A small conv net on 8 x 8 images."""

    def __init__(self, num_classes: int = 4, width: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        return ClassificationPrediction(logits=self.net(example.image))

    def compute_loss(
        self, example: ClassificationExample, prediction: ClassificationPrediction
    ) -> Loss:  # type: ignore[override]
        ce = F.cross_entropy(prediction.logits, example.label)
        return Loss(total=ce, terms={"cross_entropy": ce})

    def build_metrics(self) -> Any:
        return classification_metrics(self.num_classes)


CONFIG = Path(__file__).with_name("testing.yaml")


def main(args: Sequence[str] | None = None) -> LitforgeCLI:
    return cli_main(
        TinyClassifier,
        SyntheticData,
        project="synthetic",
        default_config=CONFIG,
        args=list(args) if args is not None else None,
    )


if __name__ == "__main__":
    main()
