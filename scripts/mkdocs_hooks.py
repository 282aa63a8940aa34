"""MkDocs hooks (mkdocs.yml: ``hooks``).

- The "Kinds of task" menu lists every page in docs/tasks/, and tasks/index.md's marker becomes
  a list of links to them, so a page added there appears in the site without another edit.
- ```mermaid blocks are drawn as diagrams (Material's custom fence, set here so that mkdocs.yml
  stays plain YAML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS_INDEX = "tasks/index.md"


def _tasks_section(nav: list[Any]) -> list[Any] | None:
    """The nav list that holds tasks/index.md, wherever it is."""
    for item in nav:
        entries = item.values() if isinstance(item, dict) else [item]
        for value in entries:
            if isinstance(value, list):
                if TASKS_INDEX in value or any(
                    isinstance(v, dict) and TASKS_INDEX in v.values() for v in value
                ):
                    return value
                found = _tasks_section(value)
                if found is not None:
                    return found
    return None


def _listed(section: list[Any]) -> set[str]:
    paths: set[Any] = set()
    for v in section:
        paths.update(v.values() if isinstance(v, dict) else [v])
    return {p for p in paths if isinstance(p, str)}


def on_config(config: Any) -> Any:
    from pymdownx.superfences import fence_code_format

    superfences = config["mdx_configs"].setdefault("pymdownx.superfences", {})
    superfences["custom_fences"] = [
        {"name": "mermaid", "class": "mermaid", "format": fence_code_format}
    ]
    section = _tasks_section(config["nav"] or [])
    if section is None:
        return config
    listed = _listed(section)
    for page in sorted((Path(config["docs_dir"]) / "tasks").glob("*.md")):
        path = f"tasks/{page.name}"
        if path not in listed:
            section.append(path)
    return config


TASK_PAGES_MARKER = "<!-- task pages -->"


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """In tasks/index.md, the marker becomes a list of links to every other page in tasks/."""
    if page.file.src_uri != TASKS_INDEX or TASK_PAGES_MARKER not in markdown:
        return markdown
    pages = sorted(
        p for p in (Path(config["docs_dir"]) / "tasks").glob("*.md") if p.name != "index.md"
    )
    listed = "\n".join(f"- [{_title(p)}]({p.name})" for p in pages) or "- (no page yet)"
    return markdown.replace(TASK_PAGES_MARKER, listed)
