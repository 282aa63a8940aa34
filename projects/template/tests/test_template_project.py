"""The task's tests through the core test kit. Nothing here names the task's data or classes:
they keep passing, and keep meaning something, when data.py, model.py and the config become
another task (`docs/tasks/`). Real task: add tests of your own data and model beside them.

They need no data set: every run reads the tiny sample that the data module's
``write_test_data`` writes in the project's own format (``data`` below), not the real data."""

import json
import math
import runpy
import sys

import pytest
import torch

from litforge import testing
from template_project import cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``--data.*`` arguments that point every run here at a tiny sample of the data, written
    by the data module's ``write_test_data`` (data.py) into a temporary folder."""
    return testing.data_args(cli.project.data_class, tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch):
    # The CLI leaves LITFORGE_RUN_DIR set (for DDP children); later runs in this process would
    # reuse that folder.
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def test_python_m_help(monkeypatch, capsys):
    """`python -m template_project --help`, through __main__."""
    monkeypatch.setattr(sys, "argv", ["template_project", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("template_project", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0 and "fit" in capsys.readouterr().out


def test_smoke_and_overfit(tmp_path, data):
    run = testing.smoke(cli.main, tmp_path, *data)
    batch = run.datamodule.sample("train", 16)
    assert len(batch) == 16
    loss = run.model.compute_loss(batch, run.model(batch))
    assert math.isfinite(loss.total.item())
    torch.manual_seed(0)
    testing.overfit(run.model, batch, steps=60, ratio=0.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LITFORGE_RUN_DIR", raising=False)
        # settings that differ from the defaults: a rerun that ignored the saved config would
        # get others (test_saved_config_reruns_with_its_settings)
        return testing.train(
            cli.main,
            tmp_path_factory.mktemp("runs"),
            "fit",
            "--trainer.max_epochs=1",
            "--seed_everything=7",
            *data,
        )


def test_run_writes_media_and_the_test_loss_it_measured(run):
    assert testing.media_files(run.run_dir), "no diagnostics were written"
    results = json.loads((run.run_dir / "results.json").read_text())
    name = run.datamodule.name
    # the logged test loss is the mean over the whole test set: recompute it in one batch
    test = run.datamodule.sample("test", len(run.datamodule.splits["test"]))
    run.model.eval()
    with torch.no_grad():
        expected = run.model.compute_loss(test, run.model(test)).total.item()
    assert results[f"test/{name}/loss/total"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_saved_config_reruns_with_its_settings(run, tmp_path):
    """The saved config.yaml alone (no --data arguments, no seed) gives the run's settings back:
    its data sample, seed and epochs, which are not the defaults."""
    rerun = testing.rerun_saved_config(cli.main, run.run_dir, tmp_path)
    assert rerun.trainer.state.finished
    saved, again = run.config["fit"], rerun.config["fit"]
    assert again.model == saved.model and again.data == saved.data
    assert (again.seed_everything, again.trainer.max_epochs) == (7, 1)
    assert again.run.dir != saved.run.dir  # its own folder: the saved one's run was left alone
