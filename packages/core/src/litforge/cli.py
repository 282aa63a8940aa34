"""LitforgeCLI: the LightningCLI every project's ``__main__`` calls.

    python -m <project> fit|validate|test|predict [--config extra.yaml] [--key=value ...]

- the project's default config is applied first; ``--print_config`` shows the resolved one;
- each run lives in ``runs/<project>/<time>-<id>/``: config.yaml, checkpoints/, media/, logger
  files, and results.json with the final test metrics;
- loggers are chosen by ``--run.loggers`` (wandb, tensorboard, csv); W&B runs offline when no
  credentials exist and prints the ``wandb sync`` command at the end;
- an interrupted run (SIGTERM, Ctrl-C, crash) leaves checkpoints/last.ckpt, and the resume
  command printed at start continues the same run directory, W&B run and step count.
"""

from __future__ import annotations

import csv
import json
import math
import netrc
import os
import secrets
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from litforge.callbacks.safety import SaveOnInterrupt
from litforge.errors import LitforgeError
from litforge.structs import Struct

LoggerName = Literal["wandb", "tensorboard", "csv"]
PROGRESS_REFRESH = 10  # steps between progress bar redraws
RUN_DIR_ENV = "LITFORGE_RUN_DIR"  # lets DDP child processes find the parent's run directory


class RunConfigSaver(SaveConfigCallback):
    """Writes the resolved config to ``<run dir>/config.yaml`` (rank 0, overwriting on resume)."""

    def __init__(self, parser: LightningArgumentParser, config: Any, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(parser, config, **kwargs)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / "config.yaml"
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True)


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


class LitforgeCLI(LightningCLI):
    """Args: as LightningCLI, plus ``project`` (the name under runs/) and ``default_config``."""

    def __init__(
        self,
        model_class: Any = None,
        datamodule_class: Any = None,
        *,
        project: str,
        default_config: str | Path | list[str | Path] | None = None,
        **kwargs: Any,
    ) -> None:
        self.project = project
        self.started = time.perf_counter()
        if default_config is None:
            default_config = []
        elif not isinstance(default_config, list):
            default_config = [default_config]
        defaults = [str(c) for c in default_config]
        # allow_abbrev=False: a misspelled key must fail, not match a longer one by its prefix.
        parser_kwargs: dict[str, Any] = {"default_config_files": defaults, "allow_abbrev": False}
        if kwargs.get("run", True):  # with subcommands, each subcommand's parser takes them
            subcommands = ("fit", "validate", "test", "predict")
            parser_kwargs = {"allow_abbrev": False, **{sub: parser_kwargs for sub in subcommands}}
        kwargs.setdefault("parser_kwargs", parser_kwargs)
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("seed_everything_default", 0)
        # The run folder is handed to DDP child processes through the environment; a child
        # starts with it set, the parent removes it when done so a later run gets its own.
        owns_env = RUN_DIR_ENV not in os.environ
        try:
            super().__init__(model_class, datamodule_class, **kwargs)
        except SIGTERMException as stop:
            # Lightning stops on SIGTERM with SystemExit(None): exit status 0, and a scheduler
            # or a shell `&&` would take the interrupted run for a finished one.
            raise SystemExit(128 + signal.SIGTERM) from stop
        finally:
            if owns_env:
                os.environ.pop(RUN_DIR_ENV, None)

    # ------------------------------------------------------------------ arguments
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run.root", type=str, default="runs", help="where run folders go")
        parser.add_argument(
            "--run.dir",
            type=str | None,
            default=None,
            help="the run folder; default <run.root>/<project>/<time>-<id>. Give an existing "
            "one (with --ckpt_path) to resume it",
        )
        parser.add_argument(
            "--run.loggers",
            type=list[LoggerName],
            default=["wandb"],
            help="any of wandb, tensorboard, csv; [] for none",
        )
        parser.add_argument("--run.wandb_project", type=str | None, default=None)
        parser.add_argument(
            "--run.test_after_fit",
            type=bool,
            default=True,
            help="after fit, test the final model and write results.json",
        )

    # ------------------------------------------------------------------ run directory
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run = config.run
        if run.dir is None:
            run.dir = os.environ.get(RUN_DIR_ENV) or str(new_run_dir(Path(run.root), self.project))
        run_dir = Path(run.dir)
        check_writable(run_dir)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        self.run_dir = run_dir
        config.trainer.default_root_dir = str(run_dir)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = self._loggers(config.run, resuming=bool(config.get("ckpt_path")))
        trainer = super().instantiate_trainer(logger=loggers or False, **kwargs)
        self._announce(trainer)
        return trainer

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> pl.Trainer:
        if self.subcommand == "fit":
            ckpt_dir = self.run_dir / "checkpoints"
            callbacks = [
                *callbacks,
                # last.ckpt at every epoch end (or validation end), overwritten in place. Not
                # save_top_k=0 with save_last=True: Lightning 2.6 then writes last.ckpt only
                # when training ends, and a resumed run would write last-v1.ckpt beside it.
                ModelCheckpoint(
                    dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False
                ),
                SaveOnInterrupt(ckpt_dir),
            ]
        given = [*callbacks, *(config.get("callbacks") or [])]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in given
        ):
            # Lightning's default redraws every step, a host sync that costs GPU time.
            callbacks = [*callbacks, TQDMProgressBar(refresh_rate=PROGRESS_REFRESH)]
        return super()._instantiate_trainer(config, callbacks)

    def _loggers(self, run: Any, resuming: bool = False) -> list[Logger]:
        loggers: list[Logger] = []
        names = list(dict.fromkeys(run.loggers))
        # CSV and TensorBoard first: trainer.log_dir then points into the run folder.
        for name in sorted(names, key=lambda n: n == "wandb"):
            if name == "csv":
                csv_logger = ResumedCSVLogger if resuming else CSVLogger
                loggers.append(csv_logger(self.run_dir, name="csv", version=""))
            elif name == "tensorboard":
                loggers.append(TensorBoardLogger(self.run_dir, name="tensorboard", version=""))
            elif name == "wandb":
                loggers.append(
                    WandbLogger(
                        save_dir=str(self.run_dir),
                        project=run.wandb_project or self.project,
                        name=self.run_dir.name,
                        id=self.run_dir.name.replace(".", "-"),
                        offline=wandb_offline(),
                        resume="allow",
                    )
                )
        return loggers

    def _announce(self, trainer: pl.Trainer) -> None:
        if self.subcommand != "fit":
            return
        rank_zero_info(
            f"run folder: {self.run_dir}\n"
            f"to resume if interrupted: python -m {self._module()} fit "
            f"--config {self.run_dir / 'config.yaml'} --ckpt_path {self.run_dir / 'checkpoints' / 'last.ckpt'}"
        )

    def _module(self) -> str:
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        name = spec.name if spec is not None else self.project
        return name.removesuffix(".__main__")

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        # A checkpoint holds tensors and plain containers only: resume with torch's safe loader.
        # Lightning passes None through, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD can turn into a
        # full unpickling; --weights_only=false still opts out.
        if "weights_only" in kwargs and kwargs["weights_only"] is None:
            kwargs["weights_only"] = True
        return kwargs

    # ------------------------------------------------------------------ after the work
    def after_fit(self) -> None:
        config = self.config[self.subcommand]
        interrupted = self.trainer.state.status != "finished"
        if (
            config.run.test_after_fit
            and not interrupted
            and not getattr(self.trainer, "fast_dev_run", False)
            and self.datamodule is not None
            and getattr(self.datamodule, "test", None) is not None
        ):
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
            self._write_results()
        self._summary()

    def after_test(self) -> None:
        self._write_results()
        self._summary()

    def after_validate(self) -> None:
        self._summary()

    def predict(self, model: Any, datamodule: Any = None, **kwargs: Any) -> None:
        """Runs prediction and saves every tensor field of the predictions, joined over all
        batches, to ``<run dir>/predictions.pt`` (load with ``torch.load(..., weights_only=True)``)."""
        kwargs["return_predictions"] = True
        batches = self.trainer.predict(model, datamodule=datamodule, **kwargs) or []
        if batches and isinstance(batches[0], list):  # several dataloaders: keep the first
            batches = batches[0]
        if not self.trainer.is_global_zero or not batches:
            return
        joined = type(batches[0]).collate(batches) if isinstance(batches[0], Struct) else None
        if joined is None:
            return
        fields = dict(joined._tensor_fields())
        for name in ("probs", "pred", "entropy"):  # derived fields of classification predictions
            value = getattr(joined, name, None)
            if isinstance(value, torch.Tensor):
                fields[name] = value
        path = self.run_dir / "predictions.pt"
        torch.save({k: v.cpu() for k, v in fields.items()}, path)
        self.prediction_path = path

    def after_predict(self) -> None:
        path = getattr(self, "prediction_path", None)
        if path is not None and self.trainer.is_global_zero:
            print(f"predictions: {path}", flush=True)

    def _write_results(self) -> None:
        if not self.trainer.is_global_zero:
            return
        results = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")
        }
        path = self.run_dir / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    def _summary(self) -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in sorted(self.trainer.callback_metrics.items())
            if v.numel() == 1 and "/loss/" not in k and not math.isnan(float(v))
        }
        lines = [
            f"{'=' * 72}",
            f"{self.project}: {self.subcommand} done in {time.perf_counter() - self.started:.1f} s",
        ]
        lines += [f"  {k:<40} {v:.4f}" for k, v in metrics.items()]
        lines.append(f"  run folder: {self.run_dir}")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                import wandb

                run_path = Path(logger.experiment.dir).parent
                offline = wandb_offline()
                wandb.finish()
                if offline:
                    lines.append(f"  W&B offline run; upload it with: wandb sync {run_path}")
        lines.append("=" * 72)
        print("\n".join(lines), flush=True)


def run(main: Any) -> None:
    """Runs a project's ``main()`` as a command: a LitforgeError (bad data, a non-finite loss,
    ...) is printed as one clear message, without a traceback, and exits with status 1."""
    try:
        main()
    except LitforgeError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def cli_main(
    model_class: Any,
    datamodule_class: Any,
    *,
    project: str,
    default_config: str | Path | list[str | Path],
    args: list[str] | None = None,
    **kwargs: Any,
) -> LitforgeCLI:
    """What a project's ``__main__`` calls; ``args`` defaults to the command line."""
    torch.set_float32_matmul_precision("high")
    return LitforgeCLI(
        model_class,
        datamodule_class,
        project=project,
        default_config=default_config,
        args=args,
        **kwargs,
    )
