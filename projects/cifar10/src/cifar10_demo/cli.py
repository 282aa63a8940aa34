"""The CIFAR-10 demo's command line: ``python -m cifar10_demo fit|validate|test|predict``.

``configs/default.yaml`` is the GPU recipe (airbench94's: 94% on an A100 in seconds). Without a
GPU, ``configs/cpu.yaml`` is applied on top of it: a narrower network for fewer epochs in fp32,
sized to finish in about ten minutes on a 2-core CPU. Any ``--config`` or flag given on the
command line still overrides both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cifar10_demo.data import Cifar10Data
from cifar10_demo.model import Cifar10Model
from litforge.cli import LitforgeCLI, cli_main

CONFIGS = Path(__file__).parent / "configs"
DEFAULT = CONFIGS / "default.yaml"
CPU = CONFIGS / "cpu.yaml"


def default_configs() -> list[str | Path]:
    return [DEFAULT] if torch.cuda.is_available() else [DEFAULT, CPU]


def main(args: list[str] | None = None, **kwargs: Any) -> LitforgeCLI:
    return cli_main(
        Cifar10Model,
        Cifar10Data,
        project="cifar10",
        default_config=default_configs(),
        args=args,
        **kwargs,
    )
