"""``python -m <project> prepare [--data.* ...] [--config file.yaml]``: write the streamed chunks.

The same settings as ``fit`` (the project's default config, then ``--config`` files and flags);
only the data module is built, no run folder, model or trainer. Its ``prepare()`` writes the
chunks into the cache folder (``litforge.data.prepare``) with a progress bar, or does nothing
when they are up to date, and the command prints where they are. ``fit --data.stream=true``
with the same data settings then trains from them; it would write them itself on its first
start, but a large set is better prepared once, ahead (before a DDP or SLURM job: every rank
waits while one writes).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from litforge.errors import LitforgeError
from litforge.run.cli import LitforgeCLI, cli_main
from litforge.run.project import Project


class NotStreamedError(LitforgeError, TypeError):
    """``prepare`` for a project whose data module cannot stream."""


class _Done(Exception):
    def __init__(self, datamodule: Any, prepared: Any, seconds: float) -> None:
        self.datamodule, self.prepared, self.seconds = datamodule, prepared, seconds


def _prepare_cli(base: type[LitforgeCLI]) -> type[LitforgeCLI]:
    class PrepareCLI(base):  # type: ignore[valid-type, misc]
        """Parses ``fit``'s settings, builds the data module alone and writes its chunks,
        before anything else of a run exists (no run folder, model or trainer)."""

        def before_instantiate_classes(self) -> None:
            parser = self._parser(self.subcommand)
            config = self.config[self.subcommand].clone()
            group = parser.groups["data"]
            group.instantiate_class(group, config)  # type: ignore[attr-defined]
            datamodule = config.data
            if not callable(getattr(datamodule, "prepare", None)):
                raise NotStreamedError(
                    f"{type(datamodule).__name__} cannot stream: derive it from "
                    "litforge.StreamedImageDataModule or StreamedDataModule (data.stream then "
                    "switches between memory and chunks)"
                )
            start = time.perf_counter()
            prepared = datamodule.prepare(announce=False)
            raise _Done(datamodule, prepared, time.perf_counter() - start)

    return PrepareCLI


def prepare_command(project: Project, argv: Sequence[str], module: str | None = None) -> int:
    """Writes the chunks of ``project``'s data, its settings from ``argv`` (as ``fit``'s);
    prints the folder and how to train from it. Returns the exit status."""
    if any(a in ("-h", "--help") for a in argv):
        print(
            f"usage: python -m {module or project.name} prepare [--config FILE] [--data.KEY=VALUE ...]\n"
            "Writes the data set's chunks for --data.stream=true into the cache folder "
            "(--data.cache_dir), or does nothing if they are up to date. The settings are "
            f"fit's: python -m {module or project.name} fit --help lists them."
        )
        return 0
    # fit's parser reads the command line itself (given args beside a command line, LightningCLI
    # warns): for its time, the command line is fit's
    saved, sys.argv = sys.argv, [sys.argv[0], "fit", *argv]
    seed_log = logging.getLogger("lightning_fabric.utilities.seed")  # "Seed set to 0": no run
    level = seed_log.level
    seed_log.setLevel(logging.WARNING)
    try:
        cli_main(
            project.model_class,
            project.data_class,
            project=project.name,
            default_config=project.config_files(),
            cli_class=_prepare_cli(project.cli_class),
        )
    except _Done as done:
        prepared = done.prepared
        sizes = ", ".join(
            f"{split} {prepared.size(split)}"
            for split in ("train", "val", "test")
            if prepared.has_split(split)
        )
        what = "written" if prepared.written else "up to date, nothing to do"
        print(f"prepared: {prepared.folder} ({what}; {sizes} examples; {done.seconds:.1f} s)")
        flags = [a for a in argv if not a.startswith("--data.stream")]
        command = ["python -m", module or project.name, "fit --data.stream=true", *flags]
        print(f"train from it: {' '.join(command)}")
        return 0
    finally:
        sys.argv = saved
        seed_log.setLevel(level)
    raise LitforgeError("prepare: the command line ended before the data module was built")


def main(project: Project, module: str | None = None) -> int:
    """``prepare`` with the process's own arguments."""
    return prepare_command(project, sys.argv[2:], module)
