"""The study on disk: one Optuna study that any number of workers share and that a re-run
continues.

- Storage: a journal file ``<sweep folder>/study.journal`` by default (Optuna's JournalStorage:
  safe for several processes, and on NFS), or any database URL Optuna takes (``sqlite:///...``,
  ``postgresql://...``) for workers without a shared filesystem.
- Which trials count: complete, pruned, and failed ones that failed by themselves. A trial that
  was interrupted (its sweep stopped or killed) is marked failed with ``interrupted`` and does
  not count: a re-run runs the remaining number.
- A trial left RUNNING by a dead worker is found by its worker's process id (same host) or by a
  heartbeat older than ``STALE_AFTER`` seconds (any host), and marked failed and interrupted.
- Asking for a new trial happens under a lock file, so that workers never run more trials
  than asked for.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from litforge.errors import LitforgeError

HEARTBEAT_EVERY = 30.0  # seconds between a running trial's heartbeats
STALE_AFTER = 300.0  # a running trial without a heartbeat for this long has lost its worker
HOST = socket.gethostname()
_thread_lock = threading.Lock()


def open_storage(url: str) -> BaseStorage:
    """A database URL as Optuna takes it, or a journal file path."""
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url, lock_obj=JournalFileSymlinkLock(url)))


def open_study(url: str, name: str, direction: str, sampler: Any, pruner: Any) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(url),
        study_name=name,
        direction=direction,  # type: ignore[arg-type]
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise LitforgeError(
            f"the study {name} in {url} was made to {study.direction.name.lower()}, the sweep "
            f"now asks to {direction}: use another sweep name, or remove {url}"
        )
    return study


@contextmanager
def ask_lock(folder: Path) -> Iterator[None]:
    """One asker at a time: threads of this process and processes sharing ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = JournalFileSymlinkLock(str(folder / "ask"), grace_period=60)
    with _thread_lock:
        lock.acquire()
        try:
            yield
        finally:
            lock.release()


def is_interrupted(t: FrozenTrial) -> bool:
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("interrupted"))


def counts(t: FrozenTrial) -> bool:
    """Whether a finished trial counts towards n_trials (an interrupted one does not)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and not is_interrupted(t)
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(t: FrozenTrial, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is gone."""
    if t.state != TrialState.RUNNING:
        return False
    attrs = t.user_attrs
    beat = attrs.get("heartbeat")  # set when asked, then every HEARTBEAT_EVERY seconds
    if beat is None and t.datetime_start is not None:
        beat = t.datetime_start.timestamp()
    now = time.time() if now is None else now
    if beat is None or now - float(beat) > STALE_AFTER:
        return True
    return attrs.get("host") == HOST and not _pid_alive(int(attrs.get("pid", -1)))


def mark_interrupted(study: optuna.Study, t: FrozenTrial) -> None:
    # Optuna's own fail_stale_trials goes through study._storage the same way.
    study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
    study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def fail_stale(study: optuna.Study) -> list[int]:
    """Marks the trials of dead workers failed and interrupted; returns their numbers."""
    stale = [t for t in study.get_trials(deepcopy=False) if is_stale(t)]
    for t in stale:
        mark_interrupted(study, t)
    return [t.number for t in stale]


class Heartbeat:
    """Sets the trial's ``heartbeat`` user attribute every HEARTBEAT_EVERY seconds."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self._stop = trial, threading.Event()
        trial.set_user_attr("heartbeat", time.time())
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # the trial was finished by another worker: nothing to keep alive
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
