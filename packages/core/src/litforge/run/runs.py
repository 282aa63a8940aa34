"""A table of a project's runs, from what each run folder holds.

Every command of the CLI keeps ``<run dir>/status.json`` up to date: written when the run
starts (``running``) and again when it ends, ``finished``, ``interrupted`` (SIGTERM, Ctrl-C) or
``failed`` (with the error), with its start and end times and wall seconds. A run killed outright
(SIGKILL, out of memory) cannot write its end: it is listed as ``killed`` once its process is gone.

    python -m <package> runs [--metric KEY ...] [--last N] [--plot KEY] [--dir FOLDER]
    make runs-<project> [ARGS="..."]

lists the runs of ``runs/<project>/`` (or of ``--dir``), oldest first: folder, start time, status,
wall time, the settings that differ between the runs listed (each ``config.yaml`` flattened to
dotted keys; keys whose values are the same everywhere are left out), what the test scored
(``checkpoint`` and ``epoch`` of ``results.json``) and the final metrics (its ``test/...`` values);
as text, and as CSV in ``<folder>/runs.csv``. ``--plot val/<dataset>/accuracy`` draws that
metric's curve of every run listed, read from their ``csv/metrics.csv`` (``--run.loggers``
with csv), into ``<folder>/plots/<metric>.png`` and prints its path.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from litforge.errors import TrialPruned

STATUS_FILE = "status.json"
RUNS_CSV = "runs.csv"
# Keys that differ between any two runs by construction: not a setting.
IGNORED_KEYS = ("run.dir", "trainer.default_root_dir")
Series = dict[str, dict[str, list[float]]]


# ---------------------------------------------------------------------- the status record
def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_status(run_dir: Path, subcommand: str, resuming: bool = False) -> dict[str, Any]:
    """Writes ``status.json`` as ``running``. A resumed fit keeps the first start time and adds
    the wall time of the earlier attempts."""
    previous = read_status(run_dir) if resuming else None
    same = previous is not None and previous.get("subcommand") == subcommand
    status: dict[str, Any] = {
        "subcommand": subcommand,
        "status": "running",
        "started": previous["started"] if same and previous else _now(),
        "last_started": _now(),
        "ended": None,
        "wall_s": None,
        "wall_s_before": float(previous.get("wall_s") or 0.0) if same and previous else 0.0,
        "attempts": int(previous.get("attempts", 1)) + 1 if same and previous else 1,
        "error": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "_t0": time.time(),
    }
    _write_json(Path(run_dir) / STATUS_FILE, {k: v for k, v in status.items() if k != "_t0"})
    return status


def end_status(
    run_dir: Path, status: dict[str, Any], outcome: str, error: str | None = None
) -> dict[str, Any]:
    """Writes the end of a run: ``outcome`` is finished, interrupted or failed."""
    wall = time.time() - float(status["_t0"])
    status = {
        **status,
        "status": outcome,
        "ended": _now(),
        "wall_s": round(float(status.get("wall_s_before") or 0.0) + wall, 3),
        "error": error,
    }
    _write_json(Path(run_dir) / STATUS_FILE, {k: v for k, v in status.items() if k != "_t0"})
    return status


def outcome_of(error: BaseException | None, trainer_status: str | None) -> str:
    """finished, interrupted, pruned or failed, from what ended the command and the trainer's
    state (pruned: a sweep's pruner stopped the trial early, as it should)."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if isinstance(error, TrialPruned):
        return "pruned"
    if error is None:
        return "interrupted" if trainer_status == "interrupted" else "finished"
    if isinstance(error, KeyboardInterrupt | SIGTERMException):
        return "interrupted"
    if isinstance(error, SystemExit):
        # Lightning ends a Ctrl-C'd fit with sys.exit(1), the trainer marked interrupted.
        if trainer_status == "interrupted" or error.code == 128 + 15:
            return "interrupted"
        return "finished" if error.code in (0, None) else "failed"
    return "failed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def effective_status(status: dict[str, Any] | None) -> str:
    """The recorded status; ``killed`` for a run recorded as running whose process (on this
    machine) is gone; ``unknown`` without a record."""
    if status is None:
        return "unknown"
    state = str(status.get("status", "unknown"))
    if (
        state == "running"
        and status.get("host") == socket.gethostname()
        and isinstance(status.get("pid"), int)
        and not _alive(status["pid"])
    ):
        return "killed"
    return state


# ---------------------------------------------------------------------- reading runs
def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config as dotted keys. ``class_path`` / ``init_args`` pairs lose the ``init_args``
    level; a list of them (callbacks) is keyed by class name (``trainer.callbacks.Extremes.k``,
    with ``trainer.callbacks.Extremes`` itself true); other lists stay one value."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "init_args" and prefix:
                flat.update(flatten(item, prefix))
            else:
                flat.update(flatten(item, name))
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "class_path" in v for v in value)
    ):
        seen: dict[str, int] = {}
        for item in value:
            short = str(item["class_path"]).rsplit(".", 1)[-1]
            seen[short] = seen.get(short, 0) + 1
            name = f"{prefix}.{short}" + (f"#{seen[short]}" if seen[short] > 1 else "")
            flat[name] = True
            flat.update(flatten(item.get("init_args") or {}, name))
    elif isinstance(value, list):
        flat[prefix] = json.dumps(value)
    else:
        flat[prefix] = value
    return flat


def read_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        loaded = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(loaded, dict):
        return None
    flat = flatten(loaded)
    # paths inside the run folder (a profiler's dirpath, ...) differ only by the folder
    own = str(flat.get("run.dir") or flat.get("trainer.default_root_dir") or "") or None
    return {
        k: v.replace(own, "<run dir>") if own and isinstance(v, str) else v
        for k, v in flat.items()
        if k not in IGNORED_KEYS
    }


def read_results(run_dir: Path) -> dict[str, Any]:
    """``results.json``: the ``test/...`` metrics (floats) and what was scored."""
    try:
        data = json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The metrics of a ``results.json`` (its ``test/`` keys), without what says where they
    come from (``checkpoint``, ``epoch``, ...)."""
    return {
        k: float(v)
        for k, v in results.items()
        if k.startswith("test/") and isinstance(v, int | float) and not isinstance(v, bool)
    }


def find_runs(folder: Path) -> list[Path]:
    """The run folders directly in ``folder`` (those with a status.json or a config.yaml),
    oldest first."""
    if not Path(folder).is_dir():
        return []
    runs = [
        p
        for p in Path(folder).iterdir()
        if p.is_dir() and ((p / STATUS_FILE).is_file() or (p / "config.yaml").is_file())
    ]

    def started(p: Path) -> tuple[str, str]:
        status = read_status(p) or {}
        return (str(status.get("started") or ""), p.name)

    return sorted(runs, key=lambda p: (started(p)[0] == "", *started(p)))


def table(run_dirs: Sequence[Path]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of the runs table: run, started, status, wall_s, the settings that
    differ between these runs, checkpoint, epoch, then every test metric."""
    configs = {p: read_config(p) for p in run_dirs}
    with_config = [c for c in configs.values() if c is not None]
    keys = sorted({k for c in with_config for k in c})
    differing = [
        k for k in keys if len({json.dumps(c.get(k), default=str) for c in with_config}) > 1
    ]
    results = {p: read_results(p) for p in run_dirs}
    metric_keys = sorted({k for r in results.values() for k in final_metrics(r)})
    rows = []
    for p in run_dirs:
        status = read_status(p)
        config = configs[p]
        row: dict[str, Any] = {
            "run": p.name,
            "started": (status or {}).get("started"),
            "status": effective_status(status),
            "wall_s": (status or {}).get("wall_s"),
        }
        for k in differing:
            row[k] = config.get(k) if config is not None else None
        row["checkpoint"] = results[p].get("checkpoint")
        row["epoch"] = results[p].get("epoch")
        row.update({k: final_metrics(results[p]).get(k) for k in metric_keys})
        rows.append(row)
    columns = ["run", "started", "status", "wall_s", *differing, "checkpoint", "epoch"]
    return [*columns, *metric_keys], rows


def _cell(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "started" and isinstance(value, str):
        return value[:16].replace("T", " ")
    if key == "wall_s" and isinstance(value, int | float):
        minutes, seconds = divmod(float(value), 60)
        return f"{int(minutes)}m{seconds:04.1f}s" if minutes else f"{seconds:.1f}s"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(c), c) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def write_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)
    return path


def shown_columns(columns: Sequence[str], metrics: Sequence[str] = ()) -> list[str]:
    """The columns printed: all but the metrics, then the metrics asked for (a full key, or
    its end: ``accuracy`` is every ``.../accuracy``), by default every metric but the loss
    terms (their total stays)."""
    metric_cols = [c for c in columns if c.startswith("test/")]
    base = [c for c in columns if c not in metric_cols]
    if metrics:
        chosen = [c for c in metric_cols if any(c == m or c.endswith(f"/{m}") for m in metrics)]
    else:
        chosen = [c for c in metric_cols if "/loss/" not in c or c.endswith("/loss/total")]
    return [*base, *chosen]


# ---------------------------------------------------------------------- curves
def metric_series(run_dirs: Sequence[Path], key: str) -> Series:
    """``{run: {"step": [...], "epoch": [...], "value": [...]}}``: every logged value of
    ``key`` in each run's ``csv/metrics.csv`` (runs without the key are left out)."""
    series: Series = {}
    for run_dir in run_dirs:
        path = Path(run_dir) / "csv" / "metrics.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get(key) not in (None, "")]
        if rows:
            series[Path(run_dir).name] = {
                "step": [float(r.get("step") or "nan") for r in rows],
                "epoch": [float(r.get("epoch") or "nan") for r in rows],
                "value": [float(r[key]) for r in rows],
            }
    return series


def plot_metric(run_dirs: Sequence[Path], key: str, path: Path) -> Series:
    """Draws ``key`` against the training step, one line per run, into the PNG ``path``;
    returns the series drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = metric_series(run_dirs, key)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, data in series.items():
        marker = "o" if len(data["value"]) < 30 else None
        ax.plot(data["step"], data["value"], marker=marker, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(key if series else f"{key}: no run logged it (csv logger)")
    if series:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return series


# ---------------------------------------------------------------------- the command
def main(argv: Sequence[str], project: str, module: str | None = None) -> int:
    """``python -m <package> runs ...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module or project} runs",
        description=f"The runs of {project}: status, wall time, the settings that differ, the "
        "final test metrics; also written as CSV.",
    )
    parser.add_argument("--root", default="runs", help="where run folders go (--run.root)")
    parser.add_argument(
        "--dir", default=None, help=f"the folder of runs to list; default <root>/{project}"
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        help="a metric to show (a full key, test/<dataset>/accuracy, or its end, accuracy); "
        "repeatable; default every metric but the loss terms. The CSV has them all",
    )
    parser.add_argument("--last", type=int, default=None, help="only the N most recent runs")
    parser.add_argument(
        "--plot",
        default=None,
        metavar="KEY",
        help="also draw this metric's curves (e.g. val/<dataset>/accuracy) from each run's "
        "csv/metrics.csv into a PNG",
    )
    args = parser.parse_args(list(argv))
    folder = Path(args.dir) if args.dir else Path(args.root) / project
    if args.dir and not folder.is_dir():  # a typo: "no runs" would read as an empty record
        print(f"error: --dir {folder}: no such folder", file=sys.stderr)
        return 2
    run_dirs = find_runs(folder)
    if args.last is not None:
        run_dirs = run_dirs[-args.last :] if args.last > 0 else []
    if not run_dirs:
        print(f"no runs in {folder}")
        return 0
    columns, rows = table(run_dirs)
    print(format_table(shown_columns(columns, args.metric), rows))
    csv_path = write_csv(columns, rows, folder / RUNS_CSV)
    print(f"\n{len(rows)} run{'s' if len(rows) != 1 else ''}; table as CSV: {csv_path}")
    if args.plot:
        name = args.plot.replace("/", "_")
        path = folder / "plots" / f"{name}.png"
        series = plot_metric(run_dirs, args.plot, path)
        print(f"plot of {args.plot} ({len(series)} of {len(run_dirs)} runs logged it): {path}")
    return 0
