"""MkDocs hooks (mkdocs.yml: ``hooks``).

- The "Kinds of task" menu lists every page in docs/tasks/ (in the order tasks/index.md links
  them), so a page added there appears in the site's menu without an edit to mkdocs.yml.
- ```mermaid blocks are drawn as diagrams (Material's custom fence, set here so that mkdocs.yml
  stays plain YAML).
"""

from __future__ import annotations

import re
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
    folder = Path(config["docs_dir"]) / "tasks"
    # in the order tasks/index.md links them, then any other page by name
    linked = re.findall(r"\]\(([\w-]+\.md)\)", (folder / "index.md").read_text(encoding="utf-8"))
    names = [*dict.fromkeys(linked), *sorted(p.name for p in folder.glob("*.md"))]
    for name in dict.fromkeys(names):
        path = f"tasks/{name}"
        if path not in listed and (folder / name).is_file():
            section.append(path)
    return config
