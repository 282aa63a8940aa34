"""Errors a user can act on. The command line prints their message alone, on one line, without
a traceback, and exits with the error's ``exit_status``: 2 for a setting that cannot be used (as
for a misspelled key), 1 for a run that could not go on. The message names the file, key or
value at fault."""

from __future__ import annotations


class LitforgeError(Exception):
    """Base of the errors whose message is the whole story."""

    exit_status = 1


class SettingError(LitforgeError, ValueError):
    """A setting's value that cannot be used (``--data.batch_size=0``, ``--trainer.max_epochs=-3``):
    exit status 2, as for any other mistake on the command line or in a config file."""

    exit_status = 2


class DataError(LitforgeError, ValueError):
    """Data that cannot be used as it is (an empty set, a batch larger than the set, ...)."""


class InputError(DataError):
    """New inputs given for prediction that do not fit the model (a missing column, an image of
    other channels, an unreadable file): the message names the file and row; exit status 2."""

    exit_status = 2


class CheckpointError(LitforgeError):
    """A checkpoint given with ``--ckpt_path`` that does not exist or does not fit the model."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """``--ckpt_path`` names no file."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """The checkpoint's weights do not fit the model (another project's, other settings)."""


PRUNED_EXIT = 3  # the exit status of a pruned sweep trial: not a failure, not a finished run


class TrialPruned(Exception):
    """A sweep's pruner stopped this trial: its metric is not promising. Not a failure: the
    command prints ``pruned: ...`` and exits with ``PRUNED_EXIT``; status.json says ``pruned``."""


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line: its lines stripped and joined by spaces; cut to ``limit``
    characters (with " ...") when given."""
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if limit is not None and len(line) > limit:
        line = line[: limit - 4].rstrip() + " ..."
    return line
