"""What ``python -m <project>`` runs: ``run(main)``.

It hands ``runs`` (a table of the project's runs, ``litforge.run.runs``), ``sweep`` and ``repeat``
(many runs, ``litforge.experiments``) to their modules and everything else to the project's
``main`` (a LitforgeCLI); a LitforgeError is printed as one line, without a traceback.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import Any

from litforge.errors import LitforgeError, one_line
from litforge.experiments.child import PRUNED_EXIT, TrialPruned, die_with_parent
from litforge.run.runs import main as runs_main

DESCRIBE: ContextVar[bool] = ContextVar("litforge_describe", default=False)


class Described(Exception):
    def __init__(self, project: str) -> None:
        self.project = project


def project_of(main: Any) -> str:
    """The project name a project's ``main`` gives ``cli_main``; nothing else runs."""
    token = DESCRIBE.set(True)
    try:
        main()
    except Described as described:
        return described.project
    finally:
        DESCRIBE.reset(token)
    raise LitforgeError(f"{main!r} did not call litforge.run.cli.cli_main")


def _main_module() -> str | None:
    """The package run by ``python -m``, for the usage lines."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.removesuffix(".__main__") if spec is not None else None


def run(main: Any) -> None:
    """Runs a project's ``main()`` as a command: a LitforgeError (bad data, a non-finite loss,
    ...) is printed as one clear message, without a traceback, and exits with status 1."""
    if sys.argv[1:2] == ["runs"]:  # a table of the project's runs: litforge.run.runs
        raise SystemExit(runs_main(sys.argv[2:], project_of(main), _main_module()))
    die_with_parent()  # the child of a sweep or seed group ends with its launcher
    try:
        if sys.argv[1:2] in (["sweep"], ["repeat"]):  # many runs: litforge.experiments
            from litforge.experiments.command import experiment

            raise SystemExit(experiment(main, sys.argv[1:]))
        main()
    except LitforgeError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(1) from None
    except TrialPruned as pruned:  # a sweep's trial stopped by its pruner: not a failure
        print(f"pruned: {pruned}", file=sys.stderr)
        raise SystemExit(PRUNED_EXIT) from None
