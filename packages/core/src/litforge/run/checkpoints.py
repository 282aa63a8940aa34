"""Best checkpoints: when a run has a validation set, a ``ModelCheckpoint`` keeps the best k by a
monitored metric, and the test after fit scores the best one.

The monitored metric defaults to the model's ``best_metric`` on the first validation set,
``val/<dataset>/<best_metric>`` (Classifier: accuracy, Regressor: mse, Segmenter: iou), in the
direction its TorchMetrics class declares (``higher_is_better``); a model that names none
monitors the first metric of ``build_metrics()`` in the collection's order (TorchMetrics sorts
the names alphabetically), and a model without metrics ``val/<dataset>/loss/total`` (lower is
better). A metric that returns several values (a dict: ``ClasswiseWrapper``, per-horizon) is
monitored by one of its keys, ``val/<dataset>/<metric>/<key>`` (``best_metric =
"<metric>/<key>"``), in the metric's direction. ``--run.monitor`` / ``--run.monitor_mode``
override both; ``--run.save_top_k`` sets k (0: no best checkpoints).

The best files are ``checkpoints/best-epoch<E>-step<S>.ckpt`` beside ``last.ckpt``, which stays
what a run resumes from. ``results.json`` says what the test scored: ``checkpoint`` (the file,
relative to the run folder, or ``"final"`` for the weights at the end of training when there is
no best checkpoint), ``epoch`` (counted from 0, as in ``csv/metrics.csv``), ``step`` and, for a
best checkpoint, ``monitor`` and ``monitor_value``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser
from torchmetrics import Metric, MetricCollection

from litforge.errors import LitforgeError
from litforge.tasks.metrics import returns_several

MonitorMode = Literal["min", "max"]
BEST_FILENAME = "best-epoch{epoch:03d}-step{step}"


def add_checkpoint_arguments(parser: LightningArgumentParser) -> None:
    parser.add_argument(
        "--run.save_top_k",
        type=int,
        default=1,
        help="with a validation set, keep the best k checkpoints by --run.monitor; the test "
        "after fit scores the best one. 0: none, the test scores the final weights",
    )
    parser.add_argument(
        "--run.monitor",
        type=str | None,
        default=None,
        help="the metric the best checkpoints are chosen by; default: the model's best_metric "
        "(val/<dataset>/accuracy for a Classifier, mse for a Regressor, iou for a Segmenter), "
        "else its first metric by name, or val/<dataset>/loss/total without metrics",
    )
    parser.add_argument(
        "--run.monitor_mode",
        type=MonitorMode | None,
        default=None,
        help="max or min; default: the metric's own direction (min for a loss)",
    )


def _direction(metric: Metric | MetricCollection) -> MonitorMode | None:
    higher = getattr(metric, "higher_is_better", None)
    return None if higher is None else ("max" if higher else "min")


def known_monitors(model: Any, datamodule: Any) -> dict[str, MonitorMode]:
    """Every validation metric of the task whose direction is known, by its logged name, in
    order: the first validation set's metrics (the model's ``best_metric`` first, then as the
    collection orders them: by name), its ``loss/total``, then the other sets'. A metric that
    returns several values is listed as ``<name>/*``: any of its keys, never a default."""
    names = list(datamodule.dataset_names("val")) if datamodule is not None else []
    build = getattr(model, "build_metrics", None)
    template = build() if callable(build) else None
    known: dict[str, MonitorMode] = {}
    for dataset in names or ["data"]:
        prefix = f"val/{dataset}/"
        if isinstance(template, MetricCollection):
            collection = template.clone(prefix=prefix)  # exactly the names BaseModel logs
            best = f"{prefix}{getattr(model, 'best_metric', None)}"
            items = sorted(
                collection.items(keep_base=False),
                key=lambda kv: kv[0] != best and not best.startswith(f"{kv[0]}/"),
            )
            for name, metric in items:
                mode = _direction(metric)
                if mode is not None and returns_several(metric):
                    if best.startswith(f"{name}/"):
                        known[best] = mode
                    known[f"{name}/*"] = mode
                elif mode is not None:
                    known[name] = mode
        known[f"{prefix}loss/total"] = "min"
    return known


def default_monitor(model: Any, datamodule: Any) -> tuple[str, MonitorMode]:
    """The logged name and direction of the model's ``best_metric`` (else its first validation
    metric whose direction is known) on the first validation set;
    ``val/<dataset>/loss/total`` (min) without one."""
    return resolve_monitor(model, datamodule)


def resolve_monitor(
    model: Any, datamodule: Any, monitor: str | None = None, mode: MonitorMode | None = None
) -> tuple[str, MonitorMode]:
    """``--run.monitor`` / ``--run.monitor_mode`` over the default. A monitor given without a
    mode takes its metric's own direction; a loss is minimised; for anything else (a metric a
    callback logs, e.g. ``val/<dataset>/ece``) the mode must be given."""
    known = known_monitors(model, datamodule)
    if monitor is None:
        monitor, default_mode = next((k, m) for k, m in known.items() if not k.endswith("/*"))
        return monitor, mode or default_mode
    if mode is None:
        # a key of a metric of several values takes that metric's direction
        keys = [m for k, m in known.items() if k.endswith("/*") and monitor.startswith(k[:-1])]
        if monitor in known or keys:
            mode = known.get(monitor) or keys[0]
        elif "/loss/" in monitor or monitor.endswith("loss"):
            mode = "min"
        else:
            raise LitforgeError(
                f"--run.monitor={monitor}: its direction is unknown (the task's validation "
                f"metrics are {', '.join(known)}); add --run.monitor_mode=max or min"
            )
    return monitor, mode


def best_checkpoint_callback(
    run: Any, model: Any, datamodule: Any, dirpath: Path
) -> ModelCheckpoint | None:
    """The best-k ModelCheckpoint of a fit whose data has a validation set (``run``: the
    config's ``run`` namespace), or None: no validation set, or ``save_top_k`` 0."""
    if run.save_top_k == 0 or datamodule is None or not datamodule.has_split("val"):
        return None
    monitor, mode = resolve_monitor(model, datamodule, run.monitor, run.monitor_mode)
    return ModelCheckpoint(
        dirpath=dirpath,
        filename=BEST_FILENAME,
        monitor=monitor,
        mode=mode,
        save_top_k=run.save_top_k,
        auto_insert_metric_name=False,
    )


def best_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The trainer's monitored ModelCheckpoint (the best-k one), if any."""
    return next(
        (
            c
            for c in trainer.checkpoint_callbacks  # type: ignore[attr-defined]
            if isinstance(c, ModelCheckpoint) and c.monitor is not None
        ),
        None,
    )


def checkpoint_position(path: str | Path) -> tuple[int, int]:
    """(epoch, global step) stored in a Lightning checkpoint (memory-mapped: nothing else read)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt["epoch"]), int(ckpt["global_step"])


def scored_checkpoint(trainer: pl.Trainer, run_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """What the test after fit should score: the best checkpoint's path (None: the weights in
    memory) and the keys ``results.json`` gets to say so."""
    best = best_callback(trainer)
    if best is not None and best.best_model_path and Path(best.best_model_path).is_file():
        path = Path(best.best_model_path)
        epoch, step = checkpoint_position(path)
        try:
            shown = str(path.resolve().relative_to(run_dir.resolve()))
        except ValueError:
            shown = str(path)
        score = best.best_model_score
        return str(path), {
            "checkpoint": shown,
            "epoch": epoch,
            "step": step,
            "monitor": best.monitor,
            "monitor_value": None if score is None else float(score),
        }
    # no validation (or no best file): the final weights, as they are in memory
    return None, {
        "checkpoint": "final",
        "epoch": max(trainer.current_epoch - 1, 0),
        "step": trainer.global_step,
    }


def tested_checkpoint(ckpt_path: str | Path | None) -> dict[str, Any]:
    """The keys ``results.json`` of a ``test`` command gets: the checkpoint given and its epoch
    and step (``"checkpoint": null`` when the model was tested as built)."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return {"checkpoint": str(ckpt_path) if ckpt_path else None}
    epoch, step = checkpoint_position(ckpt_path)
    return {"checkpoint": str(ckpt_path), "epoch": epoch, "step": step}
