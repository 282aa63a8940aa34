"""Benchmark of the streamed data path (not a test): ``make bench-stream [DATA=...]``.

a. training images/s of the demo's network (``--size``, the precision this CPU runs best)
   through the Lightning Trainer, with the images held in memory (``--data.stream=false``)
   against the same images streamed from chunks (``--data.stream=true``: worker processes read
   and decode them), in alternating rounds; the CIFAR-10 JPEG copy with ``DATA=``, else a
   generated folder of 32 x 32 JPEGs;
b. the peak resident memory of a streamed training run, one epoch over generated 64 x 64
   images, at two data set sizes (``--sizes``, GB of pixels: 0.2 and 2 by default), each run
   in its own process; beside it, for contrast, the same epoch with the images in memory. The
   streamed runs' memory must not grow with the data set.

Results are printed as a table and saved under ``bench-results/<time>/stream.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

from cifar10_demo.bench import StepTimer, build, cpu_info
from litforge import ImageArrays, StreamedImageDataModule
from litforge.data.prepare import Listing, usable_cpus

CLASSES = tuple(f"class{c}" for c in range(10))


# ------------------------------------------------------------------------------- a
def training_rate(data: str, stream: bool, args: argparse.Namespace, cache: Path) -> float:
    """images/s of ``args.steps`` training steps after ``args.warmup``, through the Trainer."""
    import pytorch_lightning as pl

    from cifar10_demo.cli import SIZES

    widths, batch, _ = SIZES[args.size]
    extra = [
        f"--data.root={data}",
        f"--data.stream={str(stream).lower()}",
        f"--data.cache_dir={cache}",
        f"--data.num_workers={args.workers}",
        f"--model.widths={list(widths)}",
        f"--data.batch_size={batch}",
        "--size=null",
        "--run.time_budget=null",
        "--run.precision=null",
        f"--trainer.precision={args.precision}",
    ]
    cli = build(None, extra)
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.images / (timer.end - timer.start)


def bench_speed(data: str, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """In memory and streamed in alternating rounds (the speed of a shared machine drifts);
    the ratio is the median of the rounds' ratios."""
    memory, streamed, ratios = [], [], []
    for r in range(args.rounds):
        memory.append(training_rate(data, False, args, cache))
        streamed.append(training_rate(data, True, args, cache))
        ratios.append(streamed[-1] / memory[-1])
        print(f"   round {r + 1}: memory {memory[-1]:.0f} img/s, streamed {streamed[-1]:.0f} img/s")
    return {
        "memory_img_s": median(memory),
        "streamed_img_s": median(streamed),
        "ratio_median_of_rounds": median(ratios),
        "rounds": args.rounds,
    }


# ------------------------------------------------------------------------------- b
def generated_image(i: int, size: int) -> np.ndarray:
    """Image ``i`` of the generated set (uint8, 3 x size x size): seeded noise on a class colour."""
    rng = np.random.default_rng(i)
    colour = np.array([(i % 10) * 25, 128, 255 - (i % 10) * 25], dtype=np.int16)[:, None, None]
    noise = rng.integers(-60, 61, (3, size, size), dtype=np.int16)
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


class GeneratedReader:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, position: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from litforge.data.prepare import moments

        image = generated_image(position, self.size)
        stored = {"image": image, "label": np.int64(position % 10)}
        return stored, {"image": moments(image, image=True)}


class GeneratedSource:
    """``n`` generated images, made one at a time while the chunks are written (a project's
    own loader for a set larger than memory)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def describe(self) -> str:
        return f"generated {self.n} images of {self.size} x {self.size}"

    def scan(self) -> Listing:
        return Listing(
            n=self.n,
            fingerprint=hashlib.sha256(self.describe().encode()).hexdigest(),
            class_names=CLASSES,
            labels=torch.arange(self.n) % 10,
            fields={
                "image": {"dtype": "uint8", "shape": [3, self.size, self.size]},
                "label": {"dtype": "int64", "shape": []},
            },
            reader=GeneratedReader(self.size),
        )


class GeneratedData(StreamedImageDataModule):
    """The generated images: streamed from chunks, or made in memory (``stream=False``)."""

    name = "generated"

    def __init__(self, n: int, size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n, self.size = n, size

    def load(self) -> ImageArrays:
        images = torch.empty(self.n, 3, self.size, self.size, dtype=torch.uint8)
        for i in range(self.n):
            images[i] = torch.from_numpy(generated_image(i, self.size))
        return ImageArrays(images, torch.arange(self.n) % 10, CLASSES)

    def sources(self) -> dict[str, Any]:
        return {"train": GeneratedSource(self.n, self.size)}


def data_module(n: int, size: int, stream: bool, cache: str, workers: int) -> GeneratedData:
    return GeneratedData(
        n, size, stream=stream, cache_dir=cache, num_workers=workers, batch_size=256,
        translate=2, flip="random",
    )  # fmt: skip


def child_epoch(argv: list[str]) -> None:
    """One training epoch in this process; prints its peak resident memory as JSON."""
    import pytorch_lightning as pl

    from litforge.testing import TinyClassifier

    n, size, stream, cache, workers = argv
    torch.manual_seed(0)
    data = data_module(int(n), int(size), stream == "stream", cache, int(workers))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    trainer.fit(TinyClassifier(num_classes=10, width=8), datamodule=data)
    seconds = time.perf_counter() - start
    kib = 1024  # ru_maxrss is in KiB on Linux
    print(
        json.dumps(
            {
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1e6,
                "peak_rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                * kib
                / 1e6,
                "trained_images": trainer.global_step * 256,
                "seconds": seconds,
            }
        )
    )


def bench_memory(args: argparse.Namespace, cache: Path) -> list[dict[str, Any]]:
    rows = []
    per_image = 3 * args.image * args.image
    for size_gb in args.sizes:
        n = int(size_gb * 1e9 / per_image)
        start = time.perf_counter()
        prepared = data_module(n, args.image, True, str(cache), args.workers).prepare()
        prepare_s = time.perf_counter() - start
        on_disk = sum(p.stat().st_size for p in prepared.folder.rglob("*") if p.is_file())
        paths = ["stream", "memory"] if args.memory_contrast else ["stream"]
        # the in-memory run holds the images and, while it computes their statistics, a float
        # copy of them: about 5.5x the data at its peak (measured: 11.0 GB for 2 GB)
        if "memory" in paths and 6 * n * per_image > available_memory():
            print(f"   in memory {size_gb:.2f} GB: skipped, it would need about "
                  f"{6 * n * per_image / 1e9:.0f} GB of memory")  # fmt: skip
            paths.remove("memory")
        for path in paths:
            cmd = [sys.executable, "-m", "cifar10_demo.bench_stream", "--child-epoch",
                   str(n), str(args.image), path, str(cache), str(args.workers)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                raise SystemExit(f"the {path} run failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row = {
                "path": "streamed" if path == "stream" else "in memory",
                "data_gb": n * per_image / 1e9,
                "images": n,
                "chunks_on_disk_gb": on_disk / 1e9,
                "prepare_s": prepare_s if path == "stream" else None,
                **result,
            }
            rows.append(row)
            print(
                f"   {row['path']:9s} {row['data_gb']:5.2f} GB ({n} images): peak RSS "
                f"{row['peak_rss_mb']:.0f} MB (worker {row['peak_rss_worker_mb']:.0f} MB), "
                f"epoch {row['seconds']:.0f} s",
                flush=True,
            )
    return rows


def available_memory() -> float:
    """Bytes of memory available to a new process (Linux: MemAvailable), else unbounded."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


# ------------------------------------------------------------------------------- main
def generated_folder(root: Path, per_class: int) -> Path:
    from litforge.testing import write_image_folder

    return write_image_folder(
        root, classes=10, per_class={"train": per_class, "test": max(1, per_class // 10)},
        size=32, suffix=".jpg",
    )  # fmt: skip


def main_bench(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-epoch"]:
        child_epoch(argv[1:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="(a): an image folder, e.g. the CIFAR-10 JPEG copy")
    parser.add_argument("--only", default="a,b", help="which parts: a, b or a,b")
    parser.add_argument("--size", default="small", help="(a): the network (cli.SIZES)")
    parser.add_argument("--precision", default="auto", help="(a): auto: the fastest here")
    parser.add_argument("--steps", type=int, default=30, help="(a): timed steps a round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=1000, help="(a) without --data")
    parser.add_argument("--workers", type=int, default=max(1, usable_cpus() - 1))
    parser.add_argument("--sizes", default="0.2,2", help="(b): GB of pixels, comma-separated")
    parser.add_argument("--image", type=int, default=64, help="(b): image side in pixels")
    parser.add_argument(
        "--no-memory-contrast",
        dest="memory_contrast",
        action="store_false",
        help="(b): skip the in-memory runs (they hold the whole set: 2 GB and more)",
    )
    parser.add_argument("--cache", help="where the chunks go (default: a temporary folder)")
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    args.sizes = [float(s) for s in args.sizes.split(",")]
    only = set(args.only.split(","))
    out = Path(args.out) / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="litforge-bench-stream-"))
    cache = Path(args.cache) if args.cache else scratch / "chunks"
    info = {
        **cpu_info(),
        "cpus": usable_cpus(),
        "cpus_in_machine": os.cpu_count(),
        "date": datetime.now().isoformat(" ", "seconds"),
    }
    print(f"{info['cpu']} ({info['flags']}), {info['cpus']} CPUs; loader workers: {args.workers}")
    results: dict[str, Any] = {"machine": info, "command": " ".join(sys.argv)}
    try:
        if "a" in only:
            if args.precision == "auto":
                from cifar10_demo.cli import SIZES, _Timed, random_batch
                from litforge import choose_precision

                args.precision, why = choose_precision(
                    _Timed(SIZES[args.size][0]), random_batch(256), torch.device("cpu")
                ) if not torch.cuda.is_available() else ("bf16-mixed", "GPU")  # fmt: skip
                print(f"   precision: {args.precision} ({why})")
            data = args.data or str(generated_folder(scratch / "images", args.per_class))
            print(f"a. training images/s, in memory against streamed ({data}):", flush=True)
            results["speed"] = {**bench_speed(data, args, cache), "data": data}
        if "b" in only:
            print("b. peak resident memory of one training epoch:", flush=True)
            results["memory"] = bench_memory(args, cache)
    finally:
        if not args.cache:
            shutil.rmtree(scratch, ignore_errors=True)
    (out / "stream.json").write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"saved: {out / 'stream.json'}")


def print_table(results: dict[str, Any]) -> None:
    print("=" * 78)
    if "speed" in results:
        s = results["speed"]
        print(
            f"training images/s: in memory {s['memory_img_s']:.0f}, streamed "
            f"{s['streamed_img_s']:.0f}: streamed/memory {s['ratio_median_of_rounds']:.2f} "
            f"(median of {s['rounds']} rounds)"
        )
    if "memory" in results:
        print(f"{'path':10s} {'data GB':>8s} {'images':>8s} {'peak RSS MB':>12s} "
              f"{'worker MB':>10s} {'epoch s':>8s}")  # fmt: skip
        for row in results["memory"]:
            print(
                f"{row['path']:10s} {row['data_gb']:8.2f} {row['images']:8d} "
                f"{row['peak_rss_mb']:12.0f} {row['peak_rss_worker_mb']:10.0f} "
                f"{row['seconds']:8.1f}"
            )
        streamed = [r for r in results["memory"] if r["path"] == "streamed"]
        if len(streamed) >= 2:
            growth = streamed[-1]["peak_rss_mb"] / streamed[0]["peak_rss_mb"]
            data = streamed[-1]["data_gb"] / streamed[0]["data_gb"]
            print(f"streamed: {data:.0f}x the data, {growth:.2f}x the peak RSS")
    print("=" * 78)


if __name__ == "__main__":
    main_bench()
