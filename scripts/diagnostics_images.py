"""The pictures of docs/diagnostics.md, remade from real runs: ``make diagnostics-images``.

Each run below is one real fit (and the test after it) of a demo project or of a task of the
test kit, in a folder of its own with CSV logs only; the test pictures it wrote are copied to
``docs/images/diagnostics-*.png``, and ``docs/images/diagnostics-made-by.json`` says for each
picture the command, the date, the CPU and the model it shows (checkpoint, epoch, step).

    .venv/bin/python scripts/diagnostics_images.py                  # every run (~5 min, 2 cores)
    .venv/bin/python scripts/diagnostics_images.py --runs template,denoise
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"


@dataclass(frozen=True)
class Run:
    module: str  # run as python -m <module> fit
    args: tuple[str, ...]  # fit's arguments besides the run folder and loggers
    pictures: tuple[tuple[str, str], ...]  # (media/test/<dataset>/<this>, docs/images/<name>)


def callbacks(*specs: dict) -> str:
    return "--trainer.callbacks=" + json.dumps([*specs, {"class_path": "litforge.StopOnNonFinite"}])


RUNS = {
    # the template project as it ships: 4 epochs of 16 x 16 shapes, 4 classes
    "template": Run(
        "template_project",
        (),
        (
            ("extremes/highest_error", "diagnostics-extremes-images.png"),
            ("uncertainty", "diagnostics-calibration.png"),
            ("confusion_matrix", "diagnostics-confusion.png"),
        ),
    ),
    # feature rows as the tabular recipe trains them: 30 epochs, Extremes k=8, Regression
    "rows": Run(
        "litforge.testing.regression",
        (
            "--trainer.max_epochs=30",
            "--data.n=4000",
            "--data.n_features=8",
            "--model.hidden=64",
            "--data.eval_batch_size=256",
            callbacks(
                {"class_path": "litforge.Extremes", "init_args": {"k": 8}},
                {"class_path": "litforge.Regression"},
            ),
        ),
        (
            ("regression", "diagnostics-regression.png"),
            ("extremes/highest_error", "diagnostics-extremes-table.png"),
        ),
    ),
    # image-to-image regression: noisy blobs in, clean blobs out
    "denoise": Run(
        "litforge.testing.denoise",
        ("--trainer.max_epochs=8", "--data.n=2000"),
        (
            ("regression", "diagnostics-regression-dense.png"),
            ("regression/worst", "diagnostics-regression-dense-worst.png"),
        ),
    ),
    # segmentation as it ships: image | true mask | predicted mask
    "segmentation": Run(
        "segmentation_demo",
        (),
        (("extremes/highest_error", "diagnostics-extremes-segmentation.png"),),
    ),
    # 30 classes: too many for a matrix, the largest confusions listed
    "classes30": Run(
        "litforge.testing",
        (
            "--data.n_classes=30",
            "--data.n_train=3000",
            "--data.n_test=1500",
            "--data.val_size=300",
            "--trainer.max_epochs=3",
            callbacks({"class_path": "litforge.ConfusionMatrix"}),
        ),
        (("confusion_matrix", "diagnostics-confusion-many.png"),),
    ),
    # token sequences: tables with the tokens decoded into text
    "sequence": Run(
        "litforge.testing.sequence",
        ("--trainer.max_epochs=3",),
        (("extremes/highest_error", "diagnostics-extremes-text.png"),),
    ),
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fit(name: str, run: Run, run_dir: Path) -> str:
    """One real fit (and its test); returns the command, as a person would type it."""
    command = [
        sys.executable,
        "-m",
        run.module,
        "fit",
        f"--run.dir={run_dir}",
        "--run.loggers=[csv]",
        *run.args,
    ]
    log = run_dir.parent / f"{name}.log"
    print(f"==> {name}: {shlex.join(['python', '-m', run.module, 'fit', *run.args])}", flush=True)
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise SystemExit(f"{tail}\nerror: the {name} run failed (exit status {code}); log: {log}")
    return shlex.join(["python", "-m", run.module, "fit", "--run.loggers=[csv]", *run.args])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"comma-separated: {', '.join(RUNS)}"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args()
    unknown = sorted(set(opts.runs.split(",")) - set(RUNS))
    if unknown:
        raise SystemExit(f"error: no run {unknown}; the runs: {', '.join(RUNS)}")
    opts.out.mkdir(parents=True, exist_ok=True)
    made_by_path = opts.out / "diagnostics-made-by.json"
    made_by = json.loads(made_by_path.read_text()) if made_by_path.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="diagnostics-images-"))
    try:
        for name in opts.runs.split(","):
            run = RUNS[name]
            run_dir = work / name
            command = fit(name, run, run_dir)
            for diagnostic, out_name in run.pictures:
                folders = sorted((run_dir / "media" / "test").glob(f"*/{diagnostic}"))
                pngs = [p for f in folders for p in f.glob("*.png") if p.stem.isdigit()]
                if not pngs:
                    raise SystemExit(f"error: the {name} run drew no test/*/{diagnostic}/*.png")
                png = max(pngs, key=lambda p: int(p.stem))
                shutil.copyfile(png, opts.out / out_name)
                facts = png.with_suffix(".json")
                made_by[out_name] = {
                    "command": command,
                    "date": date.today().isoformat(),
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                    "model": json.loads(facts.read_text())["model"] if facts.exists() else None,
                }
                print(f"    docs/images/{out_name}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    made_by_path.write_text(json.dumps(dict(sorted(made_by.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
