"""The loggers a run can have (``--run.loggers``): W&B (offline without credentials),
TensorBoard and CSV, all writing inside the run folder.

A resumed run appends to its CSV and TensorBoard logs, from the checkpoint's step: what the
stopped run logged after its checkpoint (up to a ``kill -9``, the CSV is flushed every 100
steps, TensorBoard as it goes) is dropped, since the resumed run logs those steps again: from
metrics.csv when the resumed run first writes to it, so that a resume that fails before it
trains leaves the file as it was.
"""

from __future__ import annotations

import csv
import io
import netrc
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_warn

LoggerName = Literal["wandb", "tensorboard", "csv"]


def resume_step(ckpt_path: str | Path) -> int | None:
    """The logging step a run resumed from ``ckpt_path`` logs from: the steps its loggers had
    counted (Lightning's ``_batches_that_stepped``, the ``step`` column of metrics.csv), else its
    global step; None for a file that does not say (not a local Lightning checkpoint)."""
    try:
        import torch

        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a remote path or a keyword ("last", "hpc"): nothing to cut
        return None
    loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    step = loop.get("_batches_that_stepped", ckpt.get("global_step"))
    return int(step) if step is not None else None


def drop_rows_from(path: Path, step: int) -> int:
    """Removes the rows of the metrics.csv at ``path`` logged at ``step`` or later (written
    after the checkpoint a run resumes from); the file is replaced atomically. Returns how many
    rows were dropped."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        return 0
    column = rows[0].index("step")

    def later(row: list[str]) -> bool:
        try:
            return int(float(row[column])) >= step
        except (IndexError, ValueError):
            return False

    kept = [rows[0], *(row for row in rows[1:] if not later(row))]
    dropped = len(rows) - len(kept)
    if dropped:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text.getvalue())
        os.replace(tmp, path)
    return dropped


class ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing metrics.csv instead of deleting it, its
    rows from ``from_step`` on dropped (logged again by the resumed run). Nothing is changed
    before the first rows are saved, that is, before the resumed run trains: a resume that
    fails (a checkpoint of another width, data that cannot be read) leaves the file as it was."""

    def __init__(self, log_dir: str, from_step: int | None) -> None:
        self.from_step = from_step
        self._continued = False
        # Lightning's writer deletes the metrics.csv it finds when it starts (and warns): the
        # file is moved aside meanwhile, then put back as it was
        path = Path(log_dir) / self.NAME_METRICS_FILE
        aside = path.with_name(f".{path.name}.resuming")
        if path.is_file():
            os.replace(path, aside)
        try:
            with warnings.catch_warnings():  # "... exists and is not empty": the run's own
                warnings.filterwarnings("ignore", message="Experiment logs directory")
                super().__init__(log_dir)
        finally:
            if aside.is_file():
                os.replace(aside, path)

    def save(self) -> None:
        path = Path(self.metrics_file_path)
        if self.metrics and not self._continued and path.is_file():
            if self.from_step is not None:
                drop_rows_from(path, self.from_step)
            with path.open(newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])
        self._continued = self._continued or bool(self.metrics)
        super().save()


class ResumedCSVLogger(CSVLogger):
    """The CSV logger of a resumed run: its metrics.csv keeps the rows from before the stop,
    less those logged at ``from_step`` or later (after the checkpoint: logged again now)."""

    def __init__(self, *args: Any, from_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.from_step = from_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(self.log_dir, self.from_step)
        return self._experiment  # type: ignore[return-value]


class OfflineFallbackWandbLogger(WandbLogger):
    """WandbLogger that logs offline when W&B cannot start online (no network, a server that
    does not answer within WANDB_INIT_TIMEOUT, a refused key): one warning line, and the run
    goes on, its W&B files in the run folder for a later ``wandb sync``. A run of hours is not
    lost to a network hiccup at its start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lightning passes anonymous=None to wandb.init, and W&B then prints "The anonymous
        # setting has no effect and will be removed": a warning no user can act on.
        self._wandb_init.pop("anonymous", None)

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
    """Offline unless W&B credentials exist; WANDB_MODE, when set, decides, except that
    ``online`` without credentials is offline too: W&B would stop at its login prompt (in a
    terminal) and wait for a key (``make_loggers`` says so in one line)."""
    mode = os.environ.get("WANDB_MODE")
    if mode and mode != "online":
        return mode in ("offline", "dryrun", "disabled")
    return not wandb_has_credentials()


def make_loggers(
    names: Sequence[LoggerName],
    run_dir: Path,
    project: str,
    wandb_project: str | None = None,
    resuming: bool | str | Path = False,
    log_model: bool | Literal["all"] = False,
    group: str | None = None,
) -> list[Logger]:
    """The chosen loggers, each writing under ``run_dir``. CSV and TensorBoard come first, so
    that ``trainer.log_dir`` points into the run folder; W&B's run id is the folder's name, so a
    resumed run appends to the same W&B run. ``log_model``: W&B uploads the checkpoints as
    artifacts (True: at the end, "all": as they are written); only online, offline W&B cannot.
    ``group``: the W&B group (the runs of one sweep or seed group). ``resuming``: the checkpoint
    a resumed run starts from (or True): the CSV and TensorBoard logs continue from its step."""
    loggers: list[Logger] = []
    from_step = resume_step(resuming) if isinstance(resuming, str | Path) else None
    for name in sorted(dict.fromkeys(names), key=lambda n: n == "wandb"):
        if name == "csv":
            if resuming:
                loggers.append(
                    ResumedCSVLogger(run_dir, name="csv", version="", from_step=from_step)
                )
            else:
                loggers.append(CSVLogger(run_dir, name="csv", version=""))
        elif name == "tensorboard":
            # purge_step: TensorBoard hides the events the stopped run wrote from that step on
            purge: dict[str, Any] = {} if from_step is None else {"purge_step": from_step}
            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version="", **purge))
        elif name == "wandb":
            offline = wandb_offline()
            if offline and os.environ.get("WANDB_MODE") == "online":
                rank_zero_warn(
                    "WANDB_MODE=online, but W&B has no key (WANDB_API_KEY, or wandb login): "
                    f"logging offline, to upload later: wandb sync {run_dir}/wandb"
                )
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
