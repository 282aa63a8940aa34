"""What a run leaves besides checkpoints and media: ``results.json`` (the final test metrics),
``predictions.pt`` (every tensor the task's Prediction declares) and the summary it prints."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from litforge.run.loggers import finish_wandb
from litforge.tasks.structs import Struct


def write_results(
    trainer: pl.Trainer, run_dir: Path, scored: dict[str, Any] | None = None
) -> Path | None:
    """Every ``test/...`` metric as a float, atomically, to ``<run dir>/results.json``, with
    ``scored``: what the test scored (``checkpoint``, ``epoch``, ...; ``litforge.run.checkpoints``).
    The metrics are the ``test/`` keys; ``litforge.run.runs.final_metrics`` reads them alone."""
    if not trainer.is_global_zero:
        return None
    results: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
    }
    results.update(scored or {})
    path = run_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def save_predictions(batches: Sequence[Any], run_dir: Path, model: Any = None) -> Path | None:
    """Joins the predicted batches and saves ``Struct.tensors()`` (fields and derived values,
    e.g. logits, probs, pred) to ``<run dir>/predictions.pt``, loadable with weights_only=True;
    in the user's units through ``model.in_user_units`` (a standardised target's own units)."""
    if batches and isinstance(batches[0], list):  # several dataloaders: keep the first
        batches = batches[0]
    if not batches or not isinstance(batches[0], Struct):
        return None
    units = getattr(model, "in_user_units", None)
    if callable(units):
        batches = [units(batch) for batch in batches]
    joined = type(batches[0]).collate(batches)
    path = run_dir / "predictions.pt"
    torch.save({k: v.detach().cpu() for k, v in joined.tensors().items()}, path)
    return path


GROUPED_OVER = 6  # a metric with more keys than this prints as one line (24 horizons, 40 labels)


def summary_lines(metrics: dict[str, float]) -> list[str]:
    """One line per metric; the keys of a metric of several values
    (``<stage>/<dataset>/<metric>/<key>``), when there are more than ``GROUPED_OVER``, as one
    line: their mean, lowest and highest (every key stays in results.json and the loggers)."""
    groups: dict[str, dict[str, float]] = {}
    for name, value in metrics.items():
        parent, _, key = name.rpartition("/")
        groups.setdefault(parent, {})[key] = value
    lines, done = [], set()
    for name, value in metrics.items():
        parent = name.rpartition("/")[0]
        group = groups[parent]
        if name.count("/") < 3 or len(group) <= GROUPED_OVER:
            lines.append(f"  {name:<40} {value:.4f}")
        elif parent not in done:
            done.add(parent)
            low, high = min(group, key=group.__getitem__), max(group, key=group.__getitem__)
            mean = sum(group.values()) / len(group)
            lines.append(
                f"  {parent + '/*':<40} {mean:.4f} (mean of {len(group)}; {group[low]:.4f} at "
                f"{low} to {group[high]:.4f} at {high})"
            )
    return lines


def print_summary(
    trainer: pl.Trainer, title: str, run_dir: Path, extra: Sequence[str] = ()
) -> None:
    """The metrics of the run (losses aside), its folder and any extra lines; closes W&B."""
    if not trainer.is_global_zero:
        return
    metrics = {
        k: float(v)
        for k, v in sorted(trainer.callback_metrics.items())
        if v.numel() == 1 and "/loss/" not in k and not math.isnan(float(v))
    }
    lines = ["=" * 72, title]
    lines += summary_lines(metrics)
    lines += [f"  {line}" for line in extra]
    lines.append(f"  run folder: {run_dir}")
    hint = finish_wandb(trainer.loggers)
    if hint:
        lines.append(f"  {hint}")
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)
