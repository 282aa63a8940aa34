"""LitforgeCLI: the LightningCLI every project's ``__main__`` calls.

    python -m <project> fit|validate|test|predict [--config extra.yaml] [--key=value ...]

- the project's default config is applied first; ``--print_config`` shows the resolved one;
- values the model shares with the data are linked, not repeated: every name in the data
  module's ``provides`` (``num_classes``, ``in_channels``, ``num_features``, ...) that the model's
  constructor also takes is set from the data module, and ``data.batch_size`` reaches a model
  that takes ``batch_size`` (``--help`` lists the links);
- the data module is checked against the ``TaskData`` contract right after it is built;
- each run lives in its own folder (``litforge.rundir``) with its loggers (``litforge.loggers``),
  results.json, predictions.pt and a summary (``litforge.outputs``);
- an interrupted run (SIGTERM, Ctrl-C, crash) leaves checkpoints/last.ckpt, and the resume
  command printed at start continues the same run directory, W&B run and step count.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from litforge.callbacks.safety import SaveOnInterrupt
from litforge.contracts import check_data
from litforge.errors import LitforgeError
from litforge.loggers import LoggerName, make_loggers
from litforge.outputs import print_summary, save_predictions, write_results
from litforge.rundir import RUN_DIR_ENV, RunConfigSaver, check_writable, new_run_dir

PROGRESS_REFRESH = 10  # steps between progress bar redraws


def init_parameters(cls: Any) -> set[str]:
    """The named parameters of a class's constructor (not *args / **kwargs)."""
    if cls is None:
        return set()
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self"}


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
        self.link_shared_values(parser)

    def link_shared_values(self, parser: LightningArgumentParser) -> None:
        """Links data -> model for every value both sides name alike (see the module doc)."""
        model_args = init_parameters(self.model_class)
        data_args = init_parameters(self.datamodule_class)
        provided = getattr(self.datamodule_class, "provides", ())
        for name in provided:
            if name in model_args:
                parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        if (
            "batch_size" in model_args
            and "batch_size" in data_args
            and "batch_size" not in provided
        ):
            parser.link_arguments("data.batch_size", "model.batch_size", apply_on="parse")

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

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self.datamodule is not None:
            check_data(self.datamodule)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run = config.run
        resuming = bool(config.get("ckpt_path"))
        loggers = make_loggers(run.loggers, self.run_dir, self.project, run.wandb_project, resuming)
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
        finished = self.trainer.state.status == "finished"
        if (
            config.run.test_after_fit
            and finished
            and not self.trainer.fast_dev_run  # type: ignore[attr-defined]
            and self.datamodule is not None
            and check_data(self.datamodule).has_split("test")
        ):
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
            write_results(self.trainer, self.run_dir)
        self._summary()

    def after_test(self) -> None:
        write_results(self.trainer, self.run_dir)
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

    def _summary(self) -> None:
        elapsed = time.perf_counter() - self.started
        title = f"{self.project}: {self.subcommand} done in {elapsed:.1f} s"
        print_summary(self.trainer, title, self.run_dir, self._extra)


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
