#!/usr/bin/env python3
"""Creates projects/NAME from projects/template; ``make new-project NAME=foo`` calls it.

    python scripts/new_project.py NAME [--root DIR]

- copies projects/template to projects/NAME, without caches and run folders;
- renames the import package ``template_project`` -> NAME, the distribution ``litforge-template``
  -> ``litforge-NAME`` (with - for _), and the project name of the runs ``template`` -> NAME, in
  file contents and in file names; so the README says ``make train-NAME``, ``runs/NAME/...``,
  and its first sentence says where the project came from;
- gives it one sweep file, ``configs/sweeps/quick.yaml`` (``PROJECT_SWEEP``), instead of the
  template's, which tune the template's own settings on its metric: it tunes the optimizer's
  rate and the batch size on the metric the best checkpoint is chosen by, so it keeps running
  (and passing tests/test_sweep_files.py) whatever data and model the project comes to have;
- registers the project in the root pyproject.toml: a path dependency under
  [tool.poetry.dependencies] and NAME in ruff's known-first-party list (a textual edit that leaves
  the rest of the file as it was, checked by parsing both versions);
- sorts the new project's imports and formats it with ruff, when ruff is installed.

Every check runs before anything is written; a bad name changes nothing. If a step fails half-way,
what this script wrote is removed and pyproject.toml is restored. Afterwards run ``make lock``
(``poetry lock``, then ``.venv`` from the new lock; ``make new-project`` does it, then runs the new
project's tests).
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import importlib.util
import keyword
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

TEMPLATE = "template"  # the folder under projects/ and the project name of its runs
TEMPLATE_PACKAGE = "template_project"
TEMPLATE_DIST = "litforge-template"
# The README's first paragraph, which only the template can say of itself (from this sentence
# to the blank line: its shapes, its timing), and what a new project's README says instead
# (the rest of the README reads right once renamed).
TEMPLATE_INTRO = "The smallest complete litforge task, and the starting point of new ones."
PROJECT_INTRO = (
    "A litforge task, started from `projects/template` by `make new-project`; until you change\n"
    "it, it does what the template does. Say here what it learns, from which data, and what a\n"
    "good result is."
)
# The template's sweep files tune the template's settings (model.width, data.n_train) on its
# metric (val/shapes/accuracy): a recipe, or the user's own data and model, have other settings
# and metric names. A new project gets this one instead: settings every project made from the
# template has (its config names the optimizer's class_path, and every litforge data module takes
# batch_size), and no metric, so the runs' monitored one (docs/experiments.md, "Sweeps").
PROJECT_SWEEP = """\
# A first sweep: make sweep-{name} SWEEP=quick [WORKERS=2] (python -m {name} sweep quick).
# It tunes what every task started from the template has: the optimizer's rate (the peak of
# lr_schedule; configs/default.yaml names the optimizer's class_path) and the batch size, 5
# trials of 3 epochs. It names no metric: it optimises the one the best checkpoint is chosen by
# (--run.monitor, by default the model's best_metric, val/<data>/accuracy for a Classifier), in
# its direction, whatever the data and model become. Add your task's own settings under
# parameters (config keys, as on the command line); to optimise another metric, add
# `metric: val/<data>/<name>` and `direction: maximize` (or minimize). tests/test_sweep_files.py
# runs every sweep file. The percentile pruner stops a trial whose metric is in the worst
# quarter of the earlier trials' at the same epoch, from the second epoch on.
# Run the same command again after an interruption: the study continues where it stopped.
# Results in runs/{name}/sweeps/quick/: trials.csv, best.yaml (for --config), history.png,
# importance.png; each trial is an ordinary run folder, trial-<n>/.
n_trials: 5
sampler: {{type: tpe, seed: 0, n_startup_trials: 3}}
pruner: {{type: percentile, percentile: 25.0, n_startup_trials: 3, n_warmup_steps: 1}}
parameters:
  model.optimizer.init_args.lr: {{type: float, low: 1.0e-3, high: 5.0e-2, log: true}}
  data.batch_size: {{type: categorical, choices: [32, 64]}}
fixed:
  trainer.max_epochs: 3
  # CSV logs only, for speed here; without this line every trial logs to W&B as well,
  # grouped as {name}-sweep-quick.
  run.loggers: [csv]
"""
# Never copied: caches, build outputs, run folders.
IGNORED = (
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "runs",
    "wandb",
    "lightning_logs",
    "build",
    "dist",
)
# Valid names, yet too generic for an import name that has to be unique everywhere.
RESERVED = {"src", "tests", "scripts", "packages", "projects", "core", "data", "utils"}
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
TABLE_RE = re.compile(r"\s*\[\[?\s*[A-Za-z0-9_.\-\"' ]+\]\]?\s*(#.*)?")
KEY_RE = re.compile(r"\s*[A-Za-z0-9_\-\"'.]+\s*=")


class NewProjectError(Exception):
    """A problem that stops the project from being created; the message says what to do."""


# ---------------------------------------------------------------------- names
def dist_name(name: str) -> str:
    return f"litforge-{name.replace('_', '-')}"


def renamer(name: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """One pass over a text: the template's package, distribution and run name -> the new ones.
    (One pass, so that a new name containing 'template' is never renamed twice.)"""
    table = {TEMPLATE_PACKAGE: name, TEMPLATE_DIST: dist_name(name), TEMPLATE: name}
    pattern = re.compile(rf"{TEMPLATE_PACKAGE}|{TEMPLATE_DIST}|\b{TEMPLATE}\b")
    return pattern, table


def rename_text(text: str, name: str) -> str:
    pattern, table = renamer(name)
    return pattern.sub(lambda m: table[m.group(0)], text)


def rename_file(filename: str, name: str) -> str:
    """test_template_project.py -> test_<name>_project.py; the package folder -> <name>."""
    return name if filename == TEMPLATE_PACKAGE else filename.replace(TEMPLATE, name)


def installed_top_level_names() -> set[str]:
    try:
        return set(importlib.metadata.packages_distributions())
    except Exception:  # a broken distribution must not stop the other checks
        return set()


def test_file_names(root: Path) -> dict[str, Path]:
    """Test modules of every package, project and the repository (pytest collects them all)."""
    found: dict[str, Path] = {}
    for tests in [root / "tests", *root.glob("packages/*/tests"), *root.glob("projects/*/tests")]:
        for path in tests.rglob("test_*.py"):
            found.setdefault(path.name, path)
    return found


def check_name(name: str, root: Path) -> list[str]:
    """Every reason why ``name`` cannot be a new project here; empty when it can."""
    if not NAME_RE.fullmatch(name) or not name.isidentifier():
        return [
            f"{name!r} is not a valid project name: use lowercase snake_case, a letter first, "
            "then letters, digits or _ (e.g. my_task); it becomes the Python import name"
        ]
    problems = []
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        problems.append(f"{name!r} is a Python keyword; it cannot be an import name")
    if name in sys.stdlib_module_names:
        problems.append(f"{name!r} would shadow the standard library module {name!r}")
    elif name in RESERVED:
        problems.append(f"{name!r} is too generic for an import name; choose a specific one")
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            where = spec.origin or ", ".join(spec.submodule_search_locations or [])
            problems.append(f"{name!r} would shadow the installed module {name!r} ({where})")
        elif name in installed_top_level_names():
            problems.append(f"{name!r} would shadow a module of an installed distribution")
    folder = root / "projects" / name
    if folder.exists() or folder.is_symlink():
        problems.append(f"{folder} exists already; choose another name or remove it")
    dist = dist_name(name)
    try:
        importlib.metadata.distribution(dist)
        problems.append(f"a distribution named {dist!r} is installed already")
    except importlib.metadata.PackageNotFoundError:
        pass
    existing = test_file_names(root)
    template_tests = root / "projects" / TEMPLATE / "tests"
    for path in sorted(template_tests.rglob("test_*.py")) if template_tests.is_dir() else []:
        new = rename_file(path.name, name)
        if new in existing:
            problems.append(
                f"its test file {new} would have the same name as {existing[new]}; "
                "test file names must be unique across the repository"
            )
    return problems


# ---------------------------------------------------------------------- pyproject.toml
def _table(lines: list[str], header: str) -> tuple[int, int] | None:
    """(index of the header line, index after the table's last line) of a TOML table."""
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if TABLE_RE.fullmatch(lines[i].rstrip("\n"))),
        len(lines),
    )
    return start, end


def _add_dependency(lines: list[str], name: str) -> None:
    header = "[tool.poetry.dependencies]"
    span = _table(lines, header)
    if span is None:
        raise NewProjectError(f"the root pyproject.toml has no {header} table")
    start, end = span
    keys = [i for i in range(start + 1, end) if KEY_RE.match(lines[i])]
    ours = [i for i in keys if lines[i].lstrip().startswith("litforge-")]
    after = (ours or keys or [start])[-1]
    entry = f'{dist_name(name)} = {{ path = "projects/{name}", develop = true }}\n'
    if not lines[after].endswith("\n"):
        lines[after] += "\n"
    lines.insert(after + 1, entry)


def _add_first_party(lines: list[str], name: str) -> None:
    header = "[tool.ruff.lint.isort]"
    span = _table(lines, header)
    if span is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.extend(["\n", f"{header}\n", f'known-first-party = ["{name}"]\n'])
        return
    start, end = span
    text = "".join(lines[start + 1 : end])
    match = re.search(r"(?m)^(\s*known-first-party\s*=\s*\[)([^\]]*)\]", text)
    if match is None:
        lines.insert(start + 1, f'known-first-party = ["{name}"]\n')
        return
    inner = match.group(2)
    if "\n" in inner:  # one item per line: add a line after the last item, indented like it
        rows = inner.split("\n")  # the last row is what precedes "]" on its line
        items = [i for i, row in enumerate(rows) if row.split("#")[0].strip()]
        indent = "    "
        if items:
            last = items[-1]
            code, hash_, comment = rows[last].partition("#")
            if not code.rstrip().endswith(","):
                rows[last] = code.rstrip() + "," + code[len(code.rstrip()) :] + hash_ + comment
            indent = re.match(r"[ \t]*", rows[last]).group(0)  # type: ignore[union-attr]
        at = len(rows) if items and items[-1] == len(rows) - 1 else len(rows) - 1
        rows.insert(at, f'{indent}"{name}",')
        new_inner = "\n".join(rows)
    else:
        stripped = inner.rstrip()
        if not stripped.strip():
            new_inner = f'"{name}"'
        elif stripped.endswith(","):
            new_inner = f'{stripped} "{name}"'
        else:
            new_inner = f'{stripped}, "{name}"'
    text = text[: match.start(2)] + new_inner + text[match.end(2) :]
    lines[start + 1 : end] = text.splitlines(keepends=True)


def registered(pyproject: str, name: str) -> str:
    """The root pyproject.toml with the project registered; the rest of the text unchanged.
    Both versions are parsed and compared, so a wrong edit never gets written."""
    try:
        before: dict[str, Any] = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError as err:
        raise NewProjectError(f"the root pyproject.toml does not parse: {err}") from err
    dist = dist_name(name)
    deps = before.get("tool", {}).get("poetry", {}).get("dependencies", {})
    if dist in deps:
        raise NewProjectError(f"the root pyproject.toml already depends on {dist!r}")
    lines = pyproject.splitlines(keepends=True)
    _add_dependency(lines, name)
    _add_first_party(lines, name)
    text = "".join(lines)
    expected = copy.deepcopy(before)
    expected["tool"]["poetry"]["dependencies"][dist] = {"path": f"projects/{name}", "develop": True}
    isort = expected["tool"].setdefault("ruff", {}).setdefault("lint", {}).setdefault("isort", {})
    isort.setdefault("known-first-party", []).append(name)
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        after = None
    if after != expected:
        raise NewProjectError(
            "could not register the project in pyproject.toml automatically (its layout is "
            "unusual); nothing was changed. Add by hand:\n"
            f'  [tool.poetry.dependencies]: {dist} = {{ path = "projects/{name}", develop = true }}\n'
            f'  [tool.ruff.lint.isort] known-first-party: "{name}"'
        )
    return text


# ---------------------------------------------------------------------- creating
def copy_template(template: Path, dest: Path, name: str) -> None:
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    # Deepest first, so that renaming a folder never invalidates a path still to visit.
    for path in sorted(dest.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                text = None  # binary: copied as it is
            if text is not None and (new := rename_text(text, name)) != text:
                path.write_text(new, encoding="utf-8")
        new_name = rename_file(path.name, name)
        if new_name != path.name:
            path.rename(path.with_name(new_name))


def rewrite_readme(dest: Path) -> None:
    """The new README (renamed by ``copy_template`` already) introduces the new project."""
    readme = dest / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        start = text.find(TEMPLATE_INTRO)
        if start < 0:
            return
        end = text.find("\n\n", start)
        end = len(text) if end < 0 else end
        readme.write_text(text[:start] + PROJECT_INTRO + text[end:], encoding="utf-8")


def write_sweep(dest: Path, name: str) -> None:
    """The new project's sweeps: ``PROJECT_SWEEP`` as ``quick.yaml``, in place of the template's
    (each tunes the template's own settings on its metric: see ``PROJECT_SWEEP``)."""
    folder = dest / "src" / name / "configs" / "sweeps"
    for path in folder.glob("*.yaml"):
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "quick.yaml").write_text(PROJECT_SWEEP.format(name=name), encoding="utf-8")


def ruff_command(root: Path) -> list[str] | None:
    for candidate in (root / ".venv" / "bin" / "ruff", Path(sys.executable).with_name("ruff")):
        if candidate.is_file():
            return [str(candidate)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


def tidy(root: Path, dest: Path) -> None:
    """Sorts imports (the new package is first-party now) and formats: renamed lines may have
    changed length. Not fatal: ``make style`` does the same."""
    ruff = ruff_command(root)
    if ruff is None:
        print("note: ruff not found; run 'make style' to sort imports and format the new project")
        return
    for args in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        done = subprocess.run([*ruff, *args, str(dest)], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"note: ruff {args[0]} reported problems in {dest}:\n{done.stdout}{done.stderr}")


def create(name: str, root: Path) -> Path:
    """Checks everything, then creates and registers projects/<name>; returns its folder."""
    root = root.resolve()
    template = root / "projects" / TEMPLATE
    pyproject = root / "pyproject.toml"
    if not (template / "src" / TEMPLATE_PACKAGE).is_dir():
        raise NewProjectError(f"no template at {template / 'src' / TEMPLATE_PACKAGE}")
    if not pyproject.is_file():
        raise NewProjectError(f"no pyproject.toml at {root}; give the repository with --root")
    problems = check_name(name, root)
    if problems:
        raise NewProjectError("\n".join(problems))
    original = pyproject.read_text(encoding="utf-8")
    new_pyproject = registered(original, name)  # computed and checked before anything is written

    dest = root / "projects" / name
    try:
        copy_template(template, dest, name)
        rewrite_readme(dest)
        write_sweep(dest, name)
        pyproject.write_text(new_pyproject, encoding="utf-8")
        tidy(root, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        pyproject.write_text(original, encoding="utf-8")
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("name", help="the new project's folder and import name (snake_case)")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the repository root (default: the folder above scripts/)",
    )
    args = parser.parse_args(argv)
    try:
        dest = create(args.name, args.root)
    except NewProjectError as err:  # one line: each problem, then what happened
        problems = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(
            f"error: cannot create project {args.name!r}: {problems}; nothing was changed.",
            file=sys.stderr,
        )
        return 2
    name = args.name
    package = dest / "src" / name
    print(
        f"created {dest} (import package {name}, distribution {dist_name(name)}) and registered "
        "it in pyproject.toml.\n"
        "next:\n"
        "  make lock     (poetry lock, then .venv from it; make new-project does this and runs its"
        " tests)\n"
        f"  edit data.py, model.py and configs/default.yaml in {package}\n"
        "       (cli.py only if you rename their classes); for another kind of task (a folder\n"
        "       of images, a CSV, token sequences, image to image, segmentation): docs/tasks/\n"
        f"  make train-{name}\n"
        f"  make test-{name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
