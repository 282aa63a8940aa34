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

``--project NAME`` (``make test-NAME`` for a folder ``projects/NAME``): the tests of that project
and the shared ones that concern it, chosen by path, not by a substring of test names (a project
named ``load`` would match every test with "load" in its name): a test under
``projects/NAME/``, or one of another folder parametrized by a path under ``projects/NAME/`` or
by its package name (``tests/test_configs.py``'s configs, ``tests/test_help.py``'s packages).

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

REPO = Path(__file__).resolve().parent
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--project",
        default=None,
        help="only the tests of projects/<NAME> and the shared tests that concern it",
    )


def concerns(item: pytest.Item, project: Path, packages: set[str]) -> bool:
    """Whether ``item`` is a test of ``project`` or a shared test run for it (a parameter that is
    a path inside it, or the name of one of its packages)."""
    if project in Path(item.path).parents:
        return True
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec else ():
        if isinstance(value, Path) and project in value.resolve().parents:
            return True
        if isinstance(value, str) and value in packages:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name = config.getoption("--project")
    if not name:
        return
    project = REPO / "projects" / name
    if not project.is_dir():
        raise pytest.UsageError(f"--project {name}: no folder {project}")
    packages = {p.parent.name for p in project.glob("src/*/__init__.py")}
    kept = [item for item in items if concerns(item, project, packages)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
