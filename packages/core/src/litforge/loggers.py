"""The loggers a run can have (``--run.loggers``): W&B (offline without credentials),
TensorBoard and CSV, all writing inside the run folder; a resumed run appends to its CSV."""

from __future__ import annotations

import csv
import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

LoggerName = Literal["wandb", "tensorboard", "csv"]


class _ContinuingWriter(ExperimentWriter):
    """Appends to an existing metrics.csv; Lightning's writer deletes it when it starts."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ResumedCSVLogger(CSVLogger):
    """The CSV logger of a resumed run: its metrics.csv keeps the rows from before the stop."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]


def wandb_has_credentials() -> bool:
    """True when W&B could log in: an API key in the environment or in ~/.netrc for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_offline() -> bool:
    """Offline unless W&B credentials exist; WANDB_MODE, when set, decides."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    return not wandb_has_credentials()


def make_loggers(
    names: Sequence[LoggerName],
    run_dir: Path,
    project: str,
    wandb_project: str | None = None,
    resuming: bool = False,
) -> list[Logger]:
    """The chosen loggers, each writing under ``run_dir``. CSV and TensorBoard come first, so
    that ``trainer.log_dir`` points into the run folder; W&B's run id is the folder's name, so a
    resumed run appends to the same W&B run."""
    loggers: list[Logger] = []
    for name in sorted(dict.fromkeys(names), key=lambda n: n == "wandb"):
        if name == "csv":
            csv_logger = ResumedCSVLogger if resuming else CSVLogger
            loggers.append(csv_logger(run_dir, name="csv", version=""))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
        elif name == "wandb":
            loggers.append(
                WandbLogger(
                    save_dir=str(run_dir),
                    project=wandb_project or project,
                    name=run_dir.name,
                    id=run_dir.name.replace(".", "-"),
                    offline=wandb_offline(),
                    resume="allow",
                )
            )
    return loggers


def finish_wandb(loggers: Sequence[Logger]) -> str | None:
    """Closes the W&B run, if one was started; returns the ``wandb sync`` hint when offline."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            import wandb

            run_path = Path(logger.experiment.dir).parent
            wandb.finish()
            if wandb_offline():
                return f"W&B offline run; upload it with: wandb sync {run_path}"
    return None
