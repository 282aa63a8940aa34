"""The ``sweep`` and ``repeat`` words of a project's command (``litforge.command.run`` sends them
here): argument parsing, a dry parse of the child runs' arguments (``fit --print_config``, in
this process: a wrong key fails now, once, not in every trial), then sweep.py / repeat.py."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from litforge.errors import LitforgeError
from litforge.experiments.launch import LAUNCHERS, gpu_slots, make_launcher, python_module
from litforge.run.rundir import new_run_dir

COMMANDS = ("sweep", "repeat")


def main_module() -> str:
    """The package of ``python -m <package>``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None:
        raise LitforgeError("sweep and repeat need the project run as: python -m <package> ...")
    return spec.name.removesuffix(".__main__")


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LitforgeError(f"cannot find the package folder of {module}")
    return Path(next(iter(spec.submodule_search_locations)))


def probe(main: Callable[..., Any], args: list[str]) -> dict[str, Any]:
    """Parses ``fit <args>`` as a child would (``--print_config``) and returns the resolved
    config; a refused argument stops here."""
    printed, argv = io.StringIO(), sys.argv
    try:
        sys.argv = argv[:1]  # LightningCLI warns when it has both args and a command line
        with contextlib.redirect_stdout(printed):
            main(["fit", *args, "--print_config"])
    except SystemExit as exit:
        if exit.code not in (0, None):
            raise LitforgeError(
                f"the runs' arguments were refused (the message above): {' '.join(args)}"
            ) from None
    finally:
        sys.argv = argv
    return yaml.safe_load(printed.getvalue()) or {}


def monitored(main: Callable[..., Any], args: list[str]) -> tuple[str, str]:
    """The metric a fit with ``args`` chooses its best checkpoint by (``--run.monitor``, default
    the model's ``best_metric``) and its direction, ``maximize`` or ``minimize``: the objective
    of a sweep file that names no metric. The model and data are built as the fit builds them
    (``run=False``: the default config, then ``args``) in a temporary run folder, with no
    loggers; nothing trains and nothing stays (nor do the variables seeding sets in the
    environment, which the trials would inherit)."""
    from litforge.run.checkpoints import resolve_monitor

    quiet = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric")]
    levels = [q.level for q in quiet]
    argv, environ = sys.argv, dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="litforge-monitor-") as folder:
        try:
            sys.argv = argv[:1]
            for q in quiet:  # "Seed set to 0", "GPU available": the runs print them
                q.setLevel(logging.WARNING)
            with contextlib.redirect_stdout(io.StringIO()):
                cli = main([*args, f"--run.dir={folder}/run", "--run.loggers=[]"], run=False)
        except SystemExit:
            raise LitforgeError(
                f"the runs' model and data could not be built (the message above): {' '.join(args)}"
            ) from None
        finally:
            sys.argv = argv
            for q, level in zip(quiet, levels, strict=True):
                q.setLevel(level)
            os.environ.clear()  # PL_GLOBAL_SEED, PL_SEED_WORKERS
            os.environ.update(environ)
        run = cli.config.run
        metric, mode = resolve_monitor(cli.model, cli.datamodule, run.monitor, run.monitor_mode)
    return metric, "maximize" if mode == "max" else "minimize"


def _key_values(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise LitforgeError(f"--slurm {item}: give KEY=VALUE, e.g. slurm_partition=gpu")
        out[key] = yaml.safe_load(value)
    return out


def parser(command: str, module: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m {module} {command}",
        description=(
            "An Optuna sweep: each trial an ordinary run; re-run the same command to continue."
            if command == "sweep"
            else "One config with seeds 0..S-1, then each test metric's mean, std, 95% interval."
        ),
        epilog="Arguments after -- go to every run's fit, e.g. -- --trainer.max_epochs=5",
    )
    if command == "sweep":
        p.add_argument("name", help="configs/sweeps/<name>.yaml in the project, or a path")
        p.add_argument("--trials", type=int, help="n_trials, instead of the sweep file's")
        p.add_argument(
            "--storage",
            help="an Optuna database URL for workers without a shared folder "
            "(default: the journal file <sweep folder>/study.journal)",
        )
    else:
        p.add_argument("--seeds", type=int, required=True, help="run seeds 0..SEEDS-1")
        p.add_argument("--group", type=Path, help="continue this group folder")
    p.add_argument("--workers", type=int, default=1, help="runs at once (one GPU each if any)")
    p.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="process",
        help="process: child processes here; local / slurm: submitit jobs",
    )
    p.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="submitit executor settings, e.g. slurm_partition=gpu timeout_min=120",
    )
    p.add_argument("--root", default="runs", help="where the project's run folders are")
    return p


def _sweep(
    main: Callable[..., Any], project: str, module: str, opts: argparse.Namespace, extra: list[str]
) -> int:
    from litforge.experiments.space import cli_args, find_sweep, load_sweep
    from litforge.experiments.study import counts
    from litforge.experiments.sweep import SweepRun, run_sweep

    path = find_sweep(opts.name, package_dir(module))
    sweep = load_sweep(path, opts.trials)
    example = {
        k: p["choices"][0] if p["type"] == "categorical" else p["low"]
        for k, p in sweep.parameters.items()
    }
    args = [*cli_args(sweep.fixed), *extra, *cli_args(example)]
    try:
        probe(main, [*args, "--run.wandb_group=probe"])
        monitor = sweep.metric is None  # the file names none: the runs' monitored metric
        if monitor:
            sweep = sweep.with_objective(*monitored(main, args))
    except LitforgeError as err:
        raise LitforgeError(f"{path}: {err}") from None
    folder = Path(opts.root) / project / "sweeps" / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    run = SweepRun(
        sweep=sweep,
        folder=folder,
        storage=opts.storage or str(folder / "study.journal"),
        module_args=python_module(module),
        extra=extra,
        group=f"{project}-sweep-{sweep.name}",
        launcher=make_launcher(opts.launcher, folder / "submitit", _key_values(opts.slurm)),
        stop=threading.Event(),
    )
    slots = gpu_slots() if run.launcher.uses_gpu_slots else []
    print(
        f"sweep {sweep.name} ({path}): {sweep.n_trials} trials, {opts.workers} worker(s)"
        + (f" on GPUs {', '.join(slots)}" if slots else "")
        + f", {sweep.metric} ({sweep.direction}"
        + (", the runs' monitored metric" if monitor else "")
        + f"); study in {run.storage}",
        flush=True,
    )
    try:
        study = run_sweep(run, opts.workers, slots)
    except KeyboardInterrupt:
        print(f"sweep interrupted: run the same command to continue ({folder})", file=sys.stderr)
        return 130
    trials = study.get_trials(deepcopy=False)
    counted = sum(counts(t) for t in trials)
    running = sum(t.state.name == "RUNNING" for t in trials)
    if running:
        print(f"{running} trial(s) still running in other workers of this study", flush=True)
    elif counted < sweep.n_trials:
        print(
            f"error: the sweep stopped at {counted} of {sweep.n_trials} trials: its workers' "
            "first trials all failed (their train.log says why)",
            file=sys.stderr,
        )
        return 1
    return 0


def _repeat(
    main: Callable[..., Any], project: str, module: str, opts: argparse.Namespace, extra: list[str]
) -> int:
    from litforge.experiments import repeat

    if opts.seeds < 1:
        raise LitforgeError("--seeds: 1 or more")
    config = probe(main, [*extra, "--run.wandb_group=probe"])
    data_seed = isinstance(config.get("data"), dict) and "seed" in config["data"]
    folder = opts.group or new_run_dir(Path(opts.root) / project, "repeats")
    folder.mkdir(parents=True, exist_ok=True)
    seeds = list(range(opts.seeds))
    done = repeat.read_results(folder, seeds)
    todo = [s for s in seeds if s not in done]
    launcher = make_launcher(opts.launcher, folder / "submitit", _key_values(opts.slurm))
    slots = gpu_slots() if launcher.uses_gpu_slots else []
    print(
        f"repeat: seeds {seeds[0]}..{seeds[-1]} into {folder}"
        + (f" ({len(done)} done before)" if done else "")
        + ("" if data_seed else "; the data module takes no seed: only seed_everything varies"),
        flush=True,
    )
    try:
        repeat.run_seeds(
            todo,
            folder,
            python_module(module),
            extra,
            data_seed,
            f"{project}-repeat-{folder.name}",
            launcher,
            opts.workers,
            slots,
        )
    except KeyboardInterrupt:
        print(f"repeat interrupted: continue with --group {folder}", file=sys.stderr)
        return 130
    results = repeat.read_results(folder, seeds)
    summary = repeat.summarize(results)
    repeat.write_summary(folder / "summary.csv", summary, seeds)
    missing = [s for s in seeds if s not in results]
    print("=" * 72)
    print(
        f"repeat: {len(results)} of {len(seeds)} seeds finished"
        + (f"; failed: {missing}" if missing else "")
    )
    print(repeat.table(summary))
    print(f"  summary.csv and the runs in {folder}")
    print("=" * 72, flush=True)
    return 0 if not missing else 1


def experiment(main: Callable[..., Any], project: str, argv: list[str]) -> int:
    """``main``: the project's (``Project.main``); ``project``: its name, the folder of its
    runs; ``argv``: [sweep|repeat, options..., --, fit arguments...]."""
    command, rest = argv[0], argv[1:]
    extra: list[str] = []
    if "--" in rest:
        i = rest.index("--")
        rest, extra = rest[:i], rest[i + 1 :]
    module = main_module()
    opts = parser(command, module).parse_args(rest)
    if opts.workers < 1:
        raise LitforgeError("--workers: 1 or more")
    if any(a.startswith("--run.dir") for a in extra):
        raise LitforgeError(f"--run.dir is set by {command} itself, one folder per run")
    # SIGTERM (a scheduler, kill) stops like Ctrl-C: children are stopped and marked interrupted
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if command == "sweep":
        return _sweep(main, project, module, opts, extra)
    return _repeat(main, project, module, opts, extra)
