"""What ``python -m <project>`` runs: ``run(project)``, ``project`` being the project's
``litforge.Project`` (its ``cli.py``).

It hands ``runs`` (a table of the project's runs, ``litforge.run.runs``), ``sweep`` and ``repeat``
(many runs, ``litforge.experiments``), ``prepare`` (the chunks of streamed data,
``litforge.run.prepare``), ``export`` (ONNX and torch.export files, ``litforge.run.export``) and
``serve`` (an HTTP server, ``litforge.run.serve``) to their modules and everything else to
``project.main`` (a LitforgeCLI); a LitforgeError is printed as one line, without a traceback.
"""

from __future__ import annotations

import sys

from litforge.errors import PRUNED_EXIT, LitforgeError, TrialPruned, one_line
from litforge.run.handoff import die_with_parent
from litforge.run.project import Project
from litforge.run.runs import main as runs_main
from litforge.run.safety import CTRL_C_EXIT


def _main_module() -> str | None:
    """The package run by ``python -m``, for the usage lines."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.removesuffix(".__main__") if spec is not None else None


def run(project: Project) -> None:
    """Runs a project as a command, its arguments from the command line: a LitforgeError (bad
    data, a non-finite loss, ...) is printed as one clear message, without a traceback, and
    exits with its ``exit_status`` (1; 2 for a bad setting); Ctrl-C exits with 130 wherever it
    lands (``litforge.run.safety``); a sweep's pruned trial exits with ``PRUNED_EXIT``."""
    if not isinstance(project, Project):
        raise TypeError(
            f"litforge.run takes the project's litforge.Project, got {type(project).__name__}: "
            "in cli.py, project = Project(name, ModelClass, DataClass, CONFIG)"
        )
    if sys.argv[1:2] == ["runs"]:  # a table of the project's runs: litforge.run.runs
        raise SystemExit(runs_main(sys.argv[2:], project.name, _main_module()))
    die_with_parent()  # the child of a sweep or seed group ends with its launcher
    try:
        if sys.argv[1:2] in (["sweep"], ["repeat"]):  # many runs: litforge.experiments
            from litforge.experiments.command import experiment

            raise SystemExit(experiment(project.main, project.name, sys.argv[1:]))
        if sys.argv[1:2] == ["prepare"]:  # the streamed data's chunks: litforge.run.prepare
            from litforge.run.prepare import prepare_command

            raise SystemExit(prepare_command(project, sys.argv[2:], _main_module()))
        if sys.argv[1:2] == ["export"]:  # ONNX / torch.export files: litforge.run.export
            from litforge.run.export import export_command

            raise SystemExit(export_command(project, sys.argv[2:], _main_module()))
        if sys.argv[1:2] == ["serve"]:  # an HTTP server on LitServe: litforge.run.serve
            from litforge.run.serve import serve_command

            raise SystemExit(serve_command(project, sys.argv[2:], _main_module()))
        project.main()
    except LitforgeError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(err.exit_status) from None
    except KeyboardInterrupt:  # Ctrl-C before or after the trainer's work (reading data, ...)
        print("interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(CTRL_C_EXIT) from None
    except TrialPruned as pruned:  # a sweep's trial stopped by its pruner: not a failure
        print(f"pruned: {pruned}", file=sys.stderr)
        raise SystemExit(PRUNED_EXIT) from None
