"""What a sweep leaves in its folder: trials.csv (one row a trial), best.yaml (the best
parameters as a config file for ``--config``), history.png and importance.png (Optuna's plots),
and a short table printed at the end."""

from __future__ import annotations

import csv
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from litforge.experiments.space import Sweep, cli_args, nested
from litforge.experiments.study import is_interrupted

TABLE_ROWS = 10


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def state_name(t: FrozenTrial) -> str:
    return "interrupted" if is_interrupted(t) else t.state.name.lower()


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yields a temporary path that replaces ``path`` at the end: workers of one sweep that
    finish together each write whole files, never a mix of the two."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_trials_csv(study: optuna.Study, sweep: Sweep, path: Path) -> None:
    keys = list(sweep.parameters)
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["number", "state", sweep.metric, "epochs", "wall_s", *keys, "run_dir"])
        for t in study.get_trials(deepcopy=False):
            out.writerow(
                [
                    t.number,
                    state_name(t),
                    "" if t.value is None else t.value,
                    len(t.intermediate_values),
                    t.user_attrs.get("wall_s", ""),
                    *(t.params.get(k, "") for k in keys),
                    t.user_attrs.get("run_dir", ""),
                ]
            )


def write_best(
    study: optuna.Study, sweep: Sweep, path: Path, module: str = "<project>"
) -> FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        path.unlink(missing_ok=True)
        return None
    best = study.best_trial
    header = [
        f"# The best parameters of sweep {sweep.name} ({sweep.path}):",
        f"# trial {best.number}, {sweep.metric} = {best.value:.6g} ({sweep.direction}), "
        f"run folder {best.user_attrs.get('run_dir', '?')}.",
        f"# Train with them: python -m {module} fit --config {path}",
        "# The sweep's trials also had: " + (" ".join(cli_args(sweep.fixed)) or "nothing fixed"),
    ]
    body = yaml.safe_dump(nested(best.params), sort_keys=False)
    with replacing(path) as tmp:
        tmp.write_text("\n".join(header) + "\n" + body)
    return best


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """history.png always (with a complete trial); importance.png with >= 2 complete trials
    whose parameters vary. Returns the lines to print about what was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as oplt

    notes = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return ["no plots: no complete trial"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's ExperimentalWarning for its matplotlib plots
        _save(oplt.plot_optimization_history(study), folder / "history.png")
        varying = {
            k for k in complete[0].params if len({repr(t.params.get(k)) for t in complete}) > 1
        }
        if len(complete) < 2 or not varying:
            notes.append(
                "no importance plot: it needs 2 complete trials whose parameters differ "
                f"({len(complete)} complete)"
            )
        else:
            _save(oplt.plot_param_importances(study), folder / "importance.png")
    return notes


def _save(ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = ax.figure
    figure.tight_layout()
    with replacing(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def table(study: optuna.Study, sweep: Sweep) -> str:
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    done.sort(key=lambda t: t.value or 0.0, reverse=sweep.direction == "maximize")
    rest = [t for t in trials if t.state != TrialState.COMPLETE]
    shown = (done + rest)[:TABLE_ROWS]
    keys = list(sweep.parameters)
    head = [
        "trial",
        "state",
        sweep.metric,
        "epochs",
        "wall s",
        *(k.rsplit(".", 1)[-1] for k in keys),
    ]
    rows = [
        [
            str(t.number),
            state_name(t),
            fmt(t.value),
            str(len(t.intermediate_values)),
            fmt(t.user_attrs.get("wall_s")),
            *(fmt(t.params.get(k)) for k in keys),
        ]
        for t in shown
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    if len(trials) > len(shown):
        lines.append(f"... {len(trials) - len(shown)} more in trials.csv")
    return "\n".join(lines)


def write_report(
    study: optuna.Study, sweep: Sweep, folder: Path, module: str = "<project>"
) -> None:
    write_trials_csv(study, sweep, folder / "trials.csv")
    best = write_best(study, sweep, folder / "best.yaml", module)
    notes = write_plots(study, folder)
    states = [state_name(t) for t in study.get_trials(deepcopy=False)]
    summary = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    lines = ["=" * 72, f"sweep {sweep.name}: {summary}", table(study, sweep), ""]
    if best is not None:
        lines.append(f"best: trial {best.number}, {sweep.metric} = {best.value:.4f}")
        lines.append(f"  its parameters: {folder / 'best.yaml'} (for --config)")
    lines += [f"  {n}" for n in notes]
    lines.append(f"  trials.csv and plots in {folder}")
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)
