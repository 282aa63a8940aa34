"""One process at a time writes a run folder: ``<run dir>/.lock``.

Two commands writing one run folder (two resumes started a second apart, a ``test --run.dir``
while the fit goes on) would log every step twice and write ``best-...-v1.ckpt`` beside the
first. The first command to start holds the lock until it ends; a second one is refused before
it writes anything, with one line naming the holder (process id, host, command, start time).

The lock is the kernel's (``fcntl.flock`` on the lock file; NFS v4 maps it to a byte-range lock
that every node sees): it ends with the process that holds it, however that process ends, so a
``kill -9`` or the OOM killer leaves no stuck lock, without guessing from a process id whether
the holder is gone (a pid is reused; another host's cannot be checked). The file names its
holder for the message, and is removed when the holder ends normally.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from litforge.errors import LitforgeError

LOCK_FILE = ".lock"
# the open lock files of this process, by path: kept out of RunLock, which a model's copy or
# pickle may reach through the CLI (a file object can be neither copied nor pickled)
_HELD: dict[str, IO[str]] = {}


class RunInUseError(LitforgeError):
    """Another process writes the run folder (``RunLock``)."""


def _holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """'process 123 on host-a since 02:50:01 (python -m p fit ...)', or 'another process'."""
    if not holder.get("pid"):
        return "another process"
    started = str(holder.get("started", ""))[11:19]
    command = str(holder.get("command", ""))
    command = command if len(command) <= 40 else command[:37] + "..."
    return (
        f"process {holder['pid']} on {holder.get('host', '?')}"
        + (f" since {started}" if started else "")
        + (f" ({command})" if command else "")
    )


class RunLock:
    """The lock of one run folder, held from ``acquire()`` to ``release()`` (or the process's
    end). ``acquire`` raises ``RunInUseError`` naming the holder when another process has it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE

    def acquire(self, command: str) -> None:
        """Takes the lock for this process, ``command`` its command line (for the message)."""
        import fcntl

        for _ in range(10):  # the file may be removed by its holder between open and flock
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise RunInUseError(
                    f"the run folder {self.path.parent} is in use by "
                    f"{describe_holder(_holder(self.path))}: wait for it to end, or stop it"
                ) from None
            try:
                same = os.fstat(handle.fileno()).st_ino == self.path.stat().st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()  # a file its holder removed: lock the one there now
        else:  # pragma: no cover - a folder whose lock file comes and goes without end
            raise RunInUseError(f"the run folder {self.path.parent}: cannot take {self.path}")
        handle.seek(0)
        handle.truncate()
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        _HELD[str(self.path)] = handle

    def release(self) -> None:
        """Removes the lock file and lets go (nothing when not held)."""
        handle = _HELD.pop(str(self.path), None)
        if handle is None:
            return
        self.path.unlink(missing_ok=True)  # while held: nobody else sees it half-gone
        handle.close()

    @property
    def held(self) -> bool:
        return str(self.path) in _HELD
