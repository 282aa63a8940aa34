"""The contracts between data, model and CLI: checked at run start, shown in --help."""

import inspect
import re

import pytest
import pytorch_lightning as pl
import torch

from litforge import testing
from litforge.data import ArrayDataModule, Arrays, ImageDataModule
from litforge.run.cli import cli_main
from litforge.tasks.contracts import ContractError, check_data
from litforge.testing.images import TinyClassifier


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch):
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def data_options(help_text: str) -> dict[str, str]:
    """``--data.<name>`` -> its help text (what follows the option, up to the next option)."""
    blocks = re.split(r"\n  (?=--)", help_text)
    return {
        m.group(1): m.group(2)
        for b in blocks
        if (m := re.match(r"--data\.(\w+)(?: \S+)?\s+(.*)", b, re.S)) and m.group(1) != "help"
    }


def test_every_argument_of_cores_data_modules_has_help(capsys):
    with pytest.raises(SystemExit):
        testing.main(["fit", "--help"])
    options = data_options(capsys.readouterr().out)
    core_args = set(inspect.signature(ImageDataModule.__init__).parameters) - {"self"}
    assert core_args <= set(options), sorted(options)
    for name in core_args:
        text = options[name].split("(type:")[0].strip()
        assert len(text) > 10, f"--data.{name} has no help line: {options[name]!r}"


def test_shared_values_are_linked_and_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        testing.main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "data.num_classes --> model.num_classes" in out
    assert "data.in_channels --> model.in_channels" in out
    assert "--model.num_classes" not in out  # not a setting: it comes from the data


def test_linked_values_reach_the_model(tmp_path):
    """A 6-class, 1-channel set: the model is built for it with no model setting at all."""
    cli = testing.smoke(testing.main, tmp_path, "--data.n_classes=6", "--data.n_train=96")
    assert cli.model.num_classes == 6 and cli.model.net[-1].out_features == 6
    assert cli.datamodule.num_classes == 6


class NotTaskData(pl.LightningDataModule):
    """A hand-written data module without the TaskData members."""

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(4, 3))


def test_a_data_module_without_the_contract_fails_at_start_naming_what_is_missing(tmp_path):
    with pytest.raises(ContractError) as err:
        check_data(NotTaskData())
    message = str(err.value)
    for member in ("class_names", "dataset_names", "has_split", "sample", "show"):
        assert member in message
    assert "NotTaskData" in message and "ArrayDataModule" in message
    with pytest.raises(ContractError, match="NotTaskData lacks"):
        cli_main(
            TinyClassifier,
            NotTaskData,
            project="bad",
            default_config=[],
            args=["fit", f"--run.root={tmp_path}", "--run.loggers=[]", "--model.num_classes=2"],
        )
    assert not list(tmp_path.rglob("*.ckpt"))


def test_array_and_image_data_modules_satisfy_the_contract():
    class Rows(ArrayDataModule):
        def load(self):
            return Arrays(features=torch.randn(20, 3), target=torch.randn(20))

    rows = Rows(val_size=0.2, test_size=0.2)
    assert check_data(rows) is rows and rows.class_names is None
    assert rows.has_split("val") and rows.has_split("test") and rows.num_features == 3
    assert len(rows.splits["train"]) == 12
    assert isinstance(check_data(testing.SyntheticData()), ImageDataModule)
