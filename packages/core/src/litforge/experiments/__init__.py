"""Experiments: many runs of one project, each an ordinary run in its own folder.

    python -m <project> sweep <name> [--workers N] [--trials N] [-- fit args]   (sweep.py)
    python -m <project> repeat --seeds S [--workers N] [-- fit args]           (repeat.py)

``litforge.command.run`` sends these two words here (command.py). The pieces, one idea each:
space.py (the sweep file: parameters, metric, sampler, pruner), study.py (the Optuna study on
disk, shared by workers and resumable), launch.py (a child run as a process or a submitit job),
pruning.py (OptunaReport, given to a trial's run on its command line), stats.py (mean, spread
and Student-t interval over seeds), report.py (trials.csv, best.yaml, plots).

Nothing here is imported by a plain ``fit`` (``litforge`` itself imports pruning.py, which
imports optuna only in a trial).
"""
