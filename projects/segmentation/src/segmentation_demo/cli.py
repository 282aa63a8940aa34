"""The command line: ``python -m segmentation_demo fit|validate|test|predict [--config x.yaml]``."""

from pathlib import Path

from litforge import Project
from segmentation_demo.data import ShapesMasks
from segmentation_demo.model import SegModel

project = Project(
    "segmentation", SegModel, ShapesMasks, Path(__file__).parent / "configs" / "default.yaml"
)
main = project.main
