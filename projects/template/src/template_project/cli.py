"""The command line: ``python -m template_project fit|validate|test|predict [--config x.yaml]``,
and ``runs``, ``sweep``, ``repeat``, ``prepare``, ``export``, ``serve`` (``--help`` lists them);
``main(["fit", ...])`` runs the same from Python (tests, notebooks)."""

from pathlib import Path

from litforge import Project
from template_project.data import ShapesData
from template_project.model import ShapeModel

# Real task: your model and data classes; runs go to runs/<name>/<time>-<id>/.
project = Project(
    "template", ShapeModel, ShapesData, Path(__file__).parent / "configs" / "default.yaml"
)
main = project.main
