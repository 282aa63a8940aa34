"""Benchmarks of the CIFAR-10 demo (not tests): ``make bench [DATA=...]``.

a. images/s of training steps in a raw PyTorch loop, through a bare Lightning Trainer (no
   logger, progress bar or checkpointing) and through the project's ``fit`` with every default
   of a run on, with the same model, data, optimiser and precision, in alternating rounds in one
   process; the host time the Trainer and core add per step;
b. images/s of the device-side batch augmentation against a torchvision DataLoader with PIL
   transforms and 2 worker processes, on the same images;
c. time to accuracy: test accuracy against training wall time, per epoch, of a default run
   (the clock stops while the test set is evaluated);
d. the default recipe (``python -m cifar10_demo fit`` with ``--run.time_budget``) against
   airbench94's published recipe as a plain PyTorch loop (``cifar10_demo.reference``), both
   given the same wall budget, one after the other, each in its own process;
e. training images/s of networks of several widths (``--widths``), in the precision the CPU
   preset would choose, on random images, in alternating rounds: what the size table rests on;
f. seconds per training step of one network on the CPU by precision and memory layout (fp32,
   bf16 autocast, bf16 weights; channels-last or not; optionally torch.compile), in
   alternating rounds: whether bf16 pays on this CPU (its AMX kernels: ``ONEDNN_VERBOSE=1``).

Results are printed as a table and saved under ``bench-results/<time>/`` (CSV and PNG).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
import yaml

from cifar10_demo.cli import main
from litforge import DeviceLoader, ImageTransform


def build(data: str | None, extra: list[str]) -> Any:
    """The default model and data module (with the device's presets), set up on the device."""
    args = ["--run.loggers=[]", "--run.root=/tmp/litforge-bench-runs", *extra]
    if data:
        args.append(f"--data.root={data}")
    return main(args, run=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------- a
class StepTimer(pl.Callback):
    """Times the training steps after the first ``warmup``; with ``steps``, stops the fit after
    ``steps`` timed steps (a run whose step count a time budget planned included), the clock
    stopped at the end of the last one (else at the end of training)."""

    def __init__(self, warmup: int, steps: int | None = None) -> None:
        self.warmup, self.steps = warmup, steps
        self.start, self.images, self.end, self.epoch_ends = 0.0, 0, 0.0, 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()
        if trainer.global_step >= self.warmup:
            self.images += len(batch)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if self.steps is not None and trainer.global_step == self.warmup + self.steps:
            sync(pl_module.device)
            self.end = time.perf_counter()
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self.start and not self.end:
            self.epoch_ends += 1  # an epoch's end inside the timed steps

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self.end:
            sync(pl_module.device)
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / (self.end - self.start)


def raw_loop_rate(cli: Any, precision: str, steps: int, warmup: int) -> float:
    """images/s of a plain PyTorch loop: the same model class, data loader, optimiser, schedule
    and autocast as the Trainer run, nothing else."""
    device = cli.datamodule.splits["train"].images.device
    raw = copy.deepcopy(cli.model).to(device)  # a fresh copy: the same start as the Trainer's
    optimizer, scheduler = raw.build_optimizer(warmup + steps)
    loader = cli.datamodule.train_dataloader()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in precision)
    raw.train()
    images, step, start = 0, 0, 0.0
    while step < warmup + steps:
        for batch in loader:
            if step == warmup:
                sync(device)
                start = time.perf_counter()
            with autocast:
                loss = raw.compute_loss(batch, raw(batch)).total
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if step >= warmup:
                images += len(batch)
            step += 1
            if step >= warmup + steps:
                break
    sync(device)
    return images / (time.perf_counter() - start)


class BareModule(pl.LightningModule):
    """The model's network, loss, optimizer and schedule in a LightningModule of nothing else:
    a training step returns the loss; no logging, no metrics, no hooks of its own."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.model.compute_loss(batch, self.model(batch)).total

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Never run (``limit_val_batches=0``): without it Lightning warns of the data
        module's validation loader."""

    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.model.build_optimizer(
            lambda: int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def bare_lightning_rate(cli: Any, steps: int, warmup: int) -> float:
    """images/s of the same training through a bare Lightning Trainer (no logger, progress bar,
    checkpointing or model summary) fitting ``BareModule``."""
    timer = StepTimer(warmup, steps)
    trainer = pl.Trainer(
        accelerator=cli.trainer.accelerator,
        devices=1,
        precision=cli.trainer.precision,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(BareModule(copy.deepcopy(cli.model)), datamodule=cli.datamodule)
    return timer.rate


# The core side's run: the budget guard checks a plan (an hour, far from its limit), the timer
# ends the run, and the test after it (no part of a training step) is left out.
CORE_RUN = [
    "--run.time_budget=3600",
    "--run.test_after_fit=false",
    "--run.root=/tmp/litforge-bench-runs",
]


def core_fit_rate(data: str | None, extra: list[str], steps: int, warmup: int) -> StepTimer:
    """The project's ``fit`` command through core, in this process, every default of a run on
    (its loggers, progress bar, checkpoints, budget guard, RNG state, diagnostics, non-finite
    check, test after fit): the timer stops it after ``warmup + steps`` steps."""
    timer = f'{{"class_path": "cifar10_demo.bench.StepTimer", "init_args": {{"warmup": {warmup}, "steps": {steps}}}}}'
    args = ["fit", *([f"--data.root={data}"] if data else []), *extra, *CORE_RUN]
    logging.disable(logging.INFO)  # the run's own lines, written by handlers set up at import
    try:
        with (
            open(os.devnull, "w") as quiet,
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
        ):
            cli = main([*args, f"--trainer.callbacks+={timer}"])
    finally:
        logging.disable(logging.NOTSET)
    # by name: run as ``python -m cifar10_demo.bench``, this module's class is __main__'s
    (found,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "StepTimer"]
    return found


def bench_trainer_vs_raw(
    cli: Any,
    steps: int,
    warmup: int,
    rounds: int = 3,
    data: str | None = None,
    extra: list[str] | None = None,
) -> dict[str, float]:
    """A raw loop, a bare Lightning Trainer and (given ``extra``, the run's settings) the
    project's ``fit`` through core, in alternating rounds (raw, Lightning, core, raw again,
    ...): the speed of a shared machine drifts, and alternating spreads the drift over every
    side. The host time each adds per step over the raw loop and the ratios are medians of the
    per-round values. The benchmark's noise is measured with it: ``raw_repeat_ms_per_step`` is
    the median of how far the two raw runs of a round differ (the same code twice), the size of
    a difference between sides that this machine cannot tell from nothing."""
    from statistics import median

    precision = str(cli.trainer.precision)
    batch = cli.datamodule.batch_size
    rates: dict[str, list[float]] = {"raw": [], "lightning": [], "core": []}
    again: list[float] = []
    for r in range(rounds):
        rates["raw"].append(raw_loop_rate(cli, precision, steps, warmup))
        rates["lightning"].append(bare_lightning_rate(cli, steps, warmup))
        if extra is not None:
            timer = core_fit_rate(data, extra, steps, warmup)
            rates["core"].append(timer.rate)
            if timer.epoch_ends and r == 0:
                print(f"   note: {timer.epoch_ends} epoch end(s) among the timed steps", flush=True)
        again.append(raw_loop_rate(cli, precision, steps, warmup))
        print(
            "   round "
            + str(r + 1)
            + ": "
            + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items() if v)
            + f", raw again {again[-1]:,.0f} images/s",
            flush=True,
        )
    out: dict[str, float] = {}
    for side, found in rates.items():
        if not found:
            continue
        out[f"{side}_img_s"] = median(found)
        if side == "raw":
            continue
        ms = [1000 * batch * (1 / s - 1 / raw) for s, raw in zip(found, rates["raw"])]
        ratios = [s / raw for s, raw in zip(found, rates["raw"])]
        out[f"{side}_added_ms_per_step"] = median(ms)
        out[f"{side}_vs_raw_ratio"] = median(ratios)
        out[f"{side}_vs_raw_ratio_min_round"] = min(ratios)
        out[f"{side}_vs_raw_ratio_max_round"] = max(ratios)
    out["raw_repeat_ms_per_step"] = median(
        1000 * batch * abs(1 / a - 1 / r) for a, r in zip(again, rates["raw"])
    )
    if rates["core"]:
        out["core_minus_lightning_ms_per_step"] = median(
            1000 * batch * (1 / c - 1 / b) for c, b in zip(rates["core"], rates["lightning"])
        )
        print(
            f"   core adds {out['core_minus_lightning_ms_per_step']:.2f} ms a step to bare "
            f"Lightning's {out['lightning_added_ms_per_step']:.2f} ms (median of {rounds} rounds); "
            f"two raw runs of one round differ by {out['raw_repeat_ms_per_step']:.2f} ms "
            "(this machine's noise)",
            flush=True,
        )
    # the names bench_gpu's summary has kept: the Trainer is the bare one
    out["ratio_median_of_rounds"] = out["lightning_vs_raw_ratio"]
    return out


# ------------------------------------------------------------------------------- b
class PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        from PIL import Image

        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        self.labels, self.transform = labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def bench_augmentation(cli: Any, n_images: int) -> dict[str, float]:
    from torchvision import transforms

    dm = cli.datamodule
    arrays = dm.splits["train"].subset(slice(0, n_images))
    images, labels = arrays.images, arrays.labels
    loader = DeviceLoader(
        arrays,
        dm.make_example,
        batch_size=dm.batch_size,
        shuffle=True,
        transform=ImageTransform(dm.mean, dm.std, translate=dm.translate, flip="random"),
    )
    next(iter(loader))
    sync(images.device)
    start = time.perf_counter()
    seen = sum(len(b) for b in loader)
    sync(images.device)
    device_rate = seen / (time.perf_counter() - start)

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=dm.translate, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(dm.mean.tolist(), dm.std.tolist()),
        ]
    )
    dataset = PILDataset(images.cpu(), labels.cpu(), transform)
    dl = torch.utils.data.DataLoader(
        dataset, batch_size=dm.batch_size, shuffle=True, num_workers=2, persistent_workers=False
    )
    start = time.perf_counter()
    seen = 0
    for x, _ in dl:  # includes the workers' start, as a training epoch would
        seen += len(x.to(images.device))
    sync(images.device)
    loader_rate = seen / (time.perf_counter() - start)
    return {
        "device_img_s": device_rate,
        "dataloader_img_s": loader_rate,
        "ratio": device_rate / loader_rate,
    }


# ------------------------------------------------------------------------------- c
class TimeToAccuracy(pl.Callback):
    """At each epoch end: the training wall time so far and the test accuracy (one view)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.train_time = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        sync(pl_module.device)
        self.t0 = time.perf_counter()

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        sync(pl_module.device)
        self.train_time += time.perf_counter() - self.t0
        dm = trainer.datamodule  # type: ignore[attr-defined]
        was_training = pl_module.training
        pl_module.eval()
        correct = 0
        with torch.autocast(
            pl_module.device.type, dtype=torch.bfloat16, enabled="bf16" in str(trainer.precision)
        ):
            for batch in dm.test_dataloader():
                correct += int((pl_module.logits(batch.image).argmax(-1) == batch.label).sum())
        pl_module.train(was_training)
        accuracy = correct / len(dm.splits["test"])
        self.rows.append(
            {
                "epoch": trainer.current_epoch + 1,
                "train_seconds": self.train_time,
                "test_accuracy": accuracy,
            }
        )
        print(
            f"  epoch {trainer.current_epoch + 1}: {self.train_time:.1f} s, test accuracy {accuracy:.4f} (one view)",
            flush=True,
        )


def bench_time_to_accuracy(
    data: str | None, extra: list[str]
) -> tuple[list[dict[str, float]], dict[str, float]]:
    start = time.perf_counter()
    cli = build(data, extra)
    tta = TimeToAccuracy()
    cli.trainer.callbacks.append(tta)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    final = {
        k: float(v)
        for k, v in cli.trainer.callback_metrics.items()
        if k.startswith("test/") and v.numel() == 1
    }
    final["total_wall_seconds"] = time.perf_counter() - start
    final["train_seconds"] = tta.train_time
    return tta.rows, final


# ------------------------------------------------------------------------------- d
def cpu_info() -> dict[str, str]:
    """The CPU's model name and the flags that decide its speed here."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = set(
        next(
            (
                line.split(":", 1)[1].split()
                for line in text.splitlines()
                if line.startswith("flags")
            ),
            [],
        )
    )
    wanted = sorted(f for f in flags if f in ("avx2", "avx512_bf16") or f.startswith("amx"))
    return {"cpu": model, "flags": " ".join(wanted) or "none"}


def bench_budget(
    data: str | None,
    budget: float,
    out: Path,
    extra: list[str],
    reference_extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Both recipes, the same budget, one after the other; each row: accuracy, wall, choices."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LITFORGE_RUN_DIR", None)
    runs = out / "runs"
    ours_cmd = [
        sys.executable,
        "-m",
        "cifar10_demo",
        "fit",
        f"--run.time_budget={budget:g}",
        "--run.loggers=[csv]",
        f"--run.root={runs}",
        "--trainer.enable_progress_bar=false",
        *([f"--data.root={data}"] if data else []),
        *extra,
    ]
    ref_cmd = [sys.executable, "-m", "cifar10_demo.reference", f"--budget={budget:g}"]
    ref_cmd += [*([f"--data={data}"] if data else []), *reference_extra]
    rows = []
    for name, cmd in (("litforge default", ours_cmd), ("airbench94 reference loop", ref_cmd)):
        print(f"   {name}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        (out / f"{name.split()[0]}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed ({done.returncode}); see {out / name.split()[0]}.log")
        if name.startswith("litforge"):
            run_dir = sorted((runs / "cifar10").iterdir())[-1]
            results = json.loads((run_dir / "results.json").read_text())
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            steps = int(results.get("step") or config["trainer"]["max_steps"])  # as trained
            row = {
                "accuracy": results["test/cifar10/accuracy"],
                "precision": config["trainer"]["precision"],
                "network": f"{config.get('size')} {config['model']['widths']}",
                "batch": config["data"]["batch_size"],
                "steps": steps,
            }
        else:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row = {
                "accuracy": result["accuracy"],
                "precision": result["precision"],
                "network": f"airbench94 {result['widths']}",
                "batch": result["batch"],
                "steps": result["steps"],
            }
        rows.append({"recipe": name, **row, "wall_seconds": wall, "budget": budget, **cpu_info()})
    return rows


# ------------------------------------------------------------------------------- main
def bench_widths(
    widths: list[tuple[int, int, int]], batch: int, rounds: int
) -> list[dict[str, Any]]:
    """Training images/s of each network (median of ``rounds`` alternating rounds, each the
    least disturbed of 3 steps): the same batch of random images, the same precision."""
    from statistics import median

    from cifar10_demo.cli import _Timed, random_batch
    from litforge import choose_precision, time_train_steps

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    example = random_batch(batch)
    precision, why = choose_precision(_Timed(widths[0]), example, device)
    print(f"   precision: {precision} ({why})", flush=True)
    rates: dict[tuple[int, int, int], list[float]] = {w: [] for w in widths}
    for _ in range(rounds):
        for w in widths:
            rates[w].append(batch / time_train_steps(_Timed(w), example, device, precision))
    return [
        {
            "widths": "/".join(map(str, w)),
            "images_per_s": median(r),
            "relative": median(r) / median(rates[widths[0]]),
            "batch": batch,
            "precision": precision,
            **cpu_info(),
        }
        for w, r in rates.items()
    ]


# ------------------------------------------------------------------------------- f
PRECISIONS = ("fp32-cl", "bf16-autocast-cl", "bf16-autocast-nchw", "bf16-weights-cl")


def precision_step(mode: str, widths: tuple[int, int, int], batch: int) -> Any:
    """One training step (forward, loss, backward, Nesterov SGD) of the demo's network on
    random images of CIFAR-10's shape, in ``mode``: fp32 or bf16 (autocast over fp32 weights,
    or bf16 weights), channels-last ('cl') or not ('nchw'); '-compile' adds torch.compile.
    Returns the step and the network it trains."""
    from cifar10_demo.model import Net

    torch.manual_seed(0)
    net = Net(widths, 24, 0.4, 10, 1 / 9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if "-cl" in mode:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    if "bf16-weights" in mode:
        net, x = net.to(torch.bfloat16), x.to(torch.bfloat16)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    forward = torch.compile(net) if mode.endswith("-compile") else net
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="autocast" in mode)

    def step() -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, net


def bench_precisions(
    modes: list[str], widths: tuple[int, int, int], batch: int, rounds: int, steps: int
) -> list[dict[str, Any]]:
    """Seconds per training step of each mode, in alternating rounds of ``steps`` steps (after
    one untimed step: a compile's), and the speed against the first mode: median of rounds."""
    from statistics import median

    fns, first = {}, {}
    for mode in modes:
        fns[mode] = precision_step(mode, widths, batch)[0]
        start = time.perf_counter()
        fns[mode]()
        first[mode] = time.perf_counter() - start
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in modes:
            start = time.perf_counter()
            for _ in range(steps):
                fns[mode]()
            times[mode].append((time.perf_counter() - start) / steps)
        print(f"   round {r + 1}: " + ", ".join(f"{m} {t[-1]:.3f} s" for m, t in times.items()))
    base = times[modes[0]]
    return [
        {
            "mode": m,
            "s_per_step": median(t),
            "speed": median(b / x for b, x in zip(base, t)),
            "speed_min_round": min(b / x for b, x in zip(base, t)),
            "speed_max_round": max(b / x for b, x in zip(base, t)),
            "first_step_s": first[m],
            "widths": "/".join(map(str, widths)),
            "batch": batch,
            **cpu_info(),
        }
        for m, t in times.items()
    ]


def main_bench(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a local image-folder copy (default: the official download)")
    parser.add_argument("--only", default="a,b,c", help="which benchmarks, e.g. a,b or d")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for each run of (d)")
    parser.add_argument(
        "--seed", type=int, default=0, help="(d): both recipes' seed (weights, data order)"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps for (a)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for (a)")
    parser.add_argument("--aug-images", type=int, default=10000, help="images for (b)")
    parser.add_argument(
        "--widths",
        default="32/64/128,64/128/128,64/128/256,48/128/256,64/256/256",
        help="networks for (e): comma-separated block widths",
    )
    parser.add_argument("--batch", type=int, default=512, help="batch for (e) and (f)")
    parser.add_argument(
        "--modes",
        default=",".join(PRECISIONS),
        help="(f): precisions and layouts, the first the reference ('-compile' adds compile)",
    )
    parser.add_argument("--network", default="64/128/256", help="(f): the network's widths")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument(
        "extra", nargs="*", help="config overrides for the run, e.g. --trainer.max_epochs=2"
    )
    args, unknown = parser.parse_known_args(argv)
    extra = [*args.extra, *unknown]
    out = Path(args.out) / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    table: list[tuple[str, str, float]] = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if only & {"a", "b"}:
        cli = build(args.data, extra)
        cli.datamodule.trainer = cli.trainer
        cli.datamodule.setup("fit")
        if "a" in only:
            print("a. Trainer vs raw loop ...", flush=True)
            print(
                f"   {cpu_info()['cpu']} ({cpu_info()['flags']}), batch {cli.datamodule.batch_size}"
            )
            found = bench_trainer_vs_raw(
                cli, args.steps, args.warmup, args.rounds, args.data, extra
            )
            for k, v in found.items():
                table.append(("a", k, v))
        if "b" in only:
            print("b. device augmentation vs DataLoader(PIL, 2 workers) ...", flush=True)
            for k, v in bench_augmentation(cli, args.aug_images).items():
                table.append(("b", k, v))
    if "c" in only:
        print("c. time to accuracy ...", flush=True)
        rows, final = bench_time_to_accuracy(args.data, extra)
        with open(out / "time_to_accuracy.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.plot(
            [r["train_seconds"] for r in rows],
            [r["test_accuracy"] for r in rows],
            "o-",
            label="one view, per epoch",
        )
        if "test/cifar10/accuracy" in final:
            ax.plot(
                [final["train_seconds"]],
                [final["test/cifar10/accuracy"]],
                "r*",
                ms=12,
                label="final, with TTA",
            )
        ax.set(
            xlabel="training wall time (s)",
            ylabel="test accuracy",
            title=f"CIFAR-10 time to accuracy ({device})",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "time_to_accuracy.png", dpi=100)
        for k, v in final.items():
            table.append(("c", k, v))
    if "d" in only:
        print(
            f"d. default recipe vs airbench94 reference loop, {args.budget:g} s each ...",
            flush=True,
        )
        seeded = [f"--seed_everything={args.seed}", f"--data.seed={args.seed}"]
        rows_d = bench_budget(
            args.data, args.budget, out, [*seeded, *extra], (f"--seed={args.seed}",)
        )
        with open(out / "budget.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_d[0]))
            writer.writeheader()
            writer.writerows(rows_d)
        print(
            f"\n{'recipe':<28}{'accuracy':>9}{'wall s':>8}  {'precision':<11}{'network':<22}steps"
        )
        for r in rows_d:
            print(
                f"{r['recipe']:<28}{r['accuracy']:>9.4f}{r['wall_seconds']:>8.1f}  "
                f"{r['precision']:<11}{r['network']:<22}{r['steps']}"
            )
        print(f"{rows_d[0]['cpu']} ({rows_d[0]['flags']})")
        for r in rows_d:
            table.append(("d", f"{r['recipe']} accuracy", r["accuracy"]))
            table.append(("d", f"{r['recipe']} wall_seconds", r["wall_seconds"]))
    if "e" in only:
        print("e. training images/s by network width ...", flush=True)
        nets = [tuple(int(c) for c in w.split("/")) for w in args.widths.split(",")]
        rows_e = bench_widths(nets, args.batch, args.rounds)  # type: ignore[arg-type]
        with open(out / "widths.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_e[0]))
            writer.writeheader()
            writer.writerows(rows_e)
        print(f"\n{'widths':<14}{'images/s':>10}{'relative':>10}")
        for r in rows_e:
            print(f"{r['widths']:<14}{r['images_per_s']:>10.0f}{r['relative']:>10.3f}")
        print(f"{rows_e[0]['cpu']} ({rows_e[0]['flags']}), {rows_e[0]['precision']}")
        for r in rows_e:
            table.append(("e", f"{r['widths']} images/s", r["images_per_s"]))
    if "f" in only:
        print("f. training s/step by precision and memory layout (CPU) ...", flush=True)
        net = tuple(int(c) for c in args.network.split("/"))
        rows_f = bench_precisions(args.modes.split(","), net, args.batch, args.rounds, 2)  # type: ignore[arg-type]
        with open(out / "precisions.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_f[0]))
            writer.writeheader()
            writer.writerows(rows_f)
        print(f"\n{'mode':<28}{'s/step':>8}{'speed':>7}  rounds     first step")
        for r in rows_f:
            print(
                f"{r['mode']:<28}{r['s_per_step']:>8.3f}{r['speed']:>7.2f}  "
                f"{r['speed_min_round']:.2f}-{r['speed_max_round']:.2f}  {r['first_step_s']:.1f} s"
            )
        print(f"{rows_f[0]['cpu']} ({rows_f[0]['flags']}), {args.network} at batch {args.batch}")
        for r in rows_f:
            table.append(("f", f"{r['mode']} speed", r["speed"]))
    with open(out / "results.csv", "w", newline="") as f:
        table_writer = csv.writer(f)
        table_writer.writerow(["benchmark", "measure", "value"])
        table_writer.writerows(table)
    print(f"\n{'bench':<6}{'measure':<32}{'value':>14}   ({device})")
    for bench, measure, value in table:
        print(f"{bench:<6}{measure:<32}{value:>14.4f}")
    print(f"saved: {out}/")


if __name__ == "__main__":
    main_bench()
