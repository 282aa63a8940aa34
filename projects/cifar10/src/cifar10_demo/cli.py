"""The CIFAR-10 demo's command line: ``python -m cifar10_demo fit|validate|test|predict``.

``configs/default.yaml`` is the GPU recipe (airbench94's: 94% on an A100 in seconds). Without a
GPU, ``configs/muon.yaml`` (airbench94_muon's optimizer: Muon for the conv filters, more
accuracy per epoch) and ``configs/cpu.yaml`` are applied on top of it: a 600 s time budget, the
precision measured (``run.precision: auto``), and ``size: auto``, which times the recipe's
networks (``SIZES``) on this machine and takes the largest one that still gets the epochs it
needs within the budget. Any ``--config`` or flag given on the command line still overrides
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pytorch_lightning.cli import LightningArgumentParser
from pytorch_lightning.utilities import rank_zero_info

from cifar10_demo.data import Cifar10Data
from cifar10_demo.model import Cifar10Model, Net
from litforge import (
    ClassificationExample,
    Classifier,
    LitforgeCLI,
    Project,
    choose_precision,
    time_train_steps,
)

CONFIGS = Path(__file__).parent / "configs"
DEFAULT = CONFIGS / "default.yaml"
MUON = CONFIGS / "muon.yaml"
SGD = CONFIGS / "sgd.yaml"  # undoes MUON: --config with its path
CPU = CONFIGS / "cpu.yaml"

# The networks the recipe picks from, smallest first: (widths of the three blocks, batch size,
# the fewest epochs worth training it for). A larger network learns more per epoch but costs
# more per image; below its epoch count a smaller one, trained longer, does better. On a CPU the
# first block (at full resolution) costs most: widening the last block from 128 to 256 costs
# 1% of the speed at batch 256 and 12% at 512 (bench e). Muon (configs/muon.yaml) learns most
# of what it will in few epochs: measured on a Zen 4 with a 600 s budget, full at 4.8 epochs
# 89.8% and small at 8.9 epochs 89.7% (with SGD, small at 9 epochs 89.5 to 89.8%, tiny at 26
# epochs 88.7%, and the full network needed ~10 epochs to gain on small).
SIZES: dict[str, tuple[tuple[int, int, int], int, float]] = {
    "tiny": ((32, 64, 128), 256, 0.0),
    "small": ((64, 128, 256), 512, 5.0),
    "full": ((64, 256, 256), 512, 5.0),
}
TTA_VIEWS = 6  # the test's forward passes per image (flip_translate)
STARTUP_S = 20.0  # reading the data and the first measurements


def default_configs() -> list[str | Path]:
    return [DEFAULT] if torch.cuda.is_available() else [DEFAULT, MUON, CPU]


class _Timed(Classifier):
    """A network of one size, for timing only."""

    def __init__(self, widths: tuple[int, int, int]) -> None:
        super().__init__(10)
        self.net = Net(widths, 24, 0.4, 10, 1 / 9).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, example: ClassificationExample) -> Any:  # type: ignore[override]
        from litforge import ClassificationPrediction

        x = example.image.contiguous(memory_format=torch.channels_last)
        return ClassificationPrediction(self.net(x))


def random_batch(n: int) -> ClassificationExample:
    g = torch.Generator().manual_seed(0)
    return ClassificationExample(
        torch.arange(n), image=torch.randn(n, 3, 32, 32, generator=g), label=torch.arange(n) % 10
    )


def choose_size(budget_s: float, n_train: int, precision: str) -> tuple[str, str]:
    """(size, why): the largest network of SIZES that trains its epochs within the budget."""
    chosen, lines = "tiny", []
    for name, (widths, batch, min_epochs) in SIZES.items():
        step = time_train_steps(
            # the least disturbed of 2 steps after a warm-up: a single step, just after the
            # first of a shape, measured the middle network 1.5x too slow once
            _Timed(widths),
            random_batch(batch),
            torch.device("cpu"),
            precision,
            steps=2,
        )
        epoch_s = n_train / batch * step
        test_s = 10_000 / batch * step / 3 * TTA_VIEWS  # a forward is about a third of a step
        epochs = (budget_s - STARTUP_S - test_s) / epoch_s
        lines.append(f"{name} {widths}: {epoch_s:.0f} s an epoch, {epochs:.1f} epochs fit")
        if epochs >= min_epochs:
            chosen = name
    return chosen, "; ".join(lines)


class Cifar10CLI(LitforgeCLI):
    """LitforgeCLI plus ``--size`` (auto, tiny, small, full): the recipe's network and batch."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument(
            "--size",
            type=Literal["auto", "tiny", "small", "full"] | None,
            default=None,
            help="the network and batch size from SIZES; auto: timed on this machine against "
            "run.time_budget (CPU only; null: model.widths and data.batch_size as given)",
        )

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand != "fit" or not config.get("size") or config.get("ckpt_path"):
            return
        size = config.size
        if size == "auto":
            if config.run.precision == "auto":  # measured once here, for every size alike
                # on the middle network: on the smallest, the two are closer and a disturbed
                # measurement could pick the wrong one for the larger networks
                precision, why = choose_precision(
                    _Timed(SIZES["small"][0]), random_batch(256), torch.device("cpu")
                )
                config.trainer.precision, config.run.precision = precision, None
                rank_zero_info(f"precision: {precision} ({why})")
            n_train = int(config.data.limit or 50_000) - int(config.data.val_size)
            budget = config.run.time_budget or 600.0
            size, why = choose_size(budget, n_train, config.trainer.precision)
            rank_zero_info(f"size: {size} ({why})")
        widths, batch, _ = SIZES[size]
        config.size = size  # the saved config says which
        config.model.widths, config.data.batch_size = list(widths), batch
        if "batch_size" in config.model:  # linked from data.batch_size when parsed
            config.model.batch_size = batch


# default_configs is called when a command starts: the recipe's files for this machine
project = Project("cifar10", Cifar10Model, Cifar10Data, default_configs, cli_class=Cifar10CLI)
main = project.main  # main(args, default_config=[...]): other recipe files
