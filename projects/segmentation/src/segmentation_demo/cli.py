"""The command line: ``python -m segmentation_demo fit|validate|test|predict [--config x.yaml]``."""

from pathlib import Path

from litforge import LitforgeCLI, cli_main
from segmentation_demo.data import ShapesMasks
from segmentation_demo.model import SegModel

CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def main(args: list[str] | None = None) -> LitforgeCLI:
    return cli_main(SegModel, ShapesMasks, project="segmentation", default_config=CONFIG, args=args)
