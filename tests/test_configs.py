"""Every config of every project runs: fit with fast_dev_run through the project's own CLI.

Projects are found by globbing ``projects/*/src/<package>/configs/*.yaml``, so a new project
joins by itself. A project that needs extra arguments for a quick run (a small data source, say)
lists them in ``projects/<name>/tests/smoke_args.txt``, one argument per line (# starts a comment);
relative paths in them are relative to the repository root.
"""

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("projects/*/src/*/configs/*.yaml"))
NEVER_SKIPPED = {"template_project"}  # the template must always run


def project_cli(package: str) -> ModuleType:
    """``<package>.cli``; a project whose cli is not written (or not installed) yet is skipped."""
    if package not in NEVER_SKIPPED and importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (run poetry sync)")
    if package not in NEVER_SKIPPED and importlib.util.find_spec(f"{package}.cli") is None:
        pytest.skip(f"{package}.cli does not exist yet")
    return importlib.import_module(f"{package}.cli")


def smoke_args(project: Path) -> list[str]:
    path = project / "tests" / "smoke_args.txt"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_template_config_is_found():
    assert REPO / "projects/template/src/template_project/configs/default.yaml" in CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "projects")))
def test_config_runs(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI keeps its run folder in LITFORGE_RUN_DIR (for DDP children); start afresh.
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)
    monkeypatch.chdir(REPO)
    package, project = config.parents[1].name, config.parents[3]
    cli = project_cli(package)
    args = [
        "fit",
        "--config",
        str(config),
        "--trainer.fast_dev_run=true",
        f"--run.root={tmp_path}",
        "--run.loggers=[csv]",
        "--trainer.enable_progress_bar=false",
        *smoke_args(project),
    ]
    run = cli.main(args)
    assert run.trainer.state.fn == "fit" and run.trainer.state.finished, run.trainer.state
    assert run.trainer.global_step >= 1
    assert Path(run.run_dir).parent.parent == tmp_path  # <run.root>/<project>/<run>
