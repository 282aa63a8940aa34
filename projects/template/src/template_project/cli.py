"""The command line: ``python -m template_project fit|validate|test|predict [--config x.yaml]``."""

from pathlib import Path

from litforge import LitforgeCLI, cli_main
from template_project.data import ShapesData
from template_project.model import ShapeModel

CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def main(args: list[str] | None = None) -> LitforgeCLI:
    # Real task: your model and data classes; runs go to runs/<project>/<time>-<id>/.
    return cli_main(ShapeModel, ShapesData, project="template", default_config=CONFIG, args=args)
