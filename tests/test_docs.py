"""The guide cannot drift from the code: its shell and Python blocks run here, its API page lists
every public name with a docstring, and the README keeps its promises (length, a picture from a
real run, the tests it names exist).

Which fenced blocks of README.md and of the pages under docs/ run (the pages mkdocs.yml does not
exclude):

- a ```python block runs in a fresh interpreter of this environment, in an empty folder;
- a ```bash block runs with ``bash -euo pipefail`` in a copy of the repository (the files git
  would commit, ``.venv`` linked, its own empty ``runs/``), with ``.venv/bin`` first on PATH;
- ```text, ```yaml, ```mermaid and the other languages are shown, not run.

Marks, written on the line before a block (HTML comments: the site does not show them):

- ``<!-- test: continue -->``: the block runs after the previous runnable block of its language
  on the page, in the same interpreter (python) or the same shell (bash);
- ``<!-- test: slow -->``: the block (with its continuations) runs in the slow tier
  (``make test-all``): give it to any block that trains for more than a few seconds;
- ```` ```bash title="not run" ```` (or ``<!-- test: not run -->``): not run at all, for the few
  blocks that cannot run here (``make init``, ``make test`` itself, a download, a GPU, a
  cluster, a command that changes the repository). Say on the page why, or where it is tested.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CORE_SRC = REPO / "packages" / "core" / "src"
README = REPO / "README.md"
README_MAX_LINES = 200
LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
MARK = re.compile(r"^\s*<!--\s*test:\s*(?P<what>[a-z ]+?)\s*-->\s*$")
MARKS = {"continue", "slow", "not run"}


# --------------------------------------------------------------------------- reading the pages
class _IgnoreTags(yaml.SafeLoader):
    """Reads mkdocs.yml, whose ``!!python/name:`` tags safe_load refuses."""


_IgnoreTags.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def mkdocs_config() -> dict[str, Any]:
    return yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_IgnoreTags)


def site_pages() -> list[Path]:
    """The Markdown files the site builds: docs/**/*.md less mkdocs.yml's exclude_docs."""
    excluded = [
        line.strip().strip("/")
        for line in str(mkdocs_config().get("exclude_docs") or "").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    pages = []
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if not any(rel == e or rel.startswith(e + "/") for e in excluded):
            pages.append(page)
    return pages


@dataclass
class Block:
    page: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    language: str  # as written after the fence
    info: str
    code: str
    marks: set[str]

    @property
    def runs_as(self) -> str | None:
        if 'title="not run"' in self.info or "not run" in self.marks:
            return None
        return LANGUAGES.get(self.language)


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        end = i + 1
        while end < len(lines):
            close = lines[end].strip()
            if close.startswith(fence[0] * len(fence)) and not close.strip(fence[0]):
                break
            end += 1
        if end == len(lines):
            raise AssertionError(f"{rel}:{i + 1}: a fenced block is never closed")
        marks: set[str] = set()
        j = i - 1
        while j >= 0 and (not lines[j].strip() or MARK.match(lines[j])):
            if m := MARK.match(lines[j]):
                if m["what"] not in MARKS:
                    raise AssertionError(
                        f"{rel}:{j + 1}: unknown mark {m['what']!r}; marks: {sorted(MARKS)}"
                    )
                marks.add(m["what"])
            j -= 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
        ]
        language = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        found.append(Block(rel, i + 1, language, info, "\n".join(body) + "\n", marks))
        i = end + 1
    return found


@dataclass
class Chain:
    """A runnable block and the blocks that continue it: one process."""

    language: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        first = self.blocks[0]
        return f"{first.page}:{first.line}"

    @property
    def slow(self) -> bool:
        return any("slow" in b.marks for b in self.blocks)

    def script(self) -> str:
        comment = "#"
        parts = [f"{comment} {b.page}:{b.line}\n{b.code}" for b in self.blocks]
        return "\n".join(parts)


def chains_of(paths: list[Path]) -> list[Chain]:
    chains: list[Chain] = []
    for path in paths:
        last: dict[str, Chain] = {}
        for block in blocks_of(path):
            language = block.runs_as
            if language is None:
                if "continue" in block.marks:
                    raise AssertionError(
                        f"{block.page}:{block.line}: a block that is not run continues nothing"
                    )
                continue
            if "continue" in block.marks:
                if language not in last:
                    raise AssertionError(
                        f"{block.page}:{block.line}: 'continue', but no {language} block before it"
                    )
                last[language].blocks.append(block)
            else:
                last[language] = Chain(language, [block])
                chains.append(last[language])
    return chains


def distinct(chains: list[Chain]) -> list[Chain]:
    """A block that says what an earlier one says (the README and a page showing the same
    command) runs once, under the first one's name."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for chain in chains:
        key = (chain.language, *(b.code for b in chain.blocks))
        if key not in seen:
            seen.add(key)
            kept.append(chain)
    return kept


PAGES = [README, *site_pages()]
CHAINS = distinct(chains_of(PAGES))


# --------------------------------------------------------------------------- running the blocks
def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITFORGE_RUN", "PYTEST"))}
    env.pop("PYTHONPATH", None)
    return {
        **env,
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        "MPLBACKEND": "Agg",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        **extra,
    }


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [Path(p) for p in listed.split("\0") if p and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository for the shell blocks: what they write stays there."""
    copy = tmp_path_factory.mktemp("repo")
    for rel in repository_files():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, copy / rel)
    for linked in (".venv", ".tools"):
        if (REPO / linked).exists():
            (copy / linked).symlink_to(REPO / linked)
    return copy


def run_chain(chain: Chain, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    if chain.language == "python":
        script = cwd / "block.py"
        script.write_text(chain.script())
        command = [sys.executable, str(script)]
        env = clean_env()
    else:
        command = ["bash", "-euo", "pipefail", "-c", chain.script()]
        env = clean_env(PATH=f"{cwd / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "chain",
    [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CHAINS],
)
def test_the_guides_block_runs(chain: Chain, sandbox: Path, tmp_path: Path) -> None:
    cwd = sandbox if chain.language == "bash" else tmp_path
    done = run_chain(chain, cwd, timeout=900 if chain.slow else 180)
    where = ", ".join(f"{b.page}:{b.line}" for b in chain.blocks)
    assert done.returncode == 0, (
        f"the {chain.language} block at {where} failed (exit status {done.returncode}):\n"
        f"{chain.script()}\n--- output ---\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )


def test_blocks_are_found_and_marked_as_documented(tmp_path: Path) -> None:
    """The reader of this file's marks: fences, marks, continuations, indented blocks."""
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```bash\nmake help\n```\n<!-- test: slow -->\n\n```python\nx = 1\n```\n"
        "<!-- test: continue -->\n```python\nassert x == 1\n```\n"
        '```bash title="not run"\nmake init\n```\n```text\nout\n```\n'
        "- a list item:\n\n    ```python\n    y = 2\n    ```\n"
    )
    blocks = blocks_of(page)
    assert [(b.line, b.language, b.runs_as, sorted(b.marks)) for b in blocks] == [
        (2, "bash", "bash", []),
        (7, "python", "python", ["slow"]),
        (11, "python", "python", ["continue"]),
        (14, "bash", None, []),
        (17, "text", None, []),
        (22, "python", "python", []),
    ]
    assert blocks[-1].code == "y = 2\n"
    chains = chains_of([page])
    assert [(c.language, len(c.blocks), c.slow) for c in chains] == [
        ("bash", 1, False),
        ("python", 2, True),
        ("python", 1, False),
    ]
    assert "x = 1\n" in chains[1].script() and "assert x == 1\n" in chains[1].script()
    again = tmp_path / "again.md"
    again.write_text("```bash\nmake help\n```\n")
    kept = distinct(chains_of([page, again]))
    assert [c.id for c in kept] == [c.id for c in chains]  # the second `make help` runs once


# --------------------------------------------------------------------------- the API page
def public_names() -> list[str]:
    tree = ast.parse((CORE_SRC / "litforge" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("litforge/__init__.py has no __all__")


def test_the_api_page_lists_every_public_name_once() -> None:
    listed = re.findall(r"^::: litforge\.(\w+)\s*$", (DOCS / "api.md").read_text(), re.M)
    names = public_names()
    missing = [n for n in names if n not in listed]
    extra = [n for n in listed if n not in names]
    twice = sorted({n for n in listed if listed.count(n) > 1})
    assert not missing, f"docs/api.md lacks {missing}: add '::: litforge.<name>' in its group"
    assert not extra, f"docs/api.md lists {extra}, which are not in litforge.__all__"
    assert not twice, f"docs/api.md lists {twice} more than once"


def test_every_public_name_has_a_docstring_that_says_what_it_is_for() -> None:
    """Read by griffe, the tool the API page is generated with: what the page will show."""
    griffe = pytest.importorskip("griffe", reason="griffe comes with mkdocstrings-python")
    package = griffe.load("litforge", search_paths=[str(CORE_SRC)], resolve_aliases=True)
    undocumented, no_summary = [], []
    for name in public_names():
        obj = package[name]
        doc = obj.docstring.value.strip() if obj.docstring else ""
        if not doc:
            undocumented.append(name)
        elif re.match(r"(Args|Arguments|Parameters|Returns|Raises)\s*:", doc):
            no_summary.append(name)
    assert not undocumented, f"public names without a docstring: {undocumented}"
    assert not no_summary, (
        f"public names whose docstring starts with a section, not with what they are for: "
        f"{no_summary}"
    )


def test_core_docstrings_use_markdown_not_sphinx_roles() -> None:
    """The API page renders docstrings as Markdown: a Sphinx role (":func:`name`") shows as
    raw text there. Use backticks, or a cross-reference ``[`name`][litforge.name]``."""
    role = re.compile(r":(func|class|meth|attr|mod|exc|data|obj|ref):`")
    found = [
        f"{path.relative_to(CORE_SRC)}:{number}"
        for path in sorted((CORE_SRC / "litforge").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if role.search(line)
    ]
    assert not found, f"Sphinx roles in docstrings (Markdown instead): {found}"


# --------------------------------------------------------------------------- README and links
def test_the_readme_is_short_and_shows_a_real_run_near_the_top() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    )
    pictures = re.findall(r"!\[[^\]]*\]\((docs/images/[^)\s]+\.png)\)", "\n".join(lines[:40]))
    assert pictures, "README.md shows no picture from docs/images/ in its first 40 lines"
    made_by = made_by_records()
    for picture in pictures:
        assert (REPO / picture).is_file(), f"README.md shows {picture}, which is not there"
        assert Path(picture).name in made_by, (
            f"{picture} was not made by `make docs-images` (not in docs/images/made-by.json)"
        )
    for command in ("make init", "make test", "make new-project"):
        assert command in text, f"README.md does not say `{command}`"


def made_by_records() -> dict[str, dict[str, Any]]:
    """What docs/images/*made-by.json say of each picture (the scripts of make docs-images
    write one each: made-by.json, diagnostics-made-by.json)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((DOCS / "images").glob("*made-by.json")):
        records.update(json.loads(path.read_text()))
    return records


def test_every_picture_of_the_docs_comes_from_a_run() -> None:
    """Every PNG under docs/images/ is listed in a made-by.json (the command of the run that
    made it, its date and CPU), and every picture a page shows is there."""
    made_by = made_by_records()
    pngs = sorted(p.name for p in (DOCS / "images").glob("*.png"))
    assert sorted(made_by) == pngs, "every picture in docs/images/ is made by make docs-images"
    for name, entry in made_by.items():
        assert {"command", "date", "cpu"} <= set(entry), name
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            assert (page.parent / target).is_file(), (
                f"{page.relative_to(REPO)} shows {target}: missing"
            )


def test_the_readmes_links_lead_somewhere() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        assert (REPO / target).exists(), f"README.md links to {target}, which is not there"


def defined_tests() -> dict[str, set[str]]:
    """Test function name -> the files (relative) that define it."""
    found: dict[str, set[str]] = {}
    for path in REPO.glob("*/**/test_*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in {".venv", ".tools", "runs", "site"}:
            continue
        for name in re.findall(r"^\s*def (test_\w+)", path.read_text(encoding="utf-8"), re.M):
            found.setdefault(name, set()).add(rel.as_posix())
    return found


def test_the_tests_the_docs_name_exist() -> None:
    """A guarantee in the docs names the test that proves it: that test must exist (in the file
    named, when one is)."""
    tests = defined_tests()
    wrong = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for file, name in re.findall(r"(?:([\w/.-]*test_\w+\.py))?::(test_\w+)", text):
            if name not in tests or (file and not any(f.endswith(file) for f in tests[name])):
                wrong.append(f"{page.relative_to(REPO)}: {file}::{name}")
        # a test's name has a few words (test_size, a setting, is not one)
        for name in re.findall(r"`(test_[a-z0-9]+_[a-z0-9]+_\w+)(?:\[[^\]]*\])?`", text):
            if name not in tests:
                wrong.append(f"{page.relative_to(REPO)}: {name}")
        for file in re.findall(r"`((?:packages|projects|tests)/[\w/.-]*test_\w+\.py)", text):
            # a project of the page's examples (projects/my_task) is not a file to check
            if (REPO / Path(file).parts[0] / Path(file).parts[1]).exists() and not (
                REPO / file
            ).is_file():
                wrong.append(f"{page.relative_to(REPO)}: {file}")
    assert not wrong, "the docs name tests that do not exist:\n" + "\n".join(wrong)


# --------------------------------------------------------------------------- make docs-images
@pytest.mark.slow
def test_docs_images_copies_the_pictures_of_a_real_run(tmp_path: Path) -> None:
    """``make docs-images`` on the template, shortened: each picture is the run's own file of the
    last test step, and made-by.json says what run made it."""
    out, keep = tmp_path / "images", tmp_path / "runs"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "docs_images.py"),
            "--projects",
            "template",
            "--out",
            str(out),
            "--keep",
            str(keep),
            "--",
            "--run.debug=limit",
        ],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = keep / "template"
    results = json.loads((run_dir / "results.json").read_text())
    made_by = json.loads((out / "made-by.json").read_text())
    expected = {
        "template-highest-error.png": "extremes/highest_error",
        "template-lowest-error.png": "extremes/lowest_error",
        "template-uncertainty.png": "uncertainty",
        "template-confusion-matrix.png": "confusion_matrix",
    }
    assert sorted(made_by) == sorted(expected)
    for name, diagnostic in expected.items():
        (folder,) = (run_dir / "media" / "test").glob(f"*/{diagnostic}")
        last = max(folder.glob("*.png"), key=lambda p: int(p.stem))
        assert (out / name).read_bytes() == last.read_bytes(), name
        entry = made_by[name]
        assert entry["project"] == "template" and "--run.debug=limit" in entry["command"]
        assert entry["test"] == {
            k: round(v, 4) for k, v in results.items() if k.startswith("test/")
        }
