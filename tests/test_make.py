"""The Makefile's test targets, as CI runs them (``make test-all DIR=<folder>``, one job a folder):
pytest's exit status 5, "no test selected", passes only for a folder without any test file (a
new project with no tests yet); a folder whose test files yield nothing fails, since its tests
were not collected or the marker deselected them all."""

from __future__ import annotations

import os
import subprocess
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
