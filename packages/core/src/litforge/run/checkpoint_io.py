"""Checkpoint files that are never half written: ``AtomicCheckpointIO``.

Lightning's own writer opens the target and writes into it (through an fsspec transaction whose
temporary file may lie on another file system), so a process killed during the write (``kill
-9``, the OOM killer, a preempted node) can leave ``last.ckpt`` truncated: the run's only way
back is gone. Here the checkpoint is written to a temporary file in the target's own folder,
flushed to disk (fsync), and renamed onto the target (``os.replace``: atomic on one file
system), then the folder is fsynced. At any moment the target is the previous checkpoint or the
new one, whole. A killed write leaves a ``.<name>.<random>.tmp`` beside it, which the next
successful write of that name removes. The LitforgeCLI gives it to every Trainer that was not
given a CheckpointIO of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import CheckpointIO, TorchCheckpointIO

from litforge.errors import LitforgeError

TMP_SUFFIX = ".tmp"


class StorageError(LitforgeError, OSError):
    """A checkpoint could not be written: the disk is full, the run folder was deleted, ...;
    the message names the file and says what is kept."""


def _fsync_dir(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (POSIX; elsewhere nothing to do)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local writes are atomic (see the module doc); remote paths (s3://,
    ...) go through Lightning's writer. Loading is TorchCheckpointIO's."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if storage_options is not None or not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(local_path)
        run_dir = target.parent.parent
        if target.parent.name == "checkpoints" and not run_dir.is_dir():
            raise StorageError(
                f"the run folder {run_dir} is gone (deleted while the run went on): "
                f"{target.name} cannot be saved; start the run again"
            )
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: a fresh file, created with the usual permissions (0o666 less the umask)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as f:
                    self.write(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as err:  # a full disk, a quota, a folder gone: one line, not 145
            kept = f"the previous {target.name} is kept; " if target.is_file() else ""
            raise StorageError(
                f"could not write the checkpoint {target}: {err.strerror or err}; {kept}"
                "free some space (or move the run) and resume from the last checkpoint"
            ) from err
        _fsync_dir(target.parent)
        for leftover in target.parent.glob(f".{target.name}.*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)  # of a write that was killed

    def write(self, checkpoint: dict[str, Any], f: IO[bytes]) -> None:
        """Writes the checkpoint into the open temporary file (tests slow it down here)."""
        torch.save(checkpoint, f)


def with_atomic_checkpoints(plugins: Any) -> Any:
    """The Trainer's ``plugins`` with an AtomicCheckpointIO added, unless they hold a
    CheckpointIO already (the user's choice) or the machine runs XLA (which needs its own)."""
    from lightning_fabric.accelerators.xla import _XLA_AVAILABLE

    given: list[Any]
    if plugins is None:
        given = []
    elif isinstance(plugins, Sequence) and not isinstance(plugins, str):
        given = list(plugins)
    else:
        given = [plugins]
    if _XLA_AVAILABLE or any(isinstance(p, CheckpointIO) for p in given):
        return plugins
    return [*given, AtomicCheckpointIO()]
