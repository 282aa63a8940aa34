"""``python -m <project> repeat --seeds S [--workers N] [-- fit args]``: one config trained with
seeds 0..S-1 into ``<root>/<project>/repeats/<time>-<id>/seed-<s>/`` (``--seed_everything=s``,
and ``--data.seed=s`` when the data module takes a seed: split, order and augmentation vary
too), then ``summary.csv`` and a table of each test metric's mean, sample standard deviation
and Student-t 95% interval over the seeds that finished.

``--group DIR`` continues a group: seeds whose results.json exists are not run again, and a
seed that was cut off resumes from its ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import csv
import json
import math
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litforge.experiments.launch import Job, wait_for, worker_env
from litforge.experiments.stats import Spread, spread


def seed_args(seed: int, data_seed: bool) -> list[str]:
    return [f"--seed_everything={seed}", *([f"--data.seed={seed}"] if data_seed else [])]


def run_seeds(
    seeds: Sequence[int],
    folder: Path,
    module_args: list[str],
    extra: list[str],
    data_seed: bool,
    group: str,
    launcher: Any,
    workers: int,
    slots: list[str],
) -> dict[int, int]:
    """Runs each seed (``workers`` at a time); returns each seed's exit status."""
    todo: queue.Queue[int] = queue.Queue()
    for s in seeds:
        todo.put(s)
    codes: dict[int, int] = {}
    stop = threading.Event()

    def work(index: int) -> None:
        env = worker_env(index, workers, slots)
        while not stop.is_set():
            try:
                seed = todo.get_nowait()
            except queue.Empty:
                return
            run_dir = folder / f"seed-{seed}"
            last = run_dir / "checkpoints" / "last.ckpt"  # a seed cut off: it goes on from there
            args = [
                *module_args,
                "fit",
                f"--run.dir={run_dir}",
                f"--run.wandb_group={group}",
                *extra,
                *seed_args(seed, data_seed),
                *([f"--ckpt_path={last}"] if last.is_file() else []),
            ]
            print(f"[worker {index}] seed {seed}: {run_dir}", flush=True)
            started = time.time()
            code = launcher.run(Job(args, env, run_dir / "train.log"), stop)
            codes[seed] = code
            how = (
                "done"
                if code == 0
                else f"failed (exit status {code}); log: {run_dir / 'train.log'}"
            )
            print(
                f"[worker {index}] seed {seed}: {how} ({time.time() - started:.0f} s)", flush=True
            )

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    wait_for(threads, stop)
    return codes


def read_results(folder: Path, seeds: Sequence[int]) -> dict[int, dict[str, float]]:
    """Each seed's ``test/...`` metrics from its results.json, for the seeds that have one."""
    out = {}
    for s in seeds:
        path = folder / f"seed-{s}" / "results.json"
        if path.is_file():
            results = json.loads(path.read_text())
            out[s] = {
                k: float(v)
                for k, v in results.items()
                if k.startswith("test/") and isinstance(v, int | float)
            }
    return out


def summarize(results: dict[int, dict[str, float]]) -> dict[str, tuple[Spread, dict[int, float]]]:
    metrics = sorted({k for r in results.values() for k in r})
    out = {}
    for m in metrics:
        values = {s: r[m] for s, r in sorted(results.items()) if m in r}
        out[m] = (spread(list(values.values())), values)
    return out


def write_summary(
    path: Path, summary: dict[str, tuple[Spread, dict[int, float]]], seeds: Sequence[int]
) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["metric", "n", "mean", "std", "ci95_low", "ci95_high", *(f"seed-{s}" for s in seeds)]
        )
        for m, (sp, values) in summary.items():
            out.writerow(
                [m, sp.n, sp.mean, _blank(sp.std), _blank(sp.low), _blank(sp.high)]
                + [values.get(s, "") for s in seeds]
            )


def _blank(x: float) -> Any:
    return "" if math.isnan(x) else x


def table(summary: dict[str, tuple[Spread, dict[int, float]]]) -> str:
    head = ["metric", "mean", "std", "95% interval", "n"]
    rows = []
    for m, (sp, _) in summary.items():
        if "/loss/" in m:
            continue
        interval = "" if math.isnan(sp.low) else f"[{sp.low:.4f}, {sp.high:.4f}]"
        std = "" if math.isnan(sp.std) else f"{sp.std:.4f}"
        rows.append([m, f"{sp.mean:.4f}", std, interval, str(sp.n)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *rows])
