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

import copy
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentError
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from litforge.data.module import restoring
from litforge.errors import CheckpointMismatchError, SettingError, one_line
from litforge.run.arguments import add_run_arguments, link_shared_values
from litforge.run.budget import BudgetGuard, fit_the_machine, start_clock
from litforge.run.checkpoint_io import AtomicCheckpointIO, with_atomic_checkpoints
from litforge.run.checkpoints import (
    add_checkpoint_arguments,
    best_checkpoint_callback,
    scored_checkpoint,
    tested_checkpoint,
)
from litforge.run.debug import add_debug_argument, apply_debug_preset, describe_preset
from litforge.run.handoff import hand_run_dir, handing_off, inherited_run_dir
from litforge.run.lock import RunLock
from litforge.run.loggers import make_loggers
from litforge.run.messages import (
    SUBCOMMANDS,
    bad_yaml,
    check_ckpt_path,
    check_top_level_optimizer,
    check_trains_something,
    checkpoint_mismatch,
    class_path_problem,
    did_you_mean,
    foreign_config,
    quiet_checkpoint_warnings,
    restricted_value,
    state_dict_mismatch,
    union_problem,
    unknown_subcommand,
)
from litforge.run.outputs import print_summary, save_predictions, write_results
from litforge.run.progress import PacedProgressBar
from litforge.run.resume import OptimizerSettings, ResumedStatus, RngState, requeued_checkpoint
from litforge.run.rundir import (
    RunConfigSaver,
    check_no_run_in,
    check_writable,
    new_run_dir,
    run_folder_of,
)
from litforge.run.runs import STATUS_FILE, end_status, outcome_of, start_status
from litforge.run.safety import CTRL_C_EXIT, SIGTERM_EXIT, SaveOnInterrupt
from litforge.run.use import (
    add_predict_argument,
    checkpoint_data_state,
    drop_new_inputs,
    predict_new_inputs,
    take_new_inputs,
)
from litforge.tasks.contracts import check_data

SUBCOMMAND_KEY = "litforge_subcommand"  # in a subcommand's parser_kwargs: which one it is
PROGRESS_REFRESH = 10  # steps between progress bar redraws
# the top of --help: the four commands of LightningCLI below it, and the others (litforge.command)
COMMANDS_HELP = (
    "fit, validate, test, predict (below; <command> --help lists its settings); also runs (the "
    "table of runs), sweep <name> (an Optuna study), repeat --seeds N (a seed group), prepare "
    "(the chunks of streamed data), export (an ONNX or torch.export file), serve (an HTTP server)"
)


class _NoLibraryTips(logging.Filter):
    """Drops Lightning's advertising tips ("💡 Tip: ... install ..."): nothing a user must act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡" not in str(record.msg)


NO_TIPS = _NoLibraryTips()
# Lightning's "The number of training batches (8) is smaller than the logging interval
# Trainer(log_every_n_steps=10)": nothing to act on; steps are counted across epochs, so the
# step values still come every log_every_n_steps steps, and the epoch values at each epoch's end.
FEW_BATCHES_WARNING = r"The number of training batches \(\d+\) is smaller than the logging interval"


def as_list(value: Any) -> list[Any]:
    """A trainer setting that takes one item or a list (callbacks, plugins), as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def describe_added(items: list[Any]) -> list[str]:
    """Short names of what core adds to a trainer, for the line printed at the start of a run
    and the end of its config.yaml."""
    out = []
    for item in items:
        name = type(item).__name__
        if isinstance(item, ModelCheckpoint):
            if item.monitor:
                top = f"top {item.save_top_k}" if item.save_top_k != 1 else "best"
                out.append(f"{name}({top} by {item.monitor}, {item.mode})")
            else:
                out.append(f"{name}({item.filename}.ckpt)")
        elif isinstance(item, TQDMProgressBar):
            out.append(f"{name}(refresh_rate={item.refresh_rate})")
        elif isinstance(item, AtomicCheckpointIO):
            out.append(f"{name} (plugin: atomic checkpoint writes)")
        else:
            out.append(name)
    return out


class LitforgeCLI(LightningCLI):
    """The LightningCLI of every project (``cli_main`` builds it): the run folder, the loggers,
    the data -> model links, best and interrupt checkpoints, the time budget, results.json.

    Args: as LightningCLI, plus ``project`` (the name under runs/) and ``default_config``."""

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
        self.core_adds: list[str] = []  # what core added to the trainer (describe_added)
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
            parser_kwargs = {
                **common,
                "description": COMMANDS_HELP,
                # each subcommand's own dict: init_parser reads which one it builds
                **{sub: {**parser_kwargs, SUBCOMMAND_KEY: sub} for sub in subcommands},
            }
        kwargs.setdefault("parser_kwargs", parser_kwargs)
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("seed_everything_default", 0)
        try:
            # what this command hands to DDP children it starts is gone when it ends
            with handing_off():
                super().__init__(model_class, datamodule_class, **kwargs)
        except SIGTERMException as stop:
            self._end_status(stop)
            # Lightning stops on SIGTERM with SystemExit(None): exit status 0, and a scheduler
            # or a shell `&&` would take the interrupted run for a finished one. 143, or 130
            # when Ctrl-C asked for the stop (SaveOnInterrupt sets it).
            raise SystemExit(stop.code if isinstance(stop.code, int) else SIGTERM_EXIT) from stop
        except SettingError:
            self._forget_run_dir()  # refused before it began: no run to list
            raise
        except ArgumentError as err:
            # parse_arguments turns the command line's into one line: this one comes from
            # LightningCLI's reading of the model's settings saved in --ckpt_path, which another
            # model's parser refuses. Nothing is written yet.
            raise CheckpointMismatchError(
                f"the checkpoint {self._ckpt_path()} holds the settings of another model than "
                f"{getattr(model_class, '__name__', model_class)} ({one_line(str(err), limit=100)}): "
                "was it written by another project?"
            ) from None
        except BaseException as err:
            self._end_status(err)
            if isinstance(err, SystemExit) and isinstance(err.__context__, KeyboardInterrupt):
                # Lightning ends a Ctrl-C outside training with sys.exit(1): one status for
                # Ctrl-C, wherever it lands
                raise SystemExit(CTRL_C_EXIT) from None
            raise
        else:
            self._end_status(None)
        finally:
            if getattr(self, "_lock", None) is not None:
                self._lock.release()

    # ------------------------------------------------------------------ arguments
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """As LightningCLI's, but a bad argument or config file is one line on stderr,
        ``error: ...`` naming the key, value or file, and exit status 2 (not the usage).
        Given ``args`` (``main([...])`` in tests and notebooks), the parse sees only those:
        the process's own command line (pytest's) is set aside while it lasts, so LightningCLI
        does not warn of having both."""
        saved = sys.argv
        if args is not None:
            sys.argv = sys.argv[:1]
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            argv = list(args) if isinstance(args, list | tuple) else sys.argv[1:]
            message = (
                bad_yaml(argv)
                or unknown_subcommand(str(err))
                or restricted_value(one_line(str(err)))
                or class_path_problem(one_line(str(err)))
                or union_problem(one_line(str(err)))
                or foreign_config(argv, self.project, self.model_class, self.datamodule_class)
                or one_line(str(err), limit=600)
            )
            sub = next((a for a in argv if a in SUBCOMMANDS), None)
            hint = did_you_mean(message, parser, sub)
            command = " ".join(filter(None, ["python -m", self._module(), sub, "--help"]))
            print(f"error: {message}{hint} ({command} lists the settings)", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            sys.argv = saved
        # before LightningCLI reads the checkpoint (for hyperparameters), and anything is written
        sub = self.config.get("subcommand")
        if sub == "predict":  # --data.predict; a run folder as --ckpt_path (litforge.run.use)
            self.new_inputs = take_new_inputs(self.config[sub])
        check_ckpt_path((self.config[sub] if sub else self.config).get("ckpt_path"))
        seed = (self.config[sub] if sub else self.config).get("seed_everything")
        if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed < 2**32:
            # Lightning's seed_everything raises it as a traceback, after the parse
            print(f"error: --seed_everything={seed}: a seed from 0 to 2**32 - 1", file=sys.stderr)
            raise SystemExit(2)
        # LightningCLI then sets the model's settings from the checkpoint's hyperparameters: a
        # resumed fit keeps its command's own (a lower rate given to resume: OptimizerSettings),
        # put back in before_instantiate_classes
        if sub == "fit":
            self._given_model = copy.deepcopy(self.config[sub].get("model"))

    def _ckpt_path(self) -> Any:
        config = getattr(self, "config", None) or {}
        sub = config.get("subcommand")
        return (config[sub] if sub else config).get("ckpt_path")

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """LightningCLI's parser; it remembers which subcommand's it is (``SUBCOMMAND_KEY``)."""
        subcommand = kwargs.pop(SUBCOMMAND_KEY, None)
        parser = super().init_parser(**kwargs)
        parser.litforge_subcommand = subcommand  # type: ignore[attr-defined]
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_arguments(
            parser
        )  # --run.root, --run.dir, --run.loggers, ... (litforge.run.arguments)
        add_checkpoint_arguments(parser)  # --run.save_top_k, --run.monitor, --run.monitor_mode
        add_debug_argument(parser)  # --run.debug
        if getattr(parser, "litforge_subcommand", None) == "predict":
            add_predict_argument(parser)  # --data.predict (litforge.run.use)
        self.linked += link_shared_values(parser, self.model_class, self.datamodule_class)

    def instantiate_classes(self) -> None:
        """As LightningCLI's; predicting new inputs, the data module first restores what the
        data taught from the checkpoint, so that nothing reads the training data."""
        if getattr(self, "new_inputs", None) is None:
            return super().instantiate_classes()
        with restoring(checkpoint_data_state(self.config["predict"].ckpt_path)):
            return super().instantiate_classes()

    # ------------------------------------------------------------------ run directory
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_top_level_optimizer(config, self._module())  # before anything is written
        if self.subcommand == "fit" and getattr(self, "_given_model", None) is not None:
            config.model = self._given_model  # the command's own settings (parse_arguments)
        if self.subcommand == "predict":
            drop_new_inputs(config)  # --data.predict is the command's, not the data module's
        if self.subcommand == "fit":
            check_trains_something(config.trainer)
        run = config.run
        fit = self.subcommand == "fit"
        inherited = inherited_run_dir()  # a DDP child: its launching rank's (litforge.run.handoff)
        if run.dir is None:  # a resumed fit: the run folder of its checkpoint; else a new one
            resumed = run_folder_of(config.get("ckpt_path")) if fit else None
            run.dir = inherited or resumed or str(new_run_dir(Path(run.root), self.project))
        run_dir = Path(run.dir)
        self._made_run_dir = not run_dir.exists()
        check_writable(run_dir)
        if fit and not config.get("ckpt_path"):
            requeued = requeued_checkpoint(run_dir)  # SLURM ran the same command again
            if requeued is not None:
                rank_zero_info(f"requeued: resuming from {requeued}")
                config.ckpt_path = str(requeued)
            elif not inherited:
                check_no_run_in(run_dir, self._module())  # a new fit would write over it
        hand_run_dir(str(run_dir))
        self.run_dir = run_dir
        config.trainer.default_root_dir = str(run_dir)
        if run.debug:  # litforge.run.debug
            applied = apply_debug_preset(run.debug, config.trainer, run_dir)
            rank_zero_info(describe_preset(run.debug, applied))
        if self.subcommand is not None and getattr(rank_zero_only, "rank", 0) == 0:
            # one writer at a time (litforge.run.lock): refused before anything is written
            self._lock = RunLock(run_dir)
            self._lock.acquire(" ".join([f"python -m {self._module()}", *sys.argv[1:]]))
            resuming = bool(config.get("ckpt_path"))
            # a resumed fit writes it once it trains: a resume that fails changes no file
            self._status_pending = fit and resuming
            if not self._status_pending:
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
            config.get("ckpt_path") or False,  # the CSV and TensorBoard logs go on from its step
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
        trainer_config = self._trainer_config()
        added = self._core_callbacks(trainer_config.get("callbacks"))
        if self.subcommand == "fit":
            # written to a temporary file and renamed: a kill mid-write keeps the last one
            given = as_list(trainer_config.get("plugins"))
            kwargs["plugins"] = with_atomic_checkpoints(trainer_config.get("plugins"))
            added_plugins = [
                p for p in as_list(kwargs["plugins"]) if all(p is not g for g in given)
            ]
        else:
            added_plugins = []
        self.core_adds = describe_added([*added, *added_plugins])
        if self.core_adds:  # listed at the start and at the end of the saved config.yaml
            rank_zero_info(f"core adds: {', '.join(self.core_adds)} (docs/runs.md)")
            self.save_config_kwargs = {**self.save_config_kwargs, "core_adds": self.core_adds}
        # the first line of config.yaml: which project's command saved it
        self.save_config_kwargs = {
            **self.save_config_kwargs,
            "project": f"{self.project} (python -m {self._module()})",
        }
        if self.subcommand != "fit":
            # validate, test and predict write no checkpoint: no default ModelCheckpoint, whose
            # restore from the given checkpoint would warn that its dirpath has changed
            kwargs["enable_checkpointing"] = False
        callbacks = [*as_list(trainer_config.get("callbacks")), *added]
        self._resumed_status = None
        if getattr(self, "_status_pending", False):  # status.json of a resume: when it trains
            self._resumed_status = ResumedStatus(self.run_dir)
            callbacks.append(self._resumed_status)
        try:
            trainer = super().instantiate_trainer(
                logger=loggers or False, callbacks=callbacks, **kwargs
            )
        except MisconfigurationException as err:  # a --trainer value Lightning refuses
            raise SettingError(f"a --trainer setting is refused: {one_line(str(err))}") from err
        self._announce(trainer)
        return trainer

    def _trainer_config(self) -> dict[str, Any]:
        """The trainer's settings as instantiated (its callbacks are objects now)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        return dict(config.get("trainer") or {})

    def _core_callbacks(self, given: Any) -> list[Any]:
        """What core adds to the callbacks of the config (docs/runs.md, "What every run adds")."""
        added: list[Any] = []
        if self.subcommand == "fit":
            ckpt_dir = self.run_dir / "checkpoints"
            run = self.config[self.subcommand].run
            best = best_checkpoint_callback(run, self.model, self.datamodule, ckpt_dir)
            added += [
                # the best k by run.monitor, with a validation set (litforge.run.checkpoints);
                # before last.ckpt's, so that it is trainer.checkpoint_callback, what
                # ckpt_path="best" names (a ModelCheckpoint of the config comes first still)
                *([best] if best is not None else []),
                # last.ckpt at every epoch end (or validation end), overwritten in place. Not
                # save_top_k=0 with save_last=True: Lightning 2.6 then writes last.ckpt only
                # when training ends, and a resumed run would write last-v1.ckpt beside it.
                ModelCheckpoint(
                    dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False
                ),
                SaveOnInterrupt(ckpt_dir),  # and Ctrl-C stops at a step's end
                BudgetGuard(self._plan),
                RngState(),  # dropout & co. resume bit for bit
                OptimizerSettings(),  # a resume's own optimizer settings replace the saved ones
            ]
        trainer = self._trainer_config()
        if trainer.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in as_list(given)
        ):
            # Lightning's default redraws every step, a host sync that costs GPU time; this one
            # every 10 steps and at most twice a second (litforge.run.progress)
            added.append(PacedProgressBar(refresh_rate=PROGRESS_REFRESH))
        return added

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

    # ------------------------------------------------------------------ the work
    # LightningCLI runs ``self.<subcommand>(**kwargs)`` when the CLI defines it (else the
    # trainer's method): each loads a checkpoint with torch's safe loader and names a
    # checkpoint that does not fit the model in one line.
    def fit(self, model: pl.LightningModule, **kwargs: Any) -> None:
        """``trainer.fit``, see ``_checked``."""
        self._checked(self.trainer.fit, model, **kwargs)

    def validate(self, model: pl.LightningModule, **kwargs: Any) -> None:
        """``trainer.validate``, see ``_checked``."""
        self._checked(self.trainer.validate, model, **kwargs)

    def test(self, model: pl.LightningModule, **kwargs: Any) -> None:
        """``trainer.test``, see ``_checked``."""
        self._checked(self.trainer.test, model, **kwargs)

    def predict(self, model: pl.LightningModule, **kwargs: Any) -> None:
        """Runs prediction and saves every tensor the task's Prediction declares, joined over
        all batches, to ``<run dir>/predictions.pt``; with ``--data.predict``, the new inputs'
        readable predictions to ``<run dir>/predictions.csv`` (``litforge.run.use``)."""
        kwargs["return_predictions"] = True
        if getattr(self, "new_inputs", None) is not None:  # --data.predict: predictions.csv
            run = lambda: self._checked(self.trainer.predict, model, **kwargs)  # noqa: E731
            path = predict_new_inputs(
                self.trainer, self.datamodule, run, self.new_inputs, self.run_dir
            )
            self._extra = [f"predictions: {path}"] if path else []
            return
        batches = self._checked(self.trainer.predict, model, **kwargs) or []
        path = (
            save_predictions(batches, self.run_dir, model) if self.trainer.is_global_zero else None
        )
        self._extra = [f"predictions: {path}"] if path else []

    def _checked(self, method: Any, model: pl.LightningModule, **kwargs: Any) -> Any:
        """Calls the trainer's ``method``. A checkpoint holds tensors and plain containers only:
        it is loaded with torch's safe loader (Lightning passes ``weights_only=None`` through,
        which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD can turn into a full unpickling;
        ``--weights_only=false`` still opts out). A checkpoint whose weights do not fit the
        model raises CheckpointMismatchError, one line naming the file and the keys at fault."""
        if kwargs.get("weights_only") is None and "weights_only" in kwargs:
            kwargs["weights_only"] = True
        mismatch = checkpoint_mismatch(model, kwargs.get("ckpt_path"))
        if mismatch:  # before a resumed fit writes anything (status.json, the logs)
            raise CheckpointMismatchError(
                f"the checkpoint {kwargs['ckpt_path']} does not fit {type(model).__name__}: "
                f"{mismatch}; from another project, or other --model settings?"
            )
        try:
            if method == self.trainer.fit and not kwargs.get("ckpt_path"):
                return method(model, **kwargs)
            # warnings about a checkpoint's callbacks and folder that nobody can act on
            with quiet_checkpoint_warnings(resume=method == self.trainer.fit):
                return method(model, **kwargs)
        except RuntimeError as err:
            ckpt_path = kwargs.get("ckpt_path")
            if ckpt_path and str(err).startswith("Error(s) in loading state_dict"):
                raise CheckpointMismatchError(
                    f"the checkpoint {ckpt_path} does not fit {type(model).__name__}: "
                    f"{state_dict_mismatch(str(err))}; from another project, or other --model "
                    "settings?"
                ) from err
            raise

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

    def after_predict(self) -> None:
        self._summary()

    def _forget_run_dir(self) -> None:
        """Removes the run folder this command made, if it holds nothing but its status.json:
        a setting refused before the work began (exit status 2) leaves no run behind."""
        run_dir = getattr(self, "run_dir", None)
        if run_dir is None or not getattr(self, "_made_run_dir", False):
            return
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
        if {p.name for p in run_dir.iterdir()} <= {STATUS_FILE}:
            (run_dir / STATUS_FILE).unlink(missing_ok=True)
            run_dir.rmdir()

    def _end_status(self, error: BaseException | None) -> None:
        """Writes the end of the command to status.json: finished, interrupted or failed."""
        resumed = getattr(self, "_resumed_status", None)
        if self._status is None and resumed is not None:
            self._status = resumed.status  # a resumed fit's, once it trained (ResumedStatus)
        if self._status is None or not self.run_dir.is_dir():  # none, or the folder deleted
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
    """Builds and runs a project's command line (``Project.main`` calls it): ``project`` names
    the folder of its runs (``runs/<project>/``); ``args`` defaults to the command line;
    ``cli_class``: a LitforgeCLI subclass with the project's own options; ``kwargs`` go to
    LightningCLI (``run=False``: build the model, data and trainer only)."""
    torch.set_float32_matmul_precision("high")
    start_clock(in_process=args is not None)  # a time budget counts this command's time only
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(NO_TIPS)  # once: a set
    warnings.filterwarnings("ignore", message=FEW_BATCHES_WARNING)  # once: an equal one replaced
    return (cli_class or LitforgeCLI)(
        model_class,
        datamodule_class,
        project=project,
        default_config=default_config,
        args=args,
        **kwargs,
    )
