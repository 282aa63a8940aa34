"""What a child run reads from the sweep or seed group that started it, through its environment.

- ``LITFORGE_TRIAL``: a JSON object (storage URL, study name, trial number, metric, pruner) set
  for a sweep's trial; the CLI then adds ``litforge.OptunaReport``, which reports the
  validation metric to the study each epoch and stops a pruned trial with ``TrialPruned``;
  ``litforge.run.cli.run`` turns that into exit status ``PRUNED_EXIT``.
- ``LITFORGE_PARENT_PID``: the launcher's process id; the child asks Linux to send it SIGTERM
  when that process dies, so a killed sweep leaves no orphan training on.

Light on purpose: the CLI imports it for every run; optuna is imported only in a trial.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

TRIAL_ENV = "LITFORGE_TRIAL"
PARENT_ENV = "LITFORGE_PARENT_PID"
PRUNED_EXIT = 3  # the exit status of a pruned trial: not a failure, not a finished run


class TrialPruned(Exception):
    """The study's pruner stopped this trial: its metric is not promising."""


def die_with_parent() -> None:
    """SIGTERM to this process when the launcher that started it dies (Linux; else nothing).
    The variable is removed: this process's own children (DDP ranks) have another parent."""
    parent = os.environ.pop(PARENT_ENV, None)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the launcher died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def trial_spec() -> dict[str, Any] | None:
    """The trial this run is part of, or None for an ordinary run."""
    text = os.environ.get(TRIAL_ENV)
    return json.loads(text) if text else None


def child_callbacks() -> list[Any]:
    """The callbacks a child run adds to its trainer (none for an ordinary run)."""
    die_with_parent()
    spec = trial_spec()
    if spec is None:
        return []
    from litforge.experiments.pruning import OptunaReport

    return [OptunaReport(**spec)]
