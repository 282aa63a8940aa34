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


def save_predictions(batches: Sequence[Any], run_dir: Path) -> Path | None:
    """Joins the predicted batches and saves ``Struct.tensors()`` (fields and derived values,
    e.g. logits, probs, pred) to ``<run dir>/predictions.pt``, loadable with weights_only=True."""
    if batches and isinstance(batches[0], list):  # several dataloaders: keep the first
        batches = batches[0]
    if not batches or not isinstance(batches[0], Struct):
        return None
    joined = type(batches[0]).collate(batches)
    path = run_dir / "predictions.pt"
    torch.save({k: v.detach().cpu() for k, v in joined.tensors().items()}, path)
    return path


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
    lines += [f"  {k:<40} {v:.4f}" for k, v in metrics.items()]
    lines += [f"  {line}" for line in extra]
    lines.append(f"  run folder: {run_dir}")
    hint = finish_wandb(trainer.loggers)
    if hint:
        lines.append(f"  {hint}")
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)
