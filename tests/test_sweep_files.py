"""Every project's sweep files (``configs/sweeps/*.yaml``) are valid: the file passes its checks,
the project's CLI accepts every key it sets, and the metric it optimises is logged at
validation (one fast_dev_run batch through the project's own CLI, with the sweep's fixed
settings and each parameter at its low end / first choice). A file that names no metric
optimises the runs' monitored one: the metric the sweep finds is the one that run's best
checkpoint is chosen by.

No run reads a user's data: as in test_configs.py, each reads the tiny sample that the
project's data module's ``write_test_data`` writes into a temporary folder
(``litforge.testing.data_args``), whatever path the project's config names. Arguments from
``projects/<name>/tests/smoke_args.txt`` are added as in test_configs.py, and
``--data.val_size=0.25``: a validation set of any data, the tiny ones the tests make included.
"""

import importlib
import re
import sys
from pathlib import Path

import pytest

from litforge import testing
from litforge.experiments.command import monitored, probe
from litforge.experiments.space import cli_args, load_sweep
from litforge.run.checkpoints import best_callback

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted(REPO.glob("projects/*/src/*/configs/sweeps/*.yaml"))


def smoke_args(project: Path, request: pytest.FixtureRequest) -> list[str]:
    path = project / "tests" / "smoke_args.txt"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    args = [line for line in lines if line and not line.startswith("#")]
    fixture = re.compile(r"\{(\w+)\}")
    return [fixture.sub(lambda m: str(request.getfixturevalue(m.group(1))), a) for a in args]


def test_the_template_ships_a_sweep() -> None:
    assert REPO / "projects/template/src/template_project/configs/sweeps/quick.yaml" in SWEEPS


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(REPO / "projects")))
def test_sweep_file_is_valid(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI gets its arguments as args only
    package, project = path.parents[2].name, path.parents[4]
    cli = importlib.import_module(f"{package}.cli")
    sweep = load_sweep(path)
    example = {
        k: p["choices"][0] if p["type"] == "categorical" else p["low"]
        for k, p in sweep.parameters.items()
    }
    args = [*cli_args(sweep.fixed), *cli_args(example), "--run.wandb_group=test"]
    probe(cli.main, args)  # the sweep's own dry parse: every key it sets exists
    assert cli.project.name == project.name
    data_class = getattr(cli.project, "data_class", None)
    sample = testing.data_args(data_class, tmp_path / "data") if data_class else []
    args += [*sample, *smoke_args(project, request), "--data.val_size=0.25"]
    # the sweep's objective, as the sweep command finds it: the file's, or the monitored one
    metric, direction = sweep.objective if sweep.metric else monitored(cli.main, args)
    run = cli.main(
        [
            "fit",
            *args,
            "--trainer.fast_dev_run=true",
            f"--run.root={tmp_path}",
            "--run.loggers=[csv]",
            "--trainer.enable_progress_bar=false",
        ]
    )
    logged = sorted(k for k in run.trainer.callback_metrics if k.startswith("val/"))
    assert metric in logged, logged
    if sweep.metric is None:
        best = best_callback(run.trainer)
        mode = {"maximize": "max", "minimize": "min"}[direction]
        assert best is not None and (best.monitor, best.mode) == (metric, mode), best
