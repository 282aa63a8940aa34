"""``scripts/check-lock.sh`` (what ``make init`` runs before it trusts its stamp or installs, and
``make quality`` runs too) on a copy of the files that poetry reads: the unchanged copy agrees
with poetry.lock; a dependency added to one project's or to the root pyproject.toml is caught,
and the message names ``make lock``; ``make init`` then stops without "ready" and installs
nothing. Offline: no package index, no ``poetry lock``, no ``poetry sync``."""

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_POETRY = REPO / ".tools" / "poetry" / "bin" / "poetry"
POETRY = str(LOCAL_POETRY) if LOCAL_POETRY.is_file() else shutil.which("poetry")
pytestmark = pytest.mark.skipif(
    POETRY is None, reason="no poetry executable (.tools/poetry/bin/poetry or on PATH): 'make init'"
)


def copy_repo(dest: Path) -> Path:
    """The files poetry reads, and scripts/; nothing else (no .venv, no sources)."""
    for name in ("pyproject.toml", "poetry.lock", "poetry.toml"):
        shutil.copy2(REPO / name, dest / name)
    for pyproject in [
        *REPO.glob("packages/*/pyproject.toml"),
        *REPO.glob("projects/*/pyproject.toml"),
    ]:
        folder = dest / pyproject.parent.relative_to(REPO)
        folder.mkdir(parents=True)
        for name in ("pyproject.toml", "README.md"):
            if (pyproject.parent / name).is_file():
                shutil.copy2(pyproject.parent / name, folder / name)
    shutil.copytree(
        REPO / "scripts", dest / "scripts", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def check_lock(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POETRY": str(POETRY)}
    return subprocess.run(
        ["bash", str(repo / "scripts" / "check-lock.sh")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_to_template(repo: Path) -> None:
    """A third-party dependency in one project's pyproject.toml, as a user would add it."""
    pyproject = repo / "projects" / "template" / "pyproject.toml"
    text = pyproject.read_text()
    assert "dependencies = [\n" in text
    pyproject.write_text(
        text.replace("dependencies = [\n", 'dependencies = [\n  "einops>=0.8",\n', 1)
    )


def add_to_root(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text()
    header = "[tool.poetry.group.test.dependencies]\n"
    assert header in text
    pyproject.write_text(text.replace(header, f'{header}einops = ">=0.8"\n', 1))


def test_init_runs_this_check() -> None:
    assert "bash scripts/check-lock.sh" in (REPO / "scripts" / "init.sh").read_text()


@pytest.mark.slow  # poetry in a subprocess, as the three below; make quality checks the lock too
def test_the_unchanged_copy_agrees(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    before = snapshot(repo)
    done = check_lock(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stderr, done.stderr
    assert snapshot(repo) == before and not (repo / ".venv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("edit", [add_to_template, add_to_root], ids=["project", "root"])
def test_a_new_dependency_without_make_lock_is_caught(
    tmp_path: Path, edit: Callable[[Path], None]
) -> None:
    repo = copy_repo(tmp_path)
    edit(repo)
    before = snapshot(repo)
    done = check_lock(repo)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "make lock" in done.stderr, done.stderr
    if edit is add_to_template:  # it says which file and which package
        assert "projects/template/pyproject.toml" in done.stderr and "einops" in done.stderr
    assert snapshot(repo) == before and not (repo / ".venv").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not list(LOCAL_POETRY.parents[1].glob("lib/python*/site-packages/poetry_plugin_pypi_mirror")),
    reason="scripts/init.sh runs only with .tools/poetry and its mirror plugin (else it installs)",
)
def test_init_stops_without_ready_and_installs_nothing(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    (repo / ".tools").symlink_to(REPO / ".tools")
    add_to_template(repo)
    before = snapshot(repo)
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "init.sh")],
        cwd=repo,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ready" not in done.stdout + done.stderr
    assert "make lock" in done.stderr and "nothing was installed or removed" in done.stderr
    assert snapshot(repo) == before and not (repo / ".venv").exists()
