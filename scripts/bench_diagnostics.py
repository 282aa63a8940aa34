"""What the diagnostics cost: fit time with and without them, side by side, as a ratio.

    make bench-diagnostics                       # template and rows, 5 rounds each
    make bench-diagnostics ARGS="--every-epoch"  # also drawing every validation, for contrast
    .venv/bin/python scripts/bench_diagnostics.py --tasks template --rounds 5

Each task is fitted with its diagnostics as configured (their defaults: validation pictures only
while they cost under 5% of the fit's time) and without them (the same callbacks less every
diagnostic), the two alternating within each round (with first in even rounds, without first
in odd ones) after one warm-up fit of each; the fit time is trainer.fit's, from its start to its
end, measured by a callback. The test after fit (and its pictures) is timed apart: it is not
part of the fit. The tasks:

    template  projects/template with its default config (4 epochs of 16 x 16 images; Extremes,
              Uncertainty, ConfusionMatrix)
    rows      the test kit's feature rows configured as the tabular recipe
              (docs/recipes/tabular-regression): 30 epochs, Extremes k=8 and Regression, 4,000
              rows of 8 features

Prints one line per fit and, per task, the median fit times, their ratio (with / without) and
the number of media files each run kept. Not a test: a figure to read on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml

DIAGNOSTICS = ("Extremes", "Uncertainty", "ConfusionMatrix", "Regression")
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--run.loggers=[csv]",
]


class FitClock(pl.Callback):
    """Records the seconds of each fit (on_fit_start to on_fit_end) and of each test."""

    times: dict[str, float] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        FitClock.times["fit"] = time.perf_counter() - self._fit

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test = time.perf_counter()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        FitClock.times["test"] = time.perf_counter() - self._test


CLOCK = {"class_path": f"{__name__}.FitClock"}


def every_epoch(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "init_args": {**spec.get("init_args", {}), "val_every": 1}}


def is_diagnostic(spec: dict[str, Any]) -> bool:
    return str(spec.get("class_path", "")).rsplit(".", 1)[-1] in DIAGNOSTICS


def tasks() -> dict[str, tuple[Callable[[list[str]], Any], list[dict[str, Any]], list[str]]]:
    """name -> (main, callbacks with diagnostics, other fit arguments)."""
    from litforge.testing import regression
    from template_project.cli import project

    config: dict[str, Any] = {}
    for file in project.config_files():
        config = {**config, **(yaml.safe_load(Path(file).read_text()) or {})}
    template_callbacks = config["trainer"]["callbacks"]
    rows_callbacks = [
        {"class_path": "litforge.Extremes", "init_args": {"k": 8}},
        {"class_path": "litforge.Regression"},
        {"class_path": "litforge.StopOnNonFinite"},
    ]
    rows_args = [
        "--trainer.max_epochs=30",
        "--data.n=4000",
        "--data.n_features=8",
        "--data.val_size=0.15",
        "--data.test_size=0.15",
        "--data.batch_size=32",
        "--data.eval_batch_size=256",
        "--model.hidden=64",
    ]
    return {
        "template": (project.main, template_callbacks, []),
        "rows": (regression.main, rows_callbacks, rows_args),
    }


def fit(
    main: Callable[[list[str]], Any], callbacks: list[dict[str, Any]], args: list[str], root: Path
) -> dict[str, float]:
    FitClock.times = {}
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        cli = main(
            [
                "fit",
                f"--run.root={root}",
                *QUIET,
                f"--trainer.callbacks={json.dumps([*callbacks, CLOCK])}",
                *args,
            ]
        )
    media = Path(cli.run_dir) / "media"
    files = sum(1 for p in media.rglob("*") if p.is_file()) if media.exists() else 0
    return {**FitClock.times, "files": files}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="template,rows", help="comma-separated: template, rows")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up")
    parser.add_argument(
        "--every-epoch",
        action="store_true",
        help="a third variant: every diagnostic drawing every validation (val_every: 1), "
        "the cost the default avoids",
    )
    opts = parser.parse_args()
    for name in ("pytorch_lightning", "lightning_fabric", "litforge"):
        logging.getLogger(name).setLevel(logging.ERROR)
    known = tasks()
    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-diagnostics-") as tmp:
        for name in opts.tasks.split(","):
            main_fn, callbacks, args = known[name]
            variants = {
                "with": callbacks,
                "without": [c for c in callbacks if not is_diagnostic(c)],
            }
            if opts.every_epoch:
                variants["every"] = [every_epoch(c) if is_diagnostic(c) else c for c in callbacks]
            times: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for round_ in range(opts.rounds + 1):  # round 0: warm-up, not counted
                shift = round_ % len(variants)  # each variant first in turn
                order = [*list(variants)[shift:], *list(variants)[:shift]]
                for variant in order:
                    got = fit(main_fn, variants[variant], args, Path(tmp) / name / variant)
                    label = "warm-up" if round_ == 0 else f"round {round_}"
                    print(
                        f"{name:<9} {label:<8} {variant:<8} fit {got['fit']:7.2f} s   "
                        f"test {got.get('test', 0):5.2f} s   media files {got['files']:.0f}",
                        flush=True,
                    )
                    if round_:
                        times[variant].append(got)
            fit_with = statistics.median(t["fit"] for t in times["with"])
            fit_without = statistics.median(t["fit"] for t in times["without"])
            ratio = fit_with / fit_without
            print(
                f"{name}: median fit {fit_with:.2f} s with diagnostics, {fit_without:.2f} s "
                f"without: ratio {ratio:.3f} ({100 * (ratio - 1):+.1f}%); media files kept "
                f"{times['with'][-1]['files']:.0f} with, {times['without'][-1]['files']:.0f} "
                f"without; test after fit {statistics.median(t.get('test', 0) for t in times['with']):.2f} s "
                f"with, {statistics.median(t.get('test', 0) for t in times['without']):.2f} s without",
                flush=True,
            )
            if opts.every_epoch:
                fit_every = statistics.median(t["fit"] for t in times["every"])
                print(
                    f"{name}: drawing every validation (val_every: 1): median fit {fit_every:.2f} s, "
                    f"ratio {fit_every / fit_without:.3f} to without; media files kept "
                    f"{times['every'][-1]['files']:.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
