"""The GPU benchmark: ``make bench-gpu [DATA=...]`` (about 5 minutes on one H100-class GPU).

For each of ``--seeds`` seeds, the demo's GPU recipe (configs/default.yaml) trains through the
Lightning Trainer; the training time (from the first to the last step, the device synchronised),
the test accuracy with TTA and the peak GPU memory are recorded. Then (a) of ``make bench``:
images/s through the Trainer against a raw PyTorch loop with the same model, data and precision.
Writes ``seeds.csv`` and ``summary.csv`` under ``bench-results/<time>-gpu/`` and prints the mean
and spread. On a machine without a GPU it runs the same code on the CPU (for its tests: pass
tiny settings, e.g. ``--limit 512 --seeds 2 -- --model.widths=[8,16,16] --trainer.max_epochs=1``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from cifar10_demo.bench import bench_trainer_vs_raw, build, cpu_info, sync


class TrainClock(pl.Callback):
    """Seconds from the first training step to the end of the last, the device synchronised."""

    def __init__(self) -> None:
        self.start = self.seconds = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        sync(pl_module.device)
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        sync(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def one_seed(data: str | None, seed: int, extra: list[str]) -> dict[str, float]:
    cli = build(data, [f"--seed_everything={seed}", f"--data.seed={seed}", *extra])
    clock = TrainClock()
    cli.trainer.callbacks.append(clock)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    accuracy = float(cli.trainer.callback_metrics["test/cifar10/accuracy"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"seed": seed, "train_seconds": clock.seconds, "accuracy": accuracy, "peak_gib": peak}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="CIFAR-10 image folder (default: the official download)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="images per split (tests)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps of Trainer vs raw")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("extra", nargs="*", help="config overrides, e.g. --trainer.max_epochs=1")
    args, unknown = parser.parse_known_args(argv)
    extra = [*args.extra, *unknown, *([f"--data.limit={args.limit}"] if args.limit else [])]
    # The GPU recipe as it is (no CPU preset, no time budget); a run folder per seed, no logger.
    extra = ["--run.loggers=[]", "--trainer.enable_progress_bar=false", *extra]
    out = Path(args.out) / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-gpu")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_info()["cpu"]
    rows = []
    for seed in range(args.seeds):
        row = one_seed(args.data, seed, extra)
        rows.append(row)
        print(
            f"seed {seed}: {row['accuracy']:.4f} in {row['train_seconds']:.2f} s "
            f"(peak {row['peak_gib']:.2f} GiB)",
            flush=True,
        )
    with open(out / "seeds.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cli = build(args.data, extra)
    cli.datamodule.trainer = cli.trainer
    cli.datamodule.setup("fit")
    ratio = bench_trainer_vs_raw(cli, args.steps, warmup=5, rounds=3)
    acc = [r["accuracy"] for r in rows]
    secs = [r["train_seconds"] for r in rows]
    spread = statistics.stdev if len(rows) > 1 else (lambda _: 0.0)
    summary = {
        "device": device,
        "seeds": len(rows),
        "accuracy_mean": statistics.mean(acc),
        "accuracy_std": spread(acc),
        "train_seconds_mean": statistics.mean(secs),
        "train_seconds_std": spread(secs),
        "runs_at_or_above_94": sum(a >= 0.94 for a in acc),
        "peak_gib": max(r["peak_gib"] for r in rows),
        **{f"trainer_vs_raw_{k}": v for k, v in ratio.items()},
    }
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary))
        writer.writeheader()
        writer.writerow(summary)
    for key, value in summary.items():
        print(f"{key:<38}{value}")
    print(f"saved: {out}/")
    return rows


if __name__ == "__main__":
    main()
