"""LitforgeCLI: the LightningCLI every project's ``__main__`` calls.

    python -m <project> fit|validate|test|predict [--config extra.yaml] [--key=value ...]

- the project's default config is applied first; ``--print_config`` shows the resolved one;
- values the model shares with the data are linked, not repeated: every name in the data
  module's ``provides`` (``num_classes``, ``in_channels``, ``num_features``, ...) that the model's
  constructor also takes is set from the data module, and ``data.batch_size`` reaches a model
  that takes ``batch_size`` (``--help`` lists the links);
- the data module is checked against the ``TaskData`` contract right after it is built;
- each run lives in its own folder (``litforge.run.rundir``) with its loggers (``litforge.run.loggers``),
  results.json, predictions.pt and a summary (``litforge.run.outputs``), and a status.json that
  ``python -m <project> runs`` tabulates (``litforge.run.runs``);
- with a validation set, fit keeps the best checkpoints and tests the best one
  (``litforge.run.checkpoints``); ``--run.debug=<preset>`` for quick checks (``litforge.run.debug``);
- an interrupted run (SIGTERM, Ctrl-C, crash) leaves checkpoints/last.ckpt, and the resume
  command printed at start continues the same run directory, W&B run and step count;
  checkpoints are written atomically (``litforge.run.checkpoint_io``) and carry the global random
  generators (``RngState``) and the training loader's place in the epoch (``DeviceLoader``);
- many runs: ``python -m <project> sweep <name>`` (an Optuna study over
  configs/sweeps/<name>.yaml) and ``python -m <project> repeat --seeds S`` (one config, several
  seeds, mean and spread) start fit runs as child processes (``litforge.experiments``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentError
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from litforge.command import DESCRIBE, Described
from litforge.command import run as run  # the projects' __main__ call litforge.run.cli.run
from litforge.errors import CheckpointMismatchError, one_line
from litforge.experiments.child import child_callbacks
from litforge.run.arguments import add_run_arguments, link_shared_values
from litforge.run.budget import PLAN_ENV, BudgetGuard, fit_the_machine
from litforge.run.checkpoint_io import with_atomic_checkpoints
from litforge.run.checkpoints import (
    add_checkpoint_arguments,
    best_checkpoint_callback,
    scored_checkpoint,
    tested_checkpoint,
)
from litforge.run.debug import add_debug_argument, apply_debug_preset, describe_preset
from litforge.run.loggers import make_loggers
from litforge.run.messages import (
    SUBCOMMANDS,
    bad_yaml,
    check_ckpt_path,
    did_you_mean,
    state_dict_mismatch,
)
from litforge.run.outputs import print_summary, save_predictions, write_results
from litforge.run.resume import RngState
from litforge.run.rundir import RUN_DIR_ENV, RunConfigSaver, check_writable, new_run_dir
from litforge.run.runs import end_status, outcome_of, start_status
from litforge.run.safety import SaveOnInterrupt
from litforge.tasks.contracts import check_data

PROGRESS_REFRESH = 10  # steps between progress bar redraws


class _NoLibraryTips(logging.Filter):
    """Drops Lightning's advertising tips ("💡 Tip: ... install ..."): nothing a user must act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡" not in str(record.msg)


NO_TIPS = _NoLibraryTips()


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
        self._extra: list[str] = []  # lines the summary adds (the predictions' path)
        self._plan: Any = None  # the time budget's plan, when one was made
        self.linked: list[str] = []  # names whose value the model takes from the data module
        self._status: dict[str, Any] | None = None  # <run dir>/status.json (litforge.run.runs)
        if default_config is None:
            default_config = []
        elif not isinstance(default_config, list):
            default_config = [default_config]
        defaults = [str(c) for c in default_config]
        # allow_abbrev=False: a misspelled key must fail, not match a longer one by its prefix.
        # exit_on_error=False: a bad argument raises, and parse_arguments prints it on one line.
        common = {"allow_abbrev": False, "exit_on_error": False}
        parser_kwargs: dict[str, Any] = {"default_config_files": defaults, **common}
        if kwargs.get("run", True):  # with subcommands, each subcommand's parser takes them
            subcommands = ("fit", "validate", "test", "predict")
            parser_kwargs = {**common, **{sub: parser_kwargs for sub in subcommands}}
        kwargs.setdefault("parser_kwargs", parser_kwargs)
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("seed_everything_default", 0)
        # The run folder is handed to DDP child processes through the environment; a child
        # starts with it set, the parent removes it when done so a later run gets its own.
        owns_env = RUN_DIR_ENV not in os.environ
        try:
            super().__init__(model_class, datamodule_class, **kwargs)
        except SIGTERMException as stop:
            self._end_status(stop)
            # Lightning stops on SIGTERM with SystemExit(None): exit status 0, and a scheduler
            # or a shell `&&` would take the interrupted run for a finished one.
            raise SystemExit(128 + signal.SIGTERM) from stop
        except BaseException as err:
            self._end_status(err)
            raise
        else:
            self._end_status(None)
        finally:
            if owns_env:
                os.environ.pop(RUN_DIR_ENV, None)
                os.environ.pop(PLAN_ENV, None)

    # ------------------------------------------------------------------ arguments
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """As LightningCLI's, but a bad argument or config file is one line on stderr,
        ``error: ...`` naming the key, value or file, and exit status 2 (not the usage)."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            argv = list(args) if isinstance(args, list | tuple) else sys.argv[1:]
            message = bad_yaml(argv) or one_line(str(err), limit=600)
            sub = next((a for a in argv if a in SUBCOMMANDS), None)
            hint = did_you_mean(message, parser, sub)
            command = " ".join(filter(None, ["python -m", self._module(), sub, "--help"]))
            print(f"error: {message}{hint} ({command} lists the settings)", file=sys.stderr)
            raise SystemExit(2) from None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_arguments(
            parser
        )  # --run.root, --run.dir, --run.loggers, ... (litforge.run.arguments)
        add_checkpoint_arguments(parser)  # --run.save_top_k, --run.monitor, --run.monitor_mode
        add_debug_argument(parser)  # --run.debug
        self.linked += link_shared_values(parser, self.model_class, self.datamodule_class)

    # ------------------------------------------------------------------ run directory
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_ckpt_path(config.get("ckpt_path"))  # before anything is written
        run = config.run
        if run.dir is None:
            run.dir = os.environ.get(RUN_DIR_ENV) or str(new_run_dir(Path(run.root), self.project))
        run_dir = Path(run.dir)
        check_writable(run_dir)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        self.run_dir = run_dir
        config.trainer.default_root_dir = str(run_dir)
        if run.debug:  # litforge.run.debug
            applied = apply_debug_preset(run.debug, config.trainer, run_dir)
            rank_zero_info(describe_preset(run.debug, applied))
        if self.subcommand is not None and getattr(rank_zero_only, "rank", 0) == 0:
            resuming = bool(config.get("ckpt_path"))
            self._status = start_status(run_dir, self.subcommand, resuming)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        # Model and data exist now; the trainer, its callbacks and the run do not yet: check the
        # data module's contract first, so that a missing piece is named before anything else.
        if self.datamodule is not None:
            check_data(self.datamodule)
            linked = dict.fromkeys(self.linked)  # each subcommand's parser added them
            values = ", ".join(f"{n}={getattr(self.datamodule, n)}" for n in linked)
            if values and self.subcommand is not None:
                rank_zero_info(f"from the data module to the model: {values}")
        config = self.config[self.subcommand] if self.subcommand else self.config
        run = config.run
        resuming = bool(config.get("ckpt_path"))
        loggers = make_loggers(
            run.loggers,
            self.run_dir,
            self.project,
            run.wandb_project,
            resuming,
            log_model=run.wandb_log_model,
            group=run.wandb_group,
        )
        self._plan = None
        if self.subcommand == "fit" and not resuming and (run.precision or run.time_budget):
            overrides, self._plan = fit_the_machine(
                self.model,
                self.datamodule,
                config.trainer.accelerator,
                config.trainer.precision,
                run.precision == "auto",
                run.time_budget,
            )
            for key, value in overrides.items():  # the saved config.yaml says what was chosen
                config.trainer[key] = value
            kwargs = {**kwargs, **overrides}
        trainer = super().instantiate_trainer(logger=loggers or False, **kwargs)
        self._announce(trainer)
        return trainer

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> pl.Trainer:
        if self.subcommand == "fit":
            ckpt_dir = self.run_dir / "checkpoints"
            run = self.config[self.subcommand].run
            best = best_checkpoint_callback(run, self.model, self.datamodule, ckpt_dir)
            callbacks = [
                *callbacks,
                # the best k by run.monitor, with a validation set (litforge.run.checkpoints); first,
                # so that it is trainer.checkpoint_callback, what ckpt_path="best" names
                *([best] if best is not None else []),
                # last.ckpt at every epoch end (or validation end), overwritten in place. Not
                # save_top_k=0 with save_last=True: Lightning 2.6 then writes last.ckpt only
                # when training ends, and a resumed run would write last-v1.ckpt beside it.
                ModelCheckpoint(
                    dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False
                ),
                SaveOnInterrupt(ckpt_dir),
                BudgetGuard(self._plan),
                RngState(),  # dropout & co. resume bit for bit
                *child_callbacks(),  # a sweep's trial: OptunaReport (litforge.experiments)
            ]
            # written to a temporary file and renamed: a kill mid-write keeps the last one
            config = {**config, "plugins": with_atomic_checkpoints(config.get("plugins"))}
        given = [*callbacks, *(config.get("callbacks") or [])]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in given
        ):
            # Lightning's default redraws every step, a host sync that costs GPU time.
            callbacks = [*callbacks, TQDMProgressBar(refresh_rate=PROGRESS_REFRESH)]
        return super()._instantiate_trainer(config, callbacks)

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

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except RuntimeError as err:
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if ckpt_path and str(err).startswith("Error(s) in loading state_dict"):
                model = type(self.model).__name__
                raise CheckpointMismatchError(
                    f"the checkpoint {ckpt_path} does not fit {model}: "
                    f"{state_dict_mismatch(str(err))}; was it written by another project, or "
                    "with other --model settings?"
                ) from err
            raise

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
        finished = self.trainer.state.status == "finished"
        if (
            config.run.test_after_fit
            and finished
            and not self.trainer.fast_dev_run  # type: ignore[attr-defined]
            and self.datamodule is not None
            and check_data(self.datamodule).has_split("test")
        ):
            # the best checkpoint when there is one, else the final weights
            ckpt_path, scored = scored_checkpoint(self.trainer, self.run_dir)
            rank_zero_info(f"testing {scored['checkpoint']} (epoch {scored['epoch']})")
            self.trainer.test(
                self.model,
                datamodule=self.datamodule,
                verbose=False,
                ckpt_path=ckpt_path,
                weights_only=True,
            )
            write_results(self.trainer, self.run_dir, scored)
        self._summary()

    def after_test(self) -> None:
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        write_results(self.trainer, self.run_dir, tested_checkpoint(ckpt_path))
        self._summary()

    def after_validate(self) -> None:
        self._summary()

    def predict(self, model: Any, datamodule: Any = None, **kwargs: Any) -> None:
        """Runs prediction and saves every tensor the task's Prediction declares, joined over
        all batches, to ``<run dir>/predictions.pt``."""
        kwargs["return_predictions"] = True
        batches = self.trainer.predict(model, datamodule=datamodule, **kwargs) or []
        path = save_predictions(batches, self.run_dir) if self.trainer.is_global_zero else None
        self._extra = [f"predictions: {path}"] if path else []

    def after_predict(self) -> None:
        self._summary()

    def _end_status(self, error: BaseException | None) -> None:
        """Writes the end of the command to status.json: finished, interrupted or failed."""
        if self._status is None:
            return
        trainer = getattr(self, "trainer", None)
        outcome = outcome_of(error, trainer.state.status if trainer is not None else None)
        message = None
        if error is not None and outcome == "failed":
            message = f"{type(error).__name__}: {error}"[:1000]
        try:
            self._status = end_status(self.run_dir, self._status, outcome, message)
        except OSError as err:  # the record must not hide what ended the run
            rank_zero_warn(f"could not write {self.run_dir / 'status.json'}: {err}")

    def _summary(self) -> None:
        elapsed = time.perf_counter() - self.started
        title = f"{self.project}: {self.subcommand} done in {elapsed:.1f} s"
        print_summary(self.trainer, title, self.run_dir, self._extra)


def cli_main(
    model_class: Any,
    datamodule_class: Any,
    *,
    project: str,
    default_config: str | Path | list[str | Path],
    args: list[str] | None = None,
    cli_class: type[LitforgeCLI] | None = None,
    **kwargs: Any,
) -> LitforgeCLI:
    """What a project's ``__main__`` calls; ``args`` defaults to the command line;
    ``cli_class``: a LitforgeCLI subclass with the project's own options."""
    if DESCRIBE.get():  # project_of(main) asks only the project's name
        raise Described(project)
    torch.set_float32_matmul_precision("high")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(NO_TIPS)  # once: a set
    return (cli_class or LitforgeCLI)(
        model_class,
        datamodule_class,
        project=project,
        default_config=default_config,
        args=args,
        **kwargs,
    )
