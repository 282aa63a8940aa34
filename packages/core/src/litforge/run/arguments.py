"""The ``--run.*`` options every project's command line has, and the data -> model links.

``add_run_arguments`` adds the run's own settings (folder, loggers, test after fit, time budget,
precision, W&B); ``link_shared_values`` links every value the data module ``provides`` that the
model's constructor takes by the same name (``num_classes``, ``in_channels``, ``num_features``,
...), and ``data.batch_size`` to a model that takes ``batch_size``: LightningCLI's own
``link_arguments``, listed under "Linked arguments" in ``--help``.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from jsonargparse.typing import PositiveFloat
from pytorch_lightning.cli import LightningArgumentParser

from litforge.run.loggers import LoggerName


def add_run_arguments(parser: LightningArgumentParser) -> None:
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
        "--run.wandb_group",
        type=str | None,
        default=None,
        help="the W&B group of the run (a sweep's or seed group's runs share one)",
    )
    parser.add_argument(
        "--run.test_after_fit",
        type=bool,
        default=True,
        help="after fit, test the best checkpoint (the final model without validation) and "
        "write results.json",
    )
    parser.add_argument(
        "--run.time_budget",
        type=PositiveFloat | None,  # 0 or less: refused, not taken for "no budget"
        default=None,
        help="seconds from process start to results.json, more than 0: fit measures its step "
        "time and trains as many steps as fit (trainer.max_steps is set; schedules span "
        "them). null: no budget",
    )
    parser.add_argument(
        "--run.precision",
        type=Literal["auto"] | None,
        default=None,
        help="auto: on a CPU, time bf16 autocast against fp32 on the model and keep the "
        "faster; on a GPU, bf16. null: trainer.precision as given",
    )
    parser.add_argument(
        "--run.wandb_log_model",
        type=bool | Literal["all"],
        default=False,
        help="W&B online: upload the checkpoints as artifacts, aliases best and latest "
        "(true: at the end of training; all: as they are written)",
    )


def init_parameters(cls: Any) -> set[str]:
    """The named parameters of a class's constructor (not *args / **kwargs) and, where it takes
    ``**kwargs`` (passed on to its base, as the CLI's parser reads them), its bases' too: a
    ``Regressor`` subclass taking ``**kwargs`` takes ``target_shape``."""
    names: set[str] = set()
    for klass in cls.__mro__ if cls is not None else ():
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def link_shared_values(
    parser: LightningArgumentParser, model_class: Any, datamodule_class: Any
) -> list[str]:
    """Links data -> model for every value both sides name alike; returns the names linked."""
    linked = []
    model_args = init_parameters(model_class)
    data_args = init_parameters(datamodule_class)
    provided = getattr(datamodule_class, "provides", ())
    for name in provided:
        if name in model_args:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
            linked.append(name)
    if "batch_size" in model_args and "batch_size" in data_args and "batch_size" not in provided:
        parser.link_arguments("data.batch_size", "model.batch_size", apply_on="parse")
        linked.append("batch_size")
    return linked
