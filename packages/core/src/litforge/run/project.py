"""``Project``: what a task project is to its command line, in one value its ``cli.py`` defines.

    project = Project("template", ShapeModel, ShapesData, CONFIG)
    main = project.main                      # main(["fit", ...]) in tests and notebooks

and its ``__main__.py`` runs ``litforge.run(project)``, which adds the ``runs``, ``sweep`` and
``repeat`` words (``litforge.command``); each reads the project's name from the value itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litforge.run.cli import LitforgeCLI, cli_main

ConfigFiles = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class Project:
    """A task project: ``name`` (its runs go to ``runs/<name>/``), the LightningModule and
    LightningDataModule classes the command line builds, ``default_config`` (a YAML file, a list
    applied in order, or a function that returns the list when a command starts: e.g. one list
    with a GPU, another without), and ``cli_class``, a LitforgeCLI subclass with the project's
    own options."""

    name: str
    model_class: type[Any]
    data_class: type[Any]
    default_config: ConfigFiles | Callable[[], ConfigFiles] = ()
    cli_class: type[LitforgeCLI] = LitforgeCLI

    def config_files(self) -> list[str | Path]:
        """The default config files, in the order they apply."""
        files = self.default_config() if callable(self.default_config) else self.default_config
        return [files] if isinstance(files, str | Path) else list(files)

    def main(
        self,
        args: Sequence[str] | None = None,
        default_config: ConfigFiles | None = None,
        **kwargs: Any,
    ) -> LitforgeCLI:
        """Runs the command line, ``args`` (``["fit", "--trainer.max_epochs=2"]``) or the
        process's own; returns the LitforgeCLI (its ``trainer``, ``model``, ``run_dir``).
        ``default_config``: other files instead of the project's; ``kwargs``: LightningCLI's
        (``run=False``: build the model, data and trainer only)."""
        if default_config is None:
            files = self.config_files()
        elif isinstance(default_config, str | Path):
            files = [default_config]
        else:
            files = list(default_config)
        return cli_main(
            self.model_class,
            self.data_class,
            project=self.name,
            default_config=files,
            args=list(args) if args is not None else None,
            cli_class=self.cli_class,
            **kwargs,
        )
