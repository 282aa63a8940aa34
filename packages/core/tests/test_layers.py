"""The shape of core, checked: the import layers written once in ``.importlinter`` (also checked
by ``lint-imports`` in ``make quality``), no import cycle inside litforge, and no private method
of Lightning's or jsonargparse's classes overridden anywhere in litforge or the projects (a
private override breaks silently on the next release)."""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import litforge

REPO = Path(__file__).resolve().parents[3]
SRC = Path(litforge.__file__).resolve().parents[1]  # packages/core/src
PROJECT_PACKAGES = ("template_project", "cifar10_demo", "segmentation_demo")


# ---------------------------------------------------------------------- the import graph
def litforge_modules() -> dict[str, Path]:
    """Every module of litforge by dotted name (a package by its own name)."""
    modules = {}
    for path in (SRC / "litforge").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes under ``if TYPE_CHECKING:`` (they run nothing)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for part in node.body for n in ast.walk(part)}
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Module -> the litforge modules it imports, at its top or inside a function alike."""
    modules = litforge_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("litforge") else None
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def contract_layers() -> list[str]:
    """The layers of ``.importlinter``, top first: the one place they are written."""
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    text = config["importlinter:contract:layers"]["layers"]
    return [line.strip() for line in text.splitlines() if line.strip()]


def layer_of(module: str, layers: list[str]) -> int | None:
    for i, layer in enumerate(layers):
        if module == layer or module.startswith(f"{layer}."):
            return i
    return None


def test_the_contract_names_every_part_of_litforge() -> None:
    layers = contract_layers()
    assert layers[0] == "litforge.testing" and layers[-1] == "litforge.errors"
    unplaced = [m for m in litforge_modules() if m != "litforge" and layer_of(m, layers) is None]
    assert not unplaced, f"in no layer of .importlinter: {unplaced}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    layers = contract_layers()
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if (a := layer_of(module, layers)) is not None
        and (b := layer_of(target, layers)) is not None
        and b < a
    ]
    assert not upward, "imports against the layers of .importlinter:\n" + "\n".join(upward)


def test_no_import_cycle_inside_litforge() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The checks above on a made-up graph: they find what they look for."""
    layers = ["a.top", "a.low"]
    assert layer_of("a.low.x", layers) == 1 and layer_of("a.top", layers) == 0
    graph = {"a.low.x": {"a.top.y"}, "a.top.y": {"a.top.z"}, "a.top.z": {"a.top.y"}}
    assert cycles(graph) == [["a.top.y", "a.top.z"]]
    assert cycles({"p": {"q"}, "q": set()}) == []


# ---------------------------------------------------------------------- private overrides
def walk_modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if info.name.endswith("__main__"):
            continue  # runs the command on import
        try:
            yield importlib.import_module(info.name)
        except ModuleNotFoundError as err:  # an optional dependency (submitit, ...) missing
            if (err.name or "").split(".")[0] == package:
                raise


def own_classes(packages: tuple[str, ...]) -> list[type]:
    classes = {}
    for package in packages:
        for module in walk_modules(package):
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__.split(".")[0] in packages:
                    classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(classes.values())


# Whose private methods must not be overridden: Lightning's (LightningCLI, the Trainer, loggers,
# callbacks), jsonargparse's and TorchMetrics'.
LIBRARIES = ("pytorch_lightning", "lightning_fabric", "lightning", "jsonargparse", "torchmetrics")


def private_overrides(cls: type) -> list[str]:
    """``Class._name (base)`` for each single-underscore method ``cls`` defines that a base
    class of one of the LIBRARIES defines too."""
    found = []
    for name, value in vars(cls).items():
        method = callable(value) or isinstance(value, property | classmethod | staticmethod)
        if not name.startswith("_") or name.startswith("__") or not method:
            continue
        for base in cls.__mro__[1:]:
            if base.__module__.split(".")[0] in LIBRARIES and name in vars(base):
                found.append(f"{cls.__module__}.{cls.__qualname__}.{name} ({base.__qualname__})")
                break
    return found


def test_no_private_method_of_a_library_class_is_overridden() -> None:
    packages = ("litforge", *(p for p in PROJECT_PACKAGES if importlib.util.find_spec(p)))
    classes = own_classes(packages)
    assert any(c.__name__ == "LitforgeCLI" for c in classes)  # the walk reached the CLI
    found = [line for cls in classes for line in private_overrides(cls)]
    assert not found, "private methods of library classes overridden:\n" + "\n".join(found)


def test_the_override_check_sees_a_private_override() -> None:
    from pytorch_lightning.cli import LightningCLI

    class Sneaky(LightningCLI):
        def _run_subcommand(self, subcommand: str) -> None:  # the kind of override it forbids
            super()._run_subcommand(subcommand)

        def _own_helper(self) -> None:  # a private name of our own: allowed
            pass

    Sneaky.__module__ = "litforge.fake"
    assert private_overrides(Sneaky) == [
        "litforge.fake.test_the_override_check_sees_a_private_override.<locals>.Sneaky."
        "_run_subcommand (LightningCLI)"
    ]


@pytest.mark.skipif(
    not (Path(sys.prefix) / "bin" / "lint-imports").exists(), reason="no import-linter"
)
def test_import_linter_keeps_the_contract() -> None:
    import subprocess

    done = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "lint-imports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
