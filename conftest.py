"""Fixtures for every test of the repository: packages/*/tests, projects/*/tests and tests/.

Hermetic W&B (autouse): no test sees this machine's W&B settings or credentials, so a logged-in
machine never sends a test run online. For the whole session (module- and session-scoped
fixtures run before any function-scoped one) and again for every test:

- every ``WANDB_*`` variable is removed (``WANDB_API_KEY``, ``WANDB_MODE``, ``WANDB_BASE_URL``,
  ``WANDB_DIR``, ...), and so are the ``XDG_*`` folders, which W&B's config and cache follow;
- ``HOME`` points at an empty temporary folder (a new one per test): ``~/.netrc``,
  ``~/.config/wandb`` and ``~/.cache/wandb`` are that folder's; ``NETRC`` names its ``.netrc``,
  which does not exist.

Without credentials W&B runs offline (``litforge.run.loggers.wandb_offline``); a test that wants
another set-up says so with ``monkeypatch.setenv``. ``WANDB_*`` variables that a test leaves
behind (Lightning's offline WandbLogger sets ``WANDB_MODE=dryrun`` in the process) are removed
after it. ``hermetic_home`` is the test's HOME.

``tiny_image_folder`` (session): a CIFAR-10-shaped image folder written by
``litforge.testing.write_image_folder``: ``train/`` and ``test/``, 10 classes
(``class0`` .. ``class9``), 20 and 5 PNGs of 32 x 32 per class, learnable in a few epochs.
Read only: a test that needs a broken copy makes one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

XDG_FOLDERS = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")


def _wandb_variables() -> list[str]:
    return [name for name in os.environ if name.startswith("WANDB_")]


def _isolate(mp: pytest.MonkeyPatch, home: Path) -> None:
    for name in [*_wandb_variables(), *XDG_FOLDERS]:
        mp.delenv(name, raising=False)
    home.mkdir(parents=True, exist_ok=True)
    mp.setenv("HOME", str(home))
    mp.setenv("NETRC", str(home / ".netrc"))


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("home-session"))
        yield


@pytest.fixture(autouse=True)
def hermetic_home(
    _hermetic_session: None,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    _isolate(monkeypatch, home)
    yield home
    for name in _wandb_variables():
        del os.environ[name]


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from litforge.testing import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("tiny-image-folder"))
