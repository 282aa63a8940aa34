"""``scripts/new_project.py`` (what ``make new-project NAME=foo`` runs) on a copy of the
repository: the new project is complete, renamed and registered, and its own tests pass; bad
names are refused with a clear message and change nothing. And the recipes in docs/new-task/
(the files a user changes after ``make new-project``) keep their promise: few changed lines, no
change to core, and a real run that learns and writes its diagnostics."""

import csv
import difflib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path("scripts") / "new_project.py"
NOT_COPIED = {".git", ".venv", ".tools", "runs", "data", "wandb", "__pycache__", ".mypy_cache"}
NOT_COPIED |= {".ruff_cache", ".pytest_cache", "lightning_logs", "bench-results"}


def repository_files() -> list[Path]:
    """What git would commit: tracked and untracked files that are not ignored."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [Path(p) for p in listed.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        files = [
            p.relative_to(REPO)
            for p in REPO.rglob("*")
            if not NOT_COPIED.intersection(p.relative_to(REPO).parts)
        ]
    return [f for f in files if (REPO / f).is_file()]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("repo")
    for rel in repository_files():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, copy / rel)
    return copy


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("LITFORGE_RUN_DIR", "PYTHONPATH")}
    return {**clean, "PYTHONDONTWRITEBYTECODE": "1"}


def new_project(repo: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / SCRIPT), name, "--root", str(repo)],
        cwd=repo,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("os", "standard library"),
        ("json", "standard library"),
        ("torch", "installed module"),
        ("litforge", "installed module"),
        ("template", "exists already"),
        ("1abc", "not a valid project name"),
        ("Foo-Bar", "not a valid project name"),
        ("FooBar", "not a valid project name"),
        ("class", "keyword"),
        ("core", "too generic"),
    ],
)
def test_bad_names_are_refused_and_change_nothing(repo: Path, name: str, reason: str) -> None:
    before = snapshot(repo)
    done = new_project(repo, name)
    assert done.returncode == 2, done.stdout + done.stderr
    assert reason in done.stderr and "nothing was changed" in done.stderr, done.stderr
    assert snapshot(repo) == before


@pytest.mark.slow  # runs the new project's own tests in a subprocess
def test_new_project_is_complete_registered_and_its_tests_pass(repo: Path) -> None:
    template_before = snapshot(repo / "projects" / "template")
    root_before = tomllib.loads((repo / "pyproject.toml").read_text())
    done = new_project(repo, "foo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "make train-foo" in done.stdout and "make lock" in done.stdout

    project = repo / "projects" / "foo"
    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    package = [f"src/foo/{m}.py" for m in ("__init__", "__main__", "cli", "data", "model")]
    expected = {"pyproject.toml", "README.md", "src/foo/configs/default.yaml", *package}
    assert expected | {"tests/test_foo_project.py"} <= files, sorted(files)
    assert not any("template" in f or "__pycache__" in f for f in files), sorted(files)
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "template_project" not in text and "litforge-template" not in text, path
    assert 'project="foo"' in (project / "src/foo/cli.py").read_text()
    assert "python -m foo fit" in (project / "src/foo/configs/default.yaml").read_text()
    # The README is the new project's: its name, commands and run folder; only its first
    # sentence, which says where it came from, names the template.
    readme = (project / "README.md").read_text()
    module = script()
    assert module.TEMPLATE_INTRO in (repo / "projects/template/README.md").read_text()
    assert readme.startswith("# litforge-foo\n") and module.PROJECT_INTRO in readme, readme
    for text in ("make train-foo", "make test-foo", "python -m foo ", "runs/foo/", "src/foo/"):
        assert text in readme, text
    assert "template" not in readme.replace(module.PROJECT_INTRO, ""), readme
    own = tomllib.loads((project / "pyproject.toml").read_text())
    assert own["project"]["name"] == "litforge-foo"
    assert own["tool"]["poetry"]["packages"] == [{"include": "foo", "from": "src"}]
    assert snapshot(repo / "projects" / "template") == template_before

    # Registered in the root pyproject.toml, and nothing else there changed.
    root_text = (repo / "pyproject.toml").read_text()
    assert 'litforge-foo = { path = "projects/foo", develop = true }\n' in root_text
    root_after = tomllib.loads(root_text)
    root_before["tool"]["poetry"]["dependencies"]["litforge-foo"] = {
        "path": "projects/foo",
        "develop": True,
    }
    root_before["tool"]["ruff"]["lint"]["isort"]["known-first-party"].append("foo")
    assert root_after == root_before

    # The new project passes the repository's lint and format checks as it is.
    ruff = [sys.executable, "-m", "ruff"]
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [*ruff, *check, str(project)], cwd=repo, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

    # Its own tests, with this environment's python. `make new-project` would install it with
    # `poetry lock` and `poetry sync` first; that needs the package index and minutes, so here
    # PYTHONPATH makes `foo` importable from the copy instead.
    run_env = {**env(), "PYTHONPATH": str(project / "src")}
    where = subprocess.run(
        [sys.executable, "-c", "import foo; print(foo.__file__)"],
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(project / "src" / "foo" / "__init__.py"), where
    pytest_args = ["-q", "-p", "no:cacheprovider", "--import-mode=importlib"]
    pytest_args += [f"--basetemp={repo.parent / 'foo-tests'}", str(project / "tests")]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args],
        cwd=repo,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


# ---------------------------------------------------------------------- the script's parts
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("new_project_script", REPO / SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PYPROJECT = """# comment kept
[tool.poetry.dependencies]
python = ">=3.11"  # kept too
litforge-core = { path = "packages/core", develop = true }

[tool.poetry.group.dev.dependencies]
ruff = "*"

[tool.ruff.lint.isort]
known-first-party = [
    "litforge",
    "cifar10_demo"  # no trailing comma
]
"""


def test_registration_keeps_the_rest_of_pyproject() -> None:
    text = script().registered(PYPROJECT, "my_task")
    assert text.startswith("# comment kept\n") and '">=3.11"  # kept too' in text
    deps = text.split("[tool.poetry.group")[0]
    assert 'litforge-my-task = { path = "projects/my_task", develop = true }\n' in deps
    parsed = tomllib.loads(text)
    assert parsed["tool"]["ruff"]["lint"]["isort"]["known-first-party"] == [
        "litforge",
        "cifar10_demo",
        "my_task",
    ]
    assert parsed["tool"]["poetry"]["group"]["dev"]["dependencies"] == {"ruff": "*"}
    # No isort table at all: one is added.
    bare = PYPROJECT.split("[tool.ruff.lint.isort]")[0]
    parsed = tomllib.loads(script().registered(bare, "my_task"))
    assert parsed["tool"]["ruff"]["lint"]["isort"]["known-first-party"] == ["my_task"]


def test_a_failure_half_way_undoes_everything(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = script()
    before = snapshot(repo)

    def broken_tidy(root: Path, dest: Path) -> None:
        assert (dest / "src" / "halfway").is_dir()  # copied and registered by now
        assert "litforge-halfway" in (root / "pyproject.toml").read_text()
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(module, "tidy", broken_tidy)
    with pytest.raises(RuntimeError, match="simulated"):
        module.create("halfway", repo)
    assert snapshot(repo) == before


# ---------------------------------------------------------------------- the recipes
RECIPES = REPO / "docs" / "recipes"
RECIPE_PROJECT = "mytask"  # the recipes are written for `make new-project NAME=mytask`
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
# A few epochs, validated (and so drawn) once, at the end: each run takes ~7 s of CPU.
EPOCHS = ["--trainer.max_epochs=5", "--trainer.check_val_every_n_epoch=5"]


def added_lines(before: str, after: str) -> int:
    """Lines added or changed, as diff counts them: every line of ``after`` (blank and comment
    lines included) that is not matched to an unchanged line of ``before``."""
    a, b = before.splitlines(), after.splitlines()
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return sum(j2 - j1 for tag, _, _, j1, j2 in opcodes if tag in ("replace", "insert"))


@pytest.fixture
def mytask(repo: Path) -> Iterator[Path]:
    """projects/mytask, fresh from the template in the repository copy; removed afterwards, and
    the copy's pyproject.toml restored, so that the next recipe starts from the template too."""
    pyproject = (repo / "pyproject.toml").read_text()
    done = new_project(repo, RECIPE_PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield repo / "projects" / RECIPE_PROJECT
    finally:
        shutil.rmtree(repo / "projects" / RECIPE_PROJECT)
        (repo / "pyproject.toml").write_text(pyproject)


def apply_recipe(kind: str, project: Path) -> dict[str, int]:
    """Copies the recipe's files over the new package; returns the lines each one adds or
    changes against the file it replaces (all of a new file's lines)."""
    package = project / "src" / RECIPE_PROJECT
    changed = {}
    for source in sorted(p for p in (RECIPES / kind).rglob("*") if p.is_file()):
        rel = source.relative_to(RECIPES / kind)
        target = package / rel
        before = target.read_text() if target.is_file() else ""
        after = source.read_text()
        if after != before:
            changed[str(rel)] = added_lines(before, after)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(after)
    return changed


def fit(project: Path, root: Path, *args: str) -> tuple[dict[str, float], str]:
    """``python -m mytask fit`` as a user runs it, with the copy's package on the path (it is
    not installed in .venv); returns results.json and the output."""
    run_dir = root / "run"
    command = [sys.executable, "-m", RECIPE_PROJECT, "fit", f"--run.dir={run_dir}"]
    done = subprocess.run(
        [*command, "--run.loggers=[csv]", *QUIET, *args],
        cwd=root,
        env={**env(), "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text()), done.stdout + done.stderr


def media(root: Path, key: str, suffix: str = ".png") -> list[Path]:
    return sorted((root / "run" / "media" / key).glob(f"*{suffix}"))


@pytest.mark.slow
def test_recipe_regression(mytask: Path, tmp_path: Path) -> None:
    """Rows of float features -> one float: ArrayDataModule, Regressor, table diagnostics."""
    changed = apply_recipe("tabular-regression", mytask)
    assert len(changed) <= 3 and sum(changed.values()) <= 80, changed
    results, output = fit(mytask, tmp_path, *EPOCHS)
    assert "from the data module to the model: num_features=8" in output, output[-3000:]
    assert {"test/rows/mse", "test/rows/mae", "test/rows/r2"} <= set(results), sorted(results)
    assert results["test/rows/r2"] > 0.5, results  # 0.68 measured; predicting the mean: 0
    assert results["test/rows/mse"] < 0.5, results  # the targets are standardised: 1 = the mean
    for side in ("highest_error", "lowest_error"):  # tables of rows, k = 8 in the config
        (table,) = media(tmp_path, f"test/rows/extremes/{side}", ".csv")
        rows = list(csv.DictReader(table.open()))
        assert len(rows) == 8, rows
        assert {"error", "index", "features", "target", "pred.value"} <= set(rows[0]), rows[0]
        errors = [float(row["error"]) for row in rows]
        assert errors == sorted(errors, reverse=side == "highest_error"), errors
    assert media(tmp_path, "test/rows/regression")


@pytest.mark.slow
def test_recipe_classification_gray(mytask: Path, tmp_path: Path) -> None:
    """Image classification with another size and channel count: 8 x 8 grayscale, 10 classes;
    the model takes both from the data."""
    changed = apply_recipe("grayscale", mytask)
    assert len(changed) <= 2 and sum(changed.values()) <= 30, changed
    assert "model.py" not in changed
    small = ["--data.n_train=640", "--data.n_test=160", "--data.val_size=80"]
    results, output = fit(mytask, tmp_path, *small, *EPOCHS)
    assert results["test/digits/accuracy"] > 0.3, results  # chance: 0.1; 0.52 measured
    assert media(tmp_path, "test/digits/extremes/highest_error")
    assert media(tmp_path, "val/digits/confusion_matrix")
    linked = "from the data module to the model: num_classes=10, in_channels=1"
    assert linked in output, output[-3000:]


@pytest.mark.slow
def test_recipe_segmentation(mytask: Path, tmp_path: Path) -> None:
    """A class per pixel: ImageDataModule with a dense mask, Segmenter, masks in the pictures."""
    changed = apply_recipe("segmentation", mytask)
    assert len(changed) <= 3 and sum(changed.values()) <= 80, changed
    small = ["--data.n_train=512", "--data.n_test=128", "--data.val_size=64"]
    results, _ = fit(mytask, tmp_path, *small, *EPOCHS)
    assert {"test/shapes/iou", "test/shapes/pixel_accuracy"} <= set(results), sorted(results)
    assert results["test/shapes/iou"] > 0.4, results  # 0.61 measured; all background: 0.27
    for side in ("highest_error", "lowest_error"):
        (png,) = media(tmp_path, f"test/shapes/extremes/{side}")
        assert png.stat().st_size > 1000
