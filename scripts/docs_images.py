"""The pictures of the README and the docs, remade from real runs: ``make docs-images``.

Trains each demo project once with its default config (CSV logs only), in a folder of its own,
then copies the PNG files its diagnostics wrote at the test into ``docs/images/`` under stable
names, and writes ``docs/images/made-by.json``: for each picture the project, the command, the
date, the CPU and the run's test metrics, so that a page can say what it shows.

    .venv/bin/python scripts/docs_images.py                     # template and segmentation
    .venv/bin/python scripts/docs_images.py --data ../cifar10-jpeg   # cifar10 too (~10 min)
    .venv/bin/python scripts/docs_images.py --projects template -- --trainer.max_epochs=1

Arguments after ``--`` go to every run's ``fit``. To add a picture, add a line to PICTURES.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Picture:
    """``media/test/<dataset>/<diagnostic>/<step>.png`` of a project's run -> ``docs/images/<name>``."""

    project: str  # the folder under projects/, or a module run as python -m (dotted)
    diagnostic: str  # the folder under media/<stage>/<dataset>/
    name: str  # the file name in docs/images/
    stage: str = "test"


PICTURES = [
    Picture("template", "extremes/highest_error", "template-highest-error.png"),
    Picture("template", "extremes/lowest_error", "template-lowest-error.png"),
    Picture("template", "uncertainty", "template-uncertainty.png"),
    Picture("template", "confusion_matrix", "template-confusion-matrix.png"),
    Picture("segmentation", "extremes/highest_error", "segmentation-highest-error.png"),
    Picture("segmentation", "extremes/lowest_error", "segmentation-lowest-error.png"),
    Picture("cifar10", "extremes/highest_error", "cifar10-highest-error.png"),
    Picture("cifar10", "uncertainty", "cifar10-uncertainty.png"),
    Picture("cifar10", "confusion_matrix", "cifar10-confusion-matrix.png"),
]


def module_of(project: str) -> str:
    """The import name of a project: the package in projects/<project>/src/ with a __main__;
    a dotted name (``litforge.testing.regression``, a task of the test kit) is a module."""
    if "." in project:
        return project
    mains = sorted((REPO / "projects" / project / "src").glob("*/__main__.py"))
    if not mains:
        raise SystemExit(f"error: no project '{project}' (no projects/{project}/src/*/__main__.py)")
    return mains[0].parent.name


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def latest(folder: Path) -> Path | None:
    """The PNG of the highest step in a diagnostic's folder (the end of the stage)."""
    pngs = [p for p in folder.glob("*.png") if p.stem.isdigit()]
    return max(pngs, key=lambda p: int(p.stem)) if pngs else None


def train(project: str, run_dir: Path, data: str | None, extra: list[str]) -> list[str]:
    """One real fit of the project's default config; returns the command it ran."""
    command = [
        sys.executable,
        "-m",
        module_of(project),
        "fit",
        f"--run.dir={run_dir}",
        "--run.loggers=[csv]",
        *([f"--data.root={data}"] if data else []),
        *extra,
    ]
    shown = " ".join(command[1:]).replace(str(run_dir), "<run>")
    print(f"==> {project}: python {shown}", flush=True)
    log = run_dir.parent / f"{project}.log"
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise SystemExit(
            f"{tail}\nerror: the {project} run failed (exit status {code}); its log: {log}"
        )
    return ["python", *command[1:4], "--run.loggers=[csv]", *command[6:]]


def copy_pictures(project: str, run_dir: Path, out: Path) -> list[Path]:
    """Copies the project's pictures from its run folder; a missing one is an error."""
    copied = []
    for picture in (p for p in PICTURES if p.project == project):
        found = [
            f
            for d in sorted((run_dir / "media" / picture.stage).glob(f"*/{picture.diagnostic}"))
            if (f := latest(d)) is not None
        ]
        if not found:
            raise SystemExit(
                f"error: the {project} run wrote no {picture.stage}/*/{picture.diagnostic}/*.png "
                f"(in {run_dir / 'media'}): is that diagnostic in its config?"
            )
        shutil.copyfile(found[0], out / picture.name)
        copied.append(out / picture.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument(
        "--projects",
        default=None,
        help="comma-separated; default: template,segmentation (and cifar10 with --data)",
    )
    parser.add_argument("--data", help="a CIFAR-10 image folder: adds the cifar10 demo's run")
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: deleted)")
    opts = parser.parse_args(argv)
    projects = (
        opts.projects.split(",")
        if opts.projects
        else ["template", "segmentation", *(["cifar10"] if opts.data else [])]
    )
    unknown = [p for p in projects if not any(pic.project == p for pic in PICTURES)]
    if unknown:
        known = sorted({p.project for p in PICTURES})
        raise SystemExit(f"error: no pictures are listed for {unknown}; projects: {known}")
    if "cifar10" in projects and not opts.data:
        print("note: cifar10 without --data downloads CIFAR-10 (or stops and says how to get it)")
    opts.out.mkdir(parents=True, exist_ok=True)
    made_by_path = opts.out / "made-by.json"
    made_by = json.loads(made_by_path.read_text()) if made_by_path.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="docs-images-")) if opts.keep is None else opts.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        for project in projects:
            run_dir = work / project
            if run_dir.exists():
                shutil.rmtree(run_dir)
            data = opts.data if project == "cifar10" else None
            command = train(project, run_dir, data, extra)
            results = json.loads((run_dir / "results.json").read_text())
            for path in copy_pictures(project, run_dir, opts.out):
                made_by[path.name] = {
                    "project": project,
                    "command": " ".join(command),
                    "date": date.today().isoformat(),
                    "cpu": cpu_name(),
                    "threads": os.cpu_count(),
                    "test": {k: round(v, 4) for k, v in results.items() if re.match(r"test/", k)},
                }
                print(f"    {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    made_by_path.write_text(json.dumps(dict(sorted(made_by.items())), indent=2) + "\n")
    print(f"==> pictures and {made_by_path.name} in {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
