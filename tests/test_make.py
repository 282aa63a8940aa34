"""The Makefile's test targets, as CI runs them (``make test-all DIR=<folder>``, one job a folder):
pytest's exit status 5, "no test selected", passes only for a folder without any test file (a
new project with no tests yet); a folder whose test files yield nothing fails, since its tests
were not collected or the marker deselected them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each case starts make, pytest and its two workers

REPO = Path(__file__).resolve().parents[1]


def make_test(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        ["make", "-s", "test", f"DIR={folder}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_folder_without_test_files_passes_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    done = make_test(tmp_path / "tests")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"note: no tests in {tmp_path / 'tests'} yet" in done.stdout


def test_a_folder_whose_tests_are_not_selected_fails(tmp_path: Path) -> None:
    """Test files whose only test is marked slow, under the fast tier (``-m "not slow"``):
    pytest selects nothing (exit status 5), and the target fails with a line that says so."""
    folder = tmp_path / "tests"
    folder.mkdir()
    (folder / "test_only_slow.py").write_text(
        "import pytest\n\n\n@pytest.mark.slow\ndef test_long() -> None:\n    pass\n"
    )
    done = make_test(folder)
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"error: pytest selected no test in {folder}, which has test files" in done.stderr


@pytest.mark.slow
def test_make_test_of_a_project_selects_by_path_not_by_substring() -> None:
    """``make test-template`` runs ``projects/template/tests`` and the shared tests run for
    template's files (its configs, sweeps, ``--help``), chosen by path (``--project``, root
    conftest.py): no test of core or of another project whose name holds "template" (a project
    named ``load`` ran 31 tests of other packages by ``-k load``)."""
    pytest_ = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:xdist"]
    dry = subprocess.run(
        ["make", "-n", "test-template"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert 'projects/template/tests tests --project="template"' in dry.stdout
    assert "-k" not in dry.stdout.split("pytest", 1)[1]
    done = subprocess.run(
        [*pytest_, "projects/template/tests", "tests", "--project=template"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert done.returncode == 0 and ids, done.stdout[-3000:]
    assert any(i.startswith("projects/template/tests/") for i in ids)
    shared = [i for i in ids if not i.startswith("projects/template/tests/")]
    assert shared and all(i.startswith("tests/") and "template" in i for i in shared), shared
    assert "tests/test_help.py::test_help[template_project]" in ids


def test_data_with_spaces_is_one_argument() -> None:
    """``make train-template DATA='/tmp/a b/c'``: the path reaches ``--data.root`` whole."""
    import shlex

    dry = subprocess.run(
        ["make", "-n", "train-template", "DATA=/tmp/a b/c"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in dry.stdout.splitlines() if " fit " in line)
    assert "--data.root=/tmp/a b/c" in shlex.split(line)
