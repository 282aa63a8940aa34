"""Experiments: many runs of one project, each an ordinary run in its own folder.

    python -m <project> sweep <name> [--workers N] [--trials N] [-- fit args]   (sweep.py)
    python -m <project> repeat --seeds S [--workers N] [-- fit args]           (repeat.py)

``litforge.run.cli.run`` sends these two words here (command.py). The pieces, one idea each:
space.py (the sweep file: parameters, metric, sampler, pruner), study.py (the Optuna study on
disk, shared by workers and resumable), launch.py (a child run as a process or a submitit job),
child.py (what a child run reads from its parent: its trial, pruning), stats.py (mean, spread
and Student-t interval over seeds), report.py (trials.csv, best.yaml, plots).

Nothing here is imported by a plain ``fit`` except child.py, which stays light.
"""
