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

from litforge.errors import SettingError
from litforge.run.messages import PROJECT_MARK


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


def run_folder_of(ckpt_path: str | None) -> str | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/<name>.ckpt``, with the
    run's config.yaml), or None: a resumed fit continues there unless ``--run.dir`` says
    otherwise (a run's saved config.yaml leaves ``run.dir`` empty)."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path)
    if path.name.startswith("hpc_ckpt_"):  # Lightning's SLURM checkpoint: in the run folder
        folder = path.parent
    elif path.parent.name == "checkpoints":  # last.ckpt, best-*.ckpt
        folder = path.parent.parent
    else:
        return None
    return str(folder) if (folder / "config.yaml").is_file() else None


def check_no_run_in(run_dir: Path, module: str) -> None:
    """Refuses a new fit in a folder that holds a run's checkpoint: it would replace that run's
    checkpoints, config and logs."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        raise SettingError(
            f"the run folder {run_dir} holds a run already ({last}): to resume it, python -m "
            f"{module} fit --config {run_dir / 'config.yaml'} --ckpt_path {last}; for a new run, "
            "leave out --run.dir (or give another folder)"
        )


class RunConfigSaver(SaveConfigCallback):
    """Writes the resolved config to ``<run dir>/config.yaml`` (rank 0), its first line naming
    the project that saved it (``project``: a config given to another project's command is
    refused as such, ``litforge.run.messages.foreign_config``), ending with a comment that lists
    what core added to the trainer beyond it (``core_adds``: the checkpoints, interrupt saving,
    ...; docs/runs.md, "What every run adds").

    A fresh fit writes it when it sets up. A resumed fit (``ckpt_path`` in its config) writes
    it only when training starts: a resume that fails before (a checkpoint of another width, a
    batch size of 0) leaves the run's record, and the resume command it printed, as they were.
    Validate, test and predict write it unless the folder holds one already (a fit's, given
    with ``--run.dir``): then ``<subcommand>-config.yaml`` beside it. ``run.dir`` is saved empty:
    ``fit --config <run>/config.yaml`` runs the same settings in a new folder, and the printed
    resume command (with ``--ckpt_path <run>/checkpoints/last.ckpt``) finds this one."""

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: Any,
        core_adds: Sequence[str] = (),
        project: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(parser, config, **kwargs)
        self.core_adds = list(core_adds)
        self.project = project

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.config.get("ckpt_path"):
            return  # a resume: when training starts (on_train_start)
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.already_saved:
            super().setup(trainer, pl_module, "fit")

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        folder = Path(trainer.default_root_dir)
        path = folder / "config.yaml"
        if stage != "fit" and path.exists():
            path = folder / f"{stage}-config.yaml"
        config = self.config.clone()
        if config.get("run") is not None:
            # a fit of this file makes a new folder; a resume finds this one by its checkpoint
            config.run.dir = None
        text = self.parser.dump(config, skip_none=False)
        head = f"{PROJECT_MARK}{self.project}\n" if self.project else ""
        tail = added_note(self.core_adds) if self.core_adds else ""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(head + text + tail)
        os.replace(tmp, path)  # a reader never sees half of it


def added_note(core_adds: Sequence[str]) -> str:
    """The comment at the end of config.yaml: what core added to the trainer, beyond it."""
    lines = [
        "# Added by litforge to the trainer, beyond this file (docs/runs.md, "
        '"What every run adds"):',
        *(f"#   {item}" for item in core_adds),
    ]
    return "\n".join(lines) + "\n"
