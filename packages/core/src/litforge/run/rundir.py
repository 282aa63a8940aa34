"""Run folders: ``runs/<project>/<time>-<id>/``, proven writable, holding the resolved config."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, SaveConfigCallback


def new_run_dir(root: Path, project: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / project / f"{stamp}-{secrets.token_hex(3)}"


def check_writable(path: Path) -> None:
    """Creates ``path`` and proves it writable, or fails with a message that names it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise SystemExit(
            f"error: the run folder {path} is not writable ({err.strerror}); "
            "choose another with --run.root or --run.dir"
        ) from err


class RunConfigSaver(SaveConfigCallback):
    """Writes the resolved config to ``<run dir>/config.yaml`` (rank 0, overwriting on resume),
    ending with a comment that lists what core added to the trainer beyond it (``core_adds``:
    the checkpoints, interrupt saving, ...; docs/runs.md, "What every run adds")."""

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: Any,
        core_adds: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(parser, config, **kwargs)
        self.core_adds = list(core_adds)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / "config.yaml"
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True)
        if self.core_adds:
            with path.open("a") as f:
                f.write(added_note(self.core_adds))


def added_note(core_adds: Sequence[str]) -> str:
    """The comment at the end of config.yaml: what core added to the trainer, beyond it."""
    lines = [
        "# Added by litforge to the trainer, beyond this file (docs/runs.md, "
        '"What every run adds"):',
        *(f"#   {item}" for item in core_adds),
    ]
    return "\n".join(lines) + "\n"
