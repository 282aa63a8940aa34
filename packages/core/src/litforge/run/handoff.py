"""State that crosses a process boundary with no command line of its own: the one place where
litforge writes or reads its environment variables.

Everything else a process needs travels as an argument or a file it reads: a sweep's trial gets
its ``OptunaReport`` as ``--trainer.callbacks+=...`` on its command line, a resumed run its
``--config <run dir>/config.yaml --ckpt_path ...``. Two boundaries leave no such way:

``LITFORGE_HANDOFF``
    DDP with ``strategy=ddp``: Lightning re-launches this very command line once per extra rank
    (``_SubprocessScriptLauncher``), after the parent has chosen the run folder and measured the
    machine. The children must write into the parent's run folder and train the same number of
    steps, so the parent writes, before the trainer starts them, a JSON object
    ``{"pid": <parent pid>, "run_dir": ..., "fit": {"overrides": {...}, "plan": {...}}}``. A
    process reads it only when its own parent wrote it (``pid`` is its parent's), so a run started
    later by this process or by anything else measures and chooses for itself; the command that
    wrote it removes it when it ends (``handing_off``).
``LITFORGE_PARENT_PID``
    A sweep's or seed group's child run (``litforge.experiments.launch``): the launcher's
    process id. The child asks Linux to send it SIGTERM when that process dies, so a killed
    sweep leaves no orphan training on (``die_with_parent``). An environment variable, not an
    option, because the child's own DDP ranks re-run its command line and have another parent:
    the variable is removed as soon as it is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

HANDOFF_ENV = "LITFORGE_HANDOFF"
PARENT_ENV = "LITFORGE_PARENT_PID"


_inherited: dict[str, Any] | None = None  # what this process's parent handed it


def _read() -> dict[str, Any]:
    """What the parent process wrote, as it was when this process first asked: the process
    writes the variable for its own children later (a DDP rank writes it too), and must still
    read its launcher's."""
    global _inherited
    if _inherited is None:
        try:
            saved = json.loads(os.environ.get(HANDOFF_ENV) or "{}")
        except ValueError:
            saved = {}
        ours = isinstance(saved, dict) and saved.get("pid") == os.getppid()
        _inherited = saved if ours else {}  # written by no parent of this process: not for it
    return _inherited


def _write(key: str, value: Any) -> None:
    _read()  # first, what the parent handed over
    try:
        saved = json.loads(os.environ.get(HANDOFF_ENV) or "{}")
    except ValueError:
        saved = {}
    if not isinstance(saved, dict) or saved.get("pid") != os.getpid():
        saved = {"pid": os.getpid()}  # what an earlier process wrote is not this run's
    saved[key] = value
    os.environ[HANDOFF_ENV] = json.dumps(saved)


def inherited_run_dir() -> str | None:
    """The run folder the launching rank chose, in a DDP child; else None."""
    value = _read().get("run_dir")
    return str(value) if value else None


def hand_run_dir(run_dir: str) -> None:
    """Leaves the run folder for this process's DDP children."""
    _write("run_dir", run_dir)


def inherited_fit_plan() -> dict[str, Any] | None:
    """What the launching rank measured before fit (``{"overrides": ..., "plan": ...}``), in a
    DDP child; else None (measure here)."""
    value = _read().get("fit")
    return value if isinstance(value, dict) else None


def hand_fit_plan(overrides: dict[str, Any], plan: dict[str, Any] | None) -> None:
    """Leaves the trainer settings and the budget plan for this process's DDP children."""
    _write("fit", {"overrides": overrides, "plan": plan})


@contextlib.contextmanager
def handing_off() -> Iterator[None]:
    """Around one command: what it hands to its children is removed when it ends, so a later
    command in this process (a test, a notebook) starts from nothing."""
    before = os.environ.get(HANDOFF_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HANDOFF_ENV, None)
        else:
            os.environ[HANDOFF_ENV] = before


def parent_env(pid: int | None = None) -> dict[str, str]:
    """The environment entry a launcher gives the child it starts (its own pid by default)."""
    return {PARENT_ENV: str(os.getpid() if pid is None else pid)}


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
