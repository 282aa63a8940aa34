"""The loggers a run can have (``--run.loggers``): W&B (offline without credentials),
TensorBoard and CSV, all writing inside the run folder; a resumed run appends to its CSV."""

from __future__ import annotations

import csv
import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_warn

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


class OfflineFallbackWandbLogger(WandbLogger):
    """WandbLogger that logs offline when W&B cannot start online (no network, a server that
    does not answer within WANDB_INIT_TIMEOUT, a refused key): one warning line, and the run
    goes on, its W&B files in the run folder for a later ``wandb sync``. A run of hours is not
    lost to a network hiccup at its start."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None or self._offline:
            return super().experiment
        import wandb

        try:
            return super().experiment
        except wandb.errors.Error as err:
            url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
            message = " ".join(str(err).split())[:300]
            rank_zero_warn(
                f"W&B could not start online at {url} ({type(err).__name__}: {message}); "
                f"logging offline instead, to upload later: wandb sync {self.save_dir}/wandb"
            )
            wandb.teardown()  # the failed run keeps its id taken in W&B's service otherwise
            self._offline, self._log_model = True, False
            return super().experiment


class CheckpointWandbLogger(OfflineFallbackWandbLogger):
    """WandbLogger whose checkpoint artifacts (``log_model``) come from the best-k checkpoint
    when the run keeps one: Lightning gives each a ``latest`` alias and the best one ``best``.
    ``last.ckpt``'s callback monitors nothing, and Lightning would call it the best; it is
    logged only in a run without validation, where it is both."""

    _monitored_seen = False

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if getattr(checkpoint_callback, "monitor", None) is not None:
            self._monitored_seen = True
        elif self._monitored_seen:
            return
        super().after_save_checkpoint(checkpoint_callback)


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
    log_model: bool | Literal["all"] = False,
    group: str | None = None,
) -> list[Logger]:
    """The chosen loggers, each writing under ``run_dir``. CSV and TensorBoard come first, so
    that ``trainer.log_dir`` points into the run folder; W&B's run id is the folder's name, so a
    resumed run appends to the same W&B run. ``log_model``: W&B uploads the checkpoints as
    artifacts (True: at the end, "all": as they are written); only online, offline W&B cannot.
    ``group``: the W&B group (the runs of one sweep or seed group)."""
    loggers: list[Logger] = []
    for name in sorted(dict.fromkeys(names), key=lambda n: n == "wandb"):
        if name == "csv":
            csv_logger = ResumedCSVLogger if resuming else CSVLogger
            loggers.append(csv_logger(run_dir, name="csv", version=""))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
        elif name == "wandb":
            offline = wandb_offline()
            if log_model and offline:
                rank_zero_warn(
                    "--run.wandb_log_model: W&B is offline, so checkpoints are not uploaded "
                    "as artifacts (they stay in the run folder)"
                )
            loggers.append(
                CheckpointWandbLogger(
                    save_dir=str(run_dir),
                    project=wandb_project or project,
                    name=run_dir.name,
                    id=run_dir.name.replace(".", "-"),
                    offline=offline,
                    resume="allow",
                    log_model=False if offline else log_model,
                    group=group,
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
