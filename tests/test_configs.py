"""Every config of every project runs: fit with fast_dev_run through the project's own CLI.

Projects are found by globbing ``projects/*/src/<package>/configs/*.yaml``, so a new project
joins by itself. No run reads a user's data: each reads the tiny sample that its data module's
``write_test_data`` writes in the module's own input format into a temporary folder (a CSV, an
image folder; ``litforge.testing.data_args``), whatever path the config names. A project that
needs other arguments for a quick run lists them in ``projects/<name>/tests/smoke_args.txt``,
one argument per line (# starts a comment; they come last, so they win); relative paths in them
are relative to the repository root.

A ``{name}`` in an argument is replaced by the value of the pytest fixture ``name``: data that a
fixture writes, so that no run needs a download or a data set outside the repository. The
root ``conftest.py`` has ``tiny_image_folder`` (10 classes of 32 x 32 PNGs in ``train/`` and
``test/``); cifar10's smoke_args.txt says ``--data.root={tiny_image_folder}``. A fixture for
another kind of data goes in the root conftest.py too: it is the one that tests/ sees.
"""

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from litforge import testing

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


def smoke_args(project: Path, request: pytest.FixtureRequest) -> list[str]:
    """The lines of smoke_args.txt, each ``{fixture}`` replaced by that fixture's value."""
    path = project / "tests" / "smoke_args.txt"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    args = [line for line in lines if line and not line.startswith("#")]
    fixture = re.compile(r"\{(\w+)\}")
    return [fixture.sub(lambda m: str(request.getfixturevalue(m.group(1))), a) for a in args]


def test_the_template_config_is_found():
    assert REPO / "projects/template/src/template_project/configs/default.yaml" in CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "projects")))
def test_config_runs(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # The CLI keeps its run folder in LITFORGE_RUN_DIR (for DDP children); start afresh.
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)
    monkeypatch.chdir(REPO)
    package, project = config.parents[1].name, config.parents[3]
    cli = project_cli(package)
    project_value = getattr(cli, "project", None)  # litforge.Project: its data_class
    data_class = getattr(project_value, "data_class", None)
    sample = testing.data_args(data_class, tmp_path / "data") if data_class else []
    args = [
        "fit",
        "--config",
        str(config),
        "--trainer.fast_dev_run=true",
        f"--run.root={tmp_path}",
        "--run.loggers=[csv]",
        "--trainer.enable_progress_bar=false",
        *sample,
        *smoke_args(project, request),
    ]
    run = cli.main(args)
    assert run.trainer.state.fn == "fit" and run.trainer.state.finished, run.trainer.state
    assert run.trainer.global_step >= 1
    assert Path(run.run_dir).parent.parent == tmp_path  # <run.root>/<project>/<run>
