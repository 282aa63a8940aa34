"""``scripts/new_project.py`` (what ``make new-project NAME=foo`` runs) on a copy of the
repository: the new project is complete, renamed and registered, and its own tests pass; bad
names are refused with a clear message and change nothing. And the recipes in docs/recipes/
(the files a user changes after ``make new-project``, one folder per kind of task, each shown on
its page docs/tasks/<kind>.md) keep their promise: exactly the changed lines their page states,
within the budget, no change to core; a real run on a sample of the kind's own input format
(a CSV, a folder of JPEGs of mixed sizes, a file of token strings: written here, no user data)
that learns and writes its diagnostics; and the new project's own tests pass without the
user's data."""

import csv
import datetime
import difflib
import hashlib
import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from PIL import Image

from litforge import testing
from litforge.experiments.space import load_sweep

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
    clean = {k: v for k, v in os.environ.items() if k != "LITFORGE_RUN_DIR"}
    return {**clean, "PYTHONDONTWRITEBYTECODE": "1"}


def with_path(project: Path) -> dict[str, str]:
    """env() with the copy's package first on the path (it is not installed in .venv); a
    PYTHONPATH already set (a checkout of core other than the installed one) stays after it."""
    return {
        **env(),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(project / "src"), os.environ.get("PYTHONPATH")])
        ),
    }


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
    assert 'Project("foo"' in (project / "src/foo/cli.py").read_text()
    sweeps = sorted((project / "src/foo/configs/sweeps").iterdir())
    assert [p.name for p in sweeps] == ["quick.yaml"]  # the project's own, not the template's
    assert sweeps[0].read_text() == script().PROJECT_SWEEP.format(name="foo")
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
    run_env = with_path(project)
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


def test_a_new_projects_sweep_file_is_its_own(tmp_path: Path) -> None:
    """The template's sweep tunes the template's settings on its metric; a new project's names
    no metric (the runs' monitored one) and tunes only what every task from the template has."""
    module = script()
    dest = tmp_path / "foo"
    module.copy_template(REPO / "projects" / "template", dest, "foo")
    module.write_sweep(dest, "foo")
    (path,) = (dest / "src/foo/configs/sweeps").iterdir()
    text = path.read_text()
    assert path.name == "quick.yaml" and text.startswith(
        "# A first sweep: make sweep-foo SWEEP=quick"
    )
    assert "python -m foo sweep quick" in text and "runs/foo/sweeps/quick/" in text
    assert not any(word in text for word in ("width", "n_train", "shapes", "1024", "minutes"))
    sweep = load_sweep(path)
    assert sweep.metric is None and sweep.direction is None
    assert set(sweep.parameters) == {"model.optimizer.init_args.lr", "data.batch_size"}
    assert set(sweep.fixed) == {"trainer.max_epochs", "run.loggers"}


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
TASK_PAGES = REPO / "docs" / "tasks"
RECIPE_PROJECT = "mytask"  # the recipes are written for `make new-project NAME=mytask`
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
# recipe folder -> its page, and the budget: (files, lines) added or changed at most
KINDS = {
    "image-folder": ("image-folder.md", (2, 20)),
    "tabular-classification": ("tabular-classification.md", (3, 60)),
    "tabular-regression": ("tabular-regression.md", (3, 60)),
    "sequence-classification": ("sequence-classification.md", (3, 60)),
    "image-regression": ("image-regression.md", (3, 60)),
    "segmentation": ("segmentation.md", (3, 60)),
    "grayscale": ("grayscale.md", (3, 60)),
    "multi-label": ("multi-label.md", (3, 60)),
    "forecasting": ("forecasting.md", (3, 60)),
    "customer-table": ("customer-table.md", (3, 60)),
    "recordings": ("recordings.md", (3, 60)),
}
COUNTS = re.compile(
    r"^Changed after `make new-project`: (?P<files>.*) \((?P<n>\d+) files?, (?P<total>\d+) lines\)"
)


def added_lines(before: str, after: str) -> int:
    """Lines added or changed, as diff counts them: every line of ``after`` (blank and comment
    lines included) that is not matched to an unchanged line of ``before``."""
    a, b = before.splitlines(), after.splitlines()
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return sum(j2 - j1 for tag, _, _, j1, j2 in opcodes if tag in ("replace", "insert"))


def recipe_files(kind: str) -> list[Path]:
    return sorted(
        p for p in (RECIPES / kind).rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def changed_lines(kind: str, package: Path) -> dict[str, int]:
    """What copying the recipe over ``package`` changes: the lines each file adds or changes
    against the file it replaces (all of a new file's lines)."""
    changed = {}
    for source in recipe_files(kind):
        rel = source.relative_to(RECIPES / kind)
        target = package / rel
        before = target.read_text() if target.is_file() else ""
        after = source.read_text()
        if after != before:
            changed[rel.as_posix()] = added_lines(before, after)
    return changed


def stated(kind: str) -> dict[str, int]:
    """The counts the kind's page states: its line ``Changed after `make new-project`: `data.py`
    6, `configs/default.yaml` 6 (2 files, 12 lines)``, checked against its own totals, and
    against the row of the index table that links the page."""
    page, _ = KINDS[kind]
    lines = [
        m for line in (TASK_PAGES / page).read_text().splitlines() if (m := COUNTS.match(line))
    ]
    assert len(lines) == 1, f"docs/tasks/{page} must state its counts once, as {COUNTS.pattern}"
    match = lines[0]
    counts = {f: int(n) for f, n in re.findall(r"`([^`]+)` (\d+)", match.group("files"))}
    assert len(counts) == int(match.group("n")) and sum(counts.values()) == int(
        match.group("total")
    )
    index = (TASK_PAGES / "index.md").read_text()
    row = next((r for r in index.splitlines() if f"]({page})" in r and r.startswith("|")), "")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2:] == [str(len(counts)), str(sum(counts.values()))], (
        f"docs/tasks/index.md: the row of {page} must end with | files | lines |: {row!r}"
    )
    return counts


@pytest.fixture(scope="module")
def fresh_package(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """src/mytask as ``make new-project NAME=mytask`` writes it (kept aside, the copy restored)."""
    pyproject = (repo / "pyproject.toml").read_text()
    done = new_project(repo, RECIPE_PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    kept = tmp_path_factory.mktemp("fresh") / RECIPE_PROJECT
    try:
        shutil.copytree(repo / "projects" / RECIPE_PROJECT / "src" / RECIPE_PROJECT, kept)
    finally:
        shutil.rmtree(repo / "projects" / RECIPE_PROJECT)
        (repo / "pyproject.toml").write_text(pyproject)
    return kept


def test_every_recipe_folder_has_its_page_and_counts() -> None:
    assert sorted(p.name for p in RECIPES.iterdir() if p.is_dir()) == sorted(KINDS)
    for kind in KINDS:
        assert stated(kind), kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_recipe_changes_exactly_the_lines_its_page_states(kind: str, fresh_package: Path) -> None:
    """Every line counted, blank and comment lines included; within the kind's budget."""
    changed = changed_lines(kind, fresh_package)
    assert changed == stated(kind), changed
    files, lines = KINDS[kind][1]
    assert len(changed) <= files and sum(changed.values()) <= lines, changed
    for source in recipe_files(kind):  # shown on its page as it is
        page = (TASK_PAGES / KINDS[kind][0]).read_text()
        assert source.read_text().strip() in page, f"{source} is not on its page as it is"


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
    """Copies the recipe's files over the new package, as its page says; returns the lines
    each one adds or changes."""
    package = project / "src" / RECIPE_PROJECT
    changed = changed_lines(kind, package)
    for source in recipe_files(kind):
        target = package / source.relative_to(RECIPES / kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    assert changed == stated(kind), changed
    return changed


def fit(project: Path, root: Path, *args: str) -> tuple[dict[str, float], str]:
    """``python -m mytask fit`` as a user runs it (``make train-mytask DATA=...`` adds
    ``--data.root=...``), with the copy's package on the path (it is not installed in .venv);
    returns results.json and the output."""
    run_dir = root / "run"
    command = [sys.executable, "-m", RECIPE_PROJECT, "fit", f"--run.dir={run_dir}"]
    done = subprocess.run(
        [*command, "--run.loggers=[csv]", *QUIET, *args],
        cwd=root,
        env=with_path(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text()), done.stdout + done.stderr


def make_train(project: Path, root: Path, data: Path, *args: str) -> tuple[dict[str, float], str]:
    """``make train-mytask DATA=<data> ARGS="..."`` in the repository copy, as a user runs it
    (``DATA`` goes to ``--data.root``: here one file)."""
    run_dir = root / "run"
    extra = " ".join([f"--run.dir={run_dir}", "--run.loggers=[csv]", *QUIET, *args])
    done = subprocess.run(
        [
            "make",
            "-s",
            f"train-{RECIPE_PROJECT}",
            f"DATA={data}",
            f"ARGS={extra}",
            f"PY={sys.executable}",
        ],
        cwd=project.parents[1],
        env=with_path(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text()), done.stdout + done.stderr


def project_tests_pass(project: Path, root: Path) -> None:
    """The new project's own tests (the template's, unchanged) pass with the recipe applied,
    on this machine without the user's data: they read what write_test_data writes."""
    assert not (root / "data").exists()
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--import-mode=importlib"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            f"--basetemp={root / 'tests'}",
            str(project / "tests"),
        ],
        cwd=root,
        env={**with_path(project), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def media(root: Path, key: str, suffix: str = ".png") -> list[Path]:
    return sorted((root / "run" / "media" / key).glob(f"*{suffix}"))


def extremes_rows(root: Path, key: str) -> list[dict[str, str]]:
    (table,) = media(root, key, ".csv")
    with table.open(newline="") as f:
        return list(csv.DictReader(f))


# A few epochs, validated (and so drawn) once, at the end.
def epochs(n: int) -> list[str]:
    return [f"--trainer.max_epochs={n}", f"--trainer.check_val_every_n_epoch={n}"]


@pytest.mark.slow
def test_recipe_image_folder(mytask: Path, tmp_path: Path) -> None:
    """A folder of JPEGs of mixed sizes in class folders: resized on the first read."""
    apply_recipe("image-folder", mytask)
    folder = testing.write_image_folder(
        tmp_path / "photos",
        classes=("cat", "dog", "eel"),
        per_class={"": 40},
        sizes=(24, 64),
        suffix=".jpg",
    )
    sizes = {Image.open(p).size for p in folder.rglob("*.jpg")}
    assert len(sizes) > 20, sizes  # each image its own size
    results, output = fit(
        mytask, tmp_path, f"--data.root={folder}", "--data.batch_size=16", *epochs(5)
    )
    assert "from the data module to the model: num_classes=3, in_channels=3" in output
    assert results["test/images/accuracy"] > 0.8, results  # chance: 1/3; 1.0 measured
    assert media(tmp_path, "test/images/extremes/highest_error")
    project_tests_pass(mytask, tmp_path)


def tumour_rows(path: Path, n: int = 400) -> dict[str, str]:
    """A CSV like a tumour table: an id, 10 float features, a diagnosis by a noisy nonlinear
    rule; returns the diagnosis of each id."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 10, generator=g)
    score = (
        x[:, 0] + 0.8 * x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2 + 0.3 * torch.randn(n, generator=g)
    )
    names = {
        str(842300 + i): "malignant" if s > 0 else "benign" for i, s in enumerate(score.tolist())
    }
    lines = ["id," + ",".join(f"f{j}" for j in range(10)) + ",diagnosis"]
    lines += [
        f"{i}," + ",".join(f"{v:.4f}" for v in row) + f",{d}"
        for (i, d), row in zip(names.items(), x.tolist())
    ]
    path.write_text("\n".join(lines) + "\n")
    return names


@pytest.mark.slow
def test_recipe_tabular_classification(mytask: Path, tmp_path: Path) -> None:
    """Rows of a CSV with an id column and string labels, trained by ``make train-mytask
    DATA=<the file>``; the extremes name the rows' ids."""
    apply_recipe("tabular-classification", mytask)
    diagnosis = tumour_rows(tmp_path / "tumours.csv")
    args = ["--data.label=diagnosis", *epochs(10)]
    results, output = make_train(mytask, tmp_path, tmp_path / "tumours.csv", *args)
    assert "from the data module to the model: num_classes=2, num_features=10" in output
    assert results["test/table/accuracy"] > 0.7, results  # 0.82 measured; the majority: 0.6
    for side in ("highest_error", "lowest_error"):
        rows = extremes_rows(tmp_path, f"test/table/extremes/{side}")
        assert len(rows) == 8 and all(diagnosis[r["id"]] == r["label"] for r in rows), rows
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow  # pytest in a subprocess, two fast_dev_run fits
def test_the_new_projects_sweep_file_holds_after_a_recipe(mytask: Path, tmp_path: Path) -> None:
    """After a recipe (other settings, another metric name), the sweep file `make new-project`
    left still passes `make test-mytask`'s check of it (tests/test_sweep_files.py: every key
    exists, and the metric it optimises, the runs' monitored one, is the best checkpoint's and
    is logged), while the template's sweep, in its place, fails on the template's settings."""
    apply_recipe("tabular-classification", mytask)
    sweeps = mytask / "src" / RECIPE_PROJECT / "configs" / "sweeps"
    template = REPO / "projects/template/src/template_project/configs/sweeps/quick.yaml"
    (sweeps / "template.yaml").write_text(script().rename_text(template.read_text(), "mytask"))
    repo = mytask.parents[1]
    args = ["-q", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", "--import-mode=importlib"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            f"--basetemp={tmp_path / 'tests'}",
            f"--project={RECIPE_PROJECT}",
            "tests/test_sweep_files.py",
        ],
        cwd=repo,
        env={**with_path(mytask), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    check = "tests/test_sweep_files.py::test_sweep_file_is_valid[mytask/src/mytask/configs/sweeps/"
    out = done.stdout + done.stderr
    assert f"PASSED {check}quick.yaml]" in out, out[-4000:]
    assert "best by val/table/accuracy, max" in out  # the recipe's metric, its direction
    assert f"FAILED {check}template.yaml]" in out, out[-4000:]
    assert "unrecognized arguments: --data.n_train=1024 --model.width=8" in out
    assert "1 failed, 1 passed" in out.splitlines()[-1], out[-2000:]


def customer_rows(path: Path, n: int = 3000) -> dict[str, dict[str, str]]:
    """A customer table as people have it: an id, numbers and categories (city, plan, channel)
    with empty cells, a yes/no churn drawn from a noisy rule in which an empty income counts
    too; returns each id's row as the file has it."""
    rng = random.Random(5)
    cities = ["Paris", "Lyon", "Lille", "Nice", "Nantes"]
    rows = {}
    for i in range(n):
        plan = rng.choice(["basic", "pro", "family"])
        channel, city = rng.choice(["web", "shop", "phone"]), rng.choice(cities)
        age, tenure, calls = rng.randint(18, 80), rng.randint(0, 72), rng.randint(0, 6)
        income, monthly = round(rng.lognormvariate(3.6, 0.4), 1), round(rng.uniform(10, 90), 2)
        no_income = rng.random() < 0.15
        logit = -0.05 * (tenure - 24) + 0.45 * (calls - 2) + (plan == "basic") * 1.2
        logit += -0.8 * (plan == "family") + 0.7 * (channel == "web") + 0.9 * (city == "Lille")
        logit += 0.03 * (monthly - 50) * (plan == "pro") + 1.0 * no_income - 0.02 * (age - 45)
        churn = "yes" if rng.random() < 1 / (1 + math.exp(-logit)) else "no"
        row = {"id": f"C{10000 + i}", "age": str(age), "income": "" if no_income else str(income)}
        row |= {"city": city, "plan": plan, "channel": channel, "tenure": str(tenure)}
        row |= {"monthly": str(monthly), "calls": str(calls), "churn": churn}
        for column, p in (("age", 0.1), ("city", 0.05), ("channel", 0.1), ("monthly", 0.05)):
            row[column] = "" if rng.random() < p else row[column]
        rows[row["id"]] = row
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(next(iter(rows.values()))))
        writer.writeheader()
        writer.writerows(rows.values())
    return rows


@pytest.mark.slow
def test_recipe_customer_table(mytask: Path, tmp_path: Path) -> None:
    """A customer table with empty cells, category columns, an id and a yes/no target, trained
    by ``make train-mytask DATA=<the file>``; the extremes show each row's cells as the file
    has them."""
    apply_recipe("customer-table", mytask)
    rows = customer_rows(tmp_path / "customers.csv")
    results, output = make_train(mytask, tmp_path, tmp_path / "customers.csv", *epochs(10))
    # 5 numbers, 5 missing-value indicators, 5 + 3 + 3 categories one-hot
    assert "from the data module to the model: num_classes=2, num_features=21" in output
    # 0.753 measured; scikit-learn's LogisticRegression on the same split: 0.760; majority: 0.571
    assert results["test/customers/accuracy"] > 0.72, results
    cells = ["age", "income", "city", "plan", "channel", "tenure", "monthly", "calls"]
    for side in ("highest_error", "lowest_error"):
        shown = extremes_rows(tmp_path, f"test/customers/extremes/{side}")
        assert len(shown) == 8 and all(rows[r["id"]]["churn"] == r["label"] for r in shown)
        assert all(r[c] == rows[r["id"]][c] for r in shown for c in cells), shown
    assert any(r[c] == "" for r in shown for c in cells)  # empty cells shown as such
    # New rows, without the churn column, through the checkpoint's preprocessing: the test
    # rows the extremes show get the class and probability the test run gave them.
    with (tmp_path / "new.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", *cells])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "churn"} for row in rows.values())
    command = [sys.executable, "-m", RECIPE_PROJECT, "predict", f"--ckpt_path={tmp_path / 'run'}"]
    command += [f"--data.predict={tmp_path / 'new.csv'}", f"--run.root={tmp_path / 'runs'}"]
    done = subprocess.run(
        [*command, *QUIET],
        cwd=tmp_path,
        env=with_path(mytask),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("predictions: "))
    with Path(line.split("predictions: ", 1)[1].strip()).open(newline="") as f:
        predicted = {r["id"]: r for r in csv.DictReader(f)}
    assert len(predicted) == len(rows)
    (facts,) = media(tmp_path, "test/customers/extremes/highest_error", ".json")
    for record in json.loads(facts.read_text())["examples"]:
        assert predicted[record["id"]]["prediction"] == record["pred.pred"], record
        assert float(predicted[record["id"]]["probability"]) == pytest.approx(
            record["p(predicted)"], abs=1e-5
        )
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["y1", "[y1,y2]"])
def test_recipe_tabular_regression(mytask: Path, tmp_path: Path, target: str) -> None:
    """Rows of a CSV, one target column or two (a model with two outputs)."""
    apply_recipe("tabular-regression", mytask)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 6, generator=g)
    y1 = (
        torch.sin(2 * x[:, 0])
        + x[:, 1] ** 2 / 2
        - x[:, 2] * x[:, 3]
        + 0.1 * torch.randn(500, generator=g)
    )
    y2 = x[:, 4] - 0.5 * x[:, 5] * x[:, 0] + 0.1 * torch.randn(500, generator=g)
    table = torch.cat([x, y1[:, None], y2[:, None]], 1)
    lines = ["x0,x1,x2,x3,x4,x5,y1,y2"] + [",".join(f"{v:.4f}" for v in r) for r in table.tolist()]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    args = [f"--data.root={tmp_path / 'rows.csv'}", f"--data.target={target}", *epochs(10)]
    results, output = fit(mytask, tmp_path, *args)
    shape = "()" if target == "y1" else "(2,)"
    assert f"target_shape={shape}" in output, output[-3000:]
    assert {"test/table/mse", "test/table/mae", "test/table/r2"} <= set(results), sorted(results)
    assert results["test/table/r2"] > 0.6, results  # 0.72 and 0.85 measured; the mean: 0
    assert media(tmp_path, "test/table/regression")
    if target == "y1":
        project_tests_pass(mytask, tmp_path)


def brackets(path: Path, n: int = 1200) -> None:
    """Lines ``text<TAB>label``: bracket strings of 1 to 21 characters, half balanced."""
    rng = random.Random(3)

    def dyck(pairs: int) -> str:
        out, depth, opens, closes = [], 0, pairs, pairs
        while opens or closes:
            if opens and (depth == 0 or rng.random() < opens / (opens + closes)):
                out, opens, depth = [*out, "("], opens - 1, depth + 1
            else:
                out, closes, depth = [*out, ")"], closes - 1, depth - 1
        return "".join(out)

    def balanced(text: str) -> bool:
        depth = 0
        for c in text:
            depth += 1 if c == "(" else -1
            if depth < 0:
                return False
        return depth == 0

    lines = ["text\tlabel"]
    for i in range(n):
        text = dyck(rng.randint(1, 10))
        if i % 2:  # one bracket turned, sometimes one more
            j = rng.randrange(len(text))
            text = text[:j] + ("(" if text[j] == ")" else ")") + text[j + 1 :]
            text += rng.choice("()") if rng.random() < 0.3 else ""
        lines.append(f"{text}\t{'balanced' if balanced(text) else 'unbalanced'}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_recipe_sequence_classification(mytask: Path, tmp_path: Path) -> None:
    """Bracket strings of any length, balanced or not: tokens padded, lengths, vocabulary, the
    tables showing the text."""
    apply_recipe("sequence-classification", mytask)
    brackets(tmp_path / "lines.tsv")
    known = dict(line.split("\t") for line in (tmp_path / "lines.tsv").read_text().splitlines()[1:])
    results, output = fit(mytask, tmp_path, f"--data.root={tmp_path / 'lines.tsv'}", *epochs(10))
    assert "from the data module to the model: num_classes=2, vocab_size=4" in output
    assert results["test/lines/accuracy"] > 0.85, results  # 0.99 measured; chance: 0.5
    rows = extremes_rows(tmp_path, "test/lines/extremes/highest_error")
    assert rows and all(known[r["tokens"]] == r["label"] for r in rows), rows
    assert all(int(r["lengths"]) == len(r["tokens"]) for r in rows), rows
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
def test_recipe_image_regression(mytask: Path, tmp_path: Path) -> None:
    """Denoising: float images in and out, MSE and PSNR, input | prediction | target drawn."""
    apply_recipe("image-regression", mytask)
    small = ["--data.n_train=512", "--data.n_test=128", "--data.val_size=64"]
    results, output = fit(mytask, tmp_path, *small, *epochs(5))
    assert "in_channels=3, out_channels=3, target_shape=(3, 16, 16)" in output
    assert {"test/shapes/mse", "test/shapes/mae", "test/shapes/psnr"} <= set(results)
    assert "test/shapes/r2" not in results
    # the noisy input scores 10 log10(1 / 0.2^2) = 14.0 dB against the clean image; 19.1 measured
    assert results["test/shapes/psnr"] > 17, results
    assert results["test/shapes/psnr"] == pytest.approx(
        -10 * math.log10(results["test/shapes/mse"]), abs=1e-3
    )
    (png,) = media(tmp_path, "test/shapes/extremes/highest_error")
    assert png.stat().st_size > 1000
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
def test_recipe_segmentation(mytask: Path, tmp_path: Path) -> None:
    """A class per pixel: ImageDataModule with a dense mask, Segmenter, masks in the pictures."""
    apply_recipe("segmentation", mytask)
    small = ["--data.n_train=512", "--data.n_test=128", "--data.val_size=64"]
    results, output = fit(mytask, tmp_path, *small, *epochs(5))
    assert {"test/shapes/iou", "test/shapes/pixel_accuracy"} <= set(results), sorted(results)
    assert results["test/shapes/iou"] > 0.45, results  # 0.56 measured; all background: 0.27
    assert "best by val/shapes/iou" in output, output[-3000:]
    for side in ("highest_error", "lowest_error"):
        (png,) = media(tmp_path, f"test/shapes/extremes/{side}")
        assert png.stat().st_size > 1000
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
def test_recipe_grayscale(mytask: Path, tmp_path: Path) -> None:
    """Image classification with another size and channel count: 8 x 8 grayscale, 10 classes;
    the model, unchanged, takes both from the data."""
    changed = apply_recipe("grayscale", mytask)
    assert "model.py" not in changed
    small = ["--data.n_train=640", "--data.n_test=160", "--data.val_size=80"]
    results, output = fit(mytask, tmp_path, *small, *epochs(5))
    assert results["test/digits/accuracy"] > 0.45, results  # chance: 0.1; 0.68 measured
    assert media(tmp_path, "test/digits/extremes/highest_error")
    assert media(tmp_path, "test/digits/confusion_matrix")
    assert "from the data module to the model: num_classes=10, in_channels=1" in output
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
def test_recipe_recordings(mytask: Path, tmp_path: Path) -> None:
    """Sensor recordings, a CSV file each, named in a table with their class, trained by
    ``make train-mytask DATA=<the table>``: the test accuracy the page states; the extremes'
    JSON names the files with their true classes; new files predicted by the CLI name each
    file; the model exports without a sample."""
    apply_recipe("recordings", mytask)
    from litforge.data.recordings import write_recordings

    labels = write_recordings(tmp_path / "sensors", 240)
    truth = {f"rec{i:03d}.csv": kind for i, kind in enumerate(labels)}
    args = ["--data.batch_size=32", *epochs(12)]
    results, output = make_train(mytask, tmp_path, tmp_path / "sensors" / "labels.csv", *args)
    assert "num_classes=3" in output and "channels=3" in output, output[-3000:]
    assert results["test/recordings/accuracy"] >= 0.9, results  # see docs/tasks/recordings.md
    for side in ("highest_error", "lowest_error"):
        (shown,) = media(tmp_path, f"test/recordings/extremes/{side}", ".json")
        records = json.loads(shown.read_text())["examples"]
        assert len(records) == 8
        assert all(r["label"] == truth[r["id"]] for r in records), records
    new = tmp_path / "new"
    write_recordings(new, 6, seed=1)
    (new / "labels.csv").unlink()
    outputs = []
    for command in (
        ["predict", f"--ckpt_path={tmp_path / 'run'}", f"--data.predict={new}", *QUIET],
        ["export", f"--ckpt_path={tmp_path / 'run'}"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", RECIPE_PROJECT, *command],
            cwd=tmp_path, env=with_path(mytask), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outputs.append(done.stdout)
    line = next(x for x in outputs[0].splitlines() if x.strip().startswith("predictions: "))
    with (tmp_path / line.split("predictions: ", 1)[1].strip()).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [f"rec{i:03d}.csv" for i in range(6)]
    assert "checked: ONNX Runtime against PyTorch" in outputs[1], outputs[1]
    project_tests_pass(mytask, tmp_path)


@pytest.mark.slow
def test_recipe_multi_label(mytask: Path, tmp_path: Path) -> None:
    """Image files of mixed sizes named in a CSV with a set of tags each (some empty), trained by
    ``make train-mytask DATA=<the CSV>``: per-label F1 logged by name, the extremes' JSON holds
    the true tag sets of the files."""
    apply_recipe("multi-label", mytask)
    from litforge.data.tags import write_tagged_images

    truth = write_tagged_images(tmp_path / "photos", 240, sizes=(20, 48))
    assert any(not tags for tags in truth.values())
    args = ["--data.size=[24,24]", "--data.batch_size=16", *epochs(6)]
    results, output = make_train(mytask, tmp_path, tmp_path / "photos" / "tags.csv", *args)
    assert "num_labels=3" in output and "best by val/images/f1_micro" in output, output[-3000:]
    assert results["test/images/f1_micro"] > 0.85, results  # see docs/tasks/multi-label.md
    assert {f"test/images/f1/{c}" for c in ("red", "green", "blue")} <= set(results)
    for side in ("highest_error", "lowest_error"):
        (shown,) = media(tmp_path, f"test/images/extremes/{side}", ".json")
        records = json.loads(shown.read_text())["examples"]
        assert len(records) == 8
        assert all(sorted(r["target"]) == sorted(truth[r["id"]]) for r in records), records
    assert media(tmp_path, "test/images/confusion_matrix")
    assert media(tmp_path, "test/images/uncertainty")
    # new images, as a user predicts them: predictions.csv holds each one's tag set by name
    new = tmp_path / "new"
    new.mkdir()
    for name in list(truth)[:12]:
        shutil.copy(tmp_path / "photos" / name, new / Path(name).name)
    done = subprocess.run(
        [sys.executable, "-m", RECIPE_PROJECT, "predict", f"--ckpt_path={tmp_path / 'run'}",
         f"--data.predict={new}", *QUIET],
        cwd=tmp_path, env=with_path(mytask), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("predictions: "))
    predictions = tmp_path / line.split("predictions: ", 1)[1].strip()  # relative to cwd
    with predictions.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:2] == ["id", "prediction"] and len(rows) == 12
    right = [set(r["prediction"].split()) == set(truth[f"images/{r['id']}"]) for r in rows]
    assert sum(right) >= 11, rows  # the test set's F1 is 1.0
    project_tests_pass(mytask, tmp_path)


# ---------------------------------------------------------------------- using a trained model
# (docs/use.md) Each kind: the model loads alone in a fresh process, and `predict --data.predict`
# writes what `litforge.load(run).predict(...)` gives, with the training data gone.
LOAD_AND_PREDICT = """
import json, importlib, sys, torch, litforge
from litforge.run.use import find_checkpoint
run, source = sys.argv[1], sys.argv[2]
ckpt = find_checkpoint(run)
module, _, name = torch.load(ckpt, weights_only=True)["model_class_path"].rpartition(".")
model = getattr(importlib.import_module(module), name).load_from_checkpoint(ckpt)  # alone
rows = litforge.load(run).predict(source)
print(json.dumps([{k: v for k, v in r.items() if not hasattr(v, "shape")} for r in rows]))
"""


def use_in_fresh_process(project: Path, root: Path, source: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(root / "run"), str(source)],
        cwd=root,
        env=with_path(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def predict_new(project: Path, root: Path, source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", RECIPE_PROJECT, "predict", f"--ckpt_path={root / 'run'}"),
            *(f"--data.predict={source}", f"--run.root={root / 'predicted'}", *QUIET),
        ],
        cwd=root,
        env=with_path(project),
        capture_output=True,
        text=True,
        timeout=300,
    )


def written_predictions(root: Path) -> list[dict[str, str]]:
    (path,) = (root / "predicted").rglob("predictions.csv")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["tabular-classification", "tabular-regression", "sequence-classification", "image-folder"],
)
def test_recipe_model_is_used_on_new_inputs(mytask: Path, tmp_path: Path, kind: str) -> None:
    apply_recipe(kind, mytask)
    new = tmp_path / "new"
    if kind == "tabular-classification":
        diagnosis = tumour_rows(tmp_path / "train.csv", n=200)
        fit(mytask, tmp_path, f"--data.root={tmp_path / 'train.csv'}", "--data.label=diagnosis")
        lines = (tmp_path / "train.csv").read_text().splitlines()[:21]
        unlabeled = [",".join(line.split(",")[:-1]) for line in lines]  # no diagnosis column
        source = new.with_suffix(".csv")
        source.write_text("\n".join(unlabeled) + "\n")
        (tmp_path / "train.csv").unlink()
    elif kind == "tabular-regression":  # y = 10 + 3 (a - b c): far from 0 and 1
        x = torch.randn(160, 3, generator=torch.Generator().manual_seed(4))
        y = 10 + 3 * (x[:, 0] - x[:, 1] * x[:, 2])
        rows = [",".join(f"{v:.4f}" for v in (*r, t)) for r, t in zip(x.tolist(), y.tolist())]
        (tmp_path / "train.csv").write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
        fit(mytask, tmp_path, f"--data.root={tmp_path / 'train.csv'}", "--data.target=y")
        source = new.with_suffix(".csv")
        source.write_text("a,b,c\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows[:20]) + "\n")
        (tmp_path / "train.csv").unlink()
    elif kind == "sequence-classification":
        brackets(tmp_path / "lines.tsv", n=200)
        fit(mytask, tmp_path, f"--data.root={tmp_path / 'lines.tsv'}")
        source = new.with_suffix(".txt")
        source.write_text("(())\n)(\n\n((()))()\n")
        (tmp_path / "lines.tsv").unlink()
    else:
        folder = testing.write_image_folder(
            tmp_path / "photos", classes=("cat", "dog"), per_class={"": 12}, sizes=(16, 40)
        )
        args = ["--data.size=16", "--data.val_size=0.25", "--data.batch_size=8"]
        fit(mytask, tmp_path, f"--data.root={folder}", *args)
        source = testing.write_image_folder(new, classes=("x",), per_class={"": 3}, sizes=(10, 50))
        source = source / "x"
        shutil.rmtree(folder)  # the training data is gone: nothing reads it
    expected = use_in_fresh_process(mytask, tmp_path, source)
    done = predict_new(mytask, tmp_path, source)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    table = written_predictions(tmp_path)
    assert [r["id"] for r in table] == [str(r["id"]) for r in expected]
    if kind == "tabular-regression":  # in the target's units: the standardisation undone
        values = [float(r["prediction"]) for r in table]
        assert values == pytest.approx([r["prediction"] for r in expected], rel=1e-4)
        assert 6 < sum(values) / len(values) < 14, values  # standardised, it would be near 0
        assert [r["id"] for r in table] == [str(i) for i in range(2, 22)]  # the CSV's lines
        return
    assert [r["prediction"] for r in table] == [r["prediction"] for r in expected]
    for row, want in zip(table, expected):
        assert float(row["probability"]) == pytest.approx(want["probability"], rel=1e-4)
        probs = [float(v) for k, v in row.items() if k.startswith("p(")]
        assert sum(probs) == pytest.approx(1, abs=1e-4) and max(probs) == float(row["probability"])
    if kind == "tabular-classification":
        assert [r["id"] for r in table] == list(diagnosis)[:20]  # the id column names each row
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join(line.replace(",f3,", ",g3,") for line in unlabeled) + "\n")
        refused = predict_new(mytask, tmp_path, bad)
        assert refused.returncode == 2, refused.stderr[-2000:]
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {bad}:2: no column 'f3'") and len(line) < 200, line
    if kind == "sequence-classification":
        assert [r["id"] for r in table] == ["1", "2", "4"]  # line numbers; the blank one skipped


def hourly_load(path: Path, weeks: int = 16) -> None:
    """An hourly CSV ``timestamp,load``: a daily and a weekly season, a level that wanders
    (an AR(1) process) and noise; the weekly season shifts the weekends down."""
    g = torch.Generator().manual_seed(4)
    n = 24 * 7 * weeks
    hour = torch.arange(n, dtype=torch.float64)
    daily = 30 * torch.sin(2 * math.pi * (hour - 6) / 24).clamp_min(-0.3)
    weekend = ((hour // 24) % 7 >= 5).double() * -25
    level = torch.zeros(n, dtype=torch.float64)
    shocks = torch.randn(n, generator=g, dtype=torch.float64) * 2
    for i in range(1, n):
        level[i] = 0.99 * level[i - 1] + shocks[i]
    load = 200 + daily + weekend + level + 3 * torch.randn(n, generator=g, dtype=torch.float64)
    t0 = datetime.datetime(2024, 1, 1)  # a Monday
    rows = [
        f"{t0 + datetime.timedelta(hours=i):%Y-%m-%d %H:%M},{v:.2f}"
        for i, v in enumerate(load.tolist())
    ]
    path.write_text("timestamp,load\n" + "\n".join(rows) + "\n")


@pytest.mark.slow
def test_recipe_forecasting(mytask: Path, tmp_path: Path) -> None:
    """An hourly series in a CSV, a week in and a day out, split by time: the model's MAE per
    step and overall in the series' units, beside the seasonal-naive baseline (a week back) on
    the same test windows; the extremes drawn as line plots captioned with their times."""
    apply_recipe("forecasting", mytask)
    hourly_load(tmp_path / "load.csv")
    results, output = make_train(mytask, tmp_path, tmp_path / "load.csv", *epochs(20))
    assert "input_length=168" in output and "horizon=24" in output, output[-3000:]
    steps = [f"test/load/mae_by_step/h{h:02d}" for h in range(1, 25)]
    assert set(steps) <= set(results), sorted(results)
    mae, baseline = results["test/load/mae"], results["test/load/baseline/mae"]
    # the mean of the steps' MAE is the MAE (every window has every step)
    assert sum(results[k] for k in steps) / 24 == pytest.approx(mae, rel=1e-4)
    assert results["test/load/mae_vs_baseline"] == pytest.approx(mae / baseline, rel=1e-4)
    assert results["test/load/mae_vs_baseline"] < 0.7, results  # 0.46 measured; the page says
    for side in ("highest_error", "lowest_error"):
        (png,) = media(tmp_path, f"test/load/extremes/{side}")
        facts = json.loads(png.with_suffix(".json").read_text())
        assert all(re.fullmatch(r"2024-\d\d-\d\d \d\d:00", e["id"]) for e in facts["examples"])
    project_tests_pass(mytask, tmp_path)
