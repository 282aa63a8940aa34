"""``python -m <package> --help`` works for every project and lists the subcommands; ``fit
--help`` lists the model, data and run settings; ``export --help`` and ``serve --help`` theirs.
In-process, through each ``__main__``."""

import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted({main.parent.name for main in REPO.glob("projects/*/src/*/__main__.py")})
NEVER_SKIPPED = {"template_project"}


def test_the_template_is_found():
    assert "template_project" in PACKAGES


@pytest.mark.parametrize("package", PACKAGES)
def test_help(package: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    if package not in NEVER_SKIPPED and (
        importlib.util.find_spec(package) is None
        or importlib.util.find_spec(f"{package}.cli") is None
    ):
        pytest.skip(f"{package}.cli is not written or not installed yet")
    for args, expected in (
        (["--help"], ["fit", "validate", "test", "predict", "export", "serve"]),
        (["fit", "--help"], ["--model", "--data", "--trainer.max_epochs", "--run.root"]),
        (["export", "--help"], ["--ckpt_path", "--format", "--output", "onnx", "torch_export"]),
        (["serve", "--help"], ["--ckpt_path", "--port", "--host", "127.0.0.1"]),
    ):
        monkeypatch.setattr(sys, "argv", [package, *args])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_module(package, run_name="__main__", alter_sys=True)
        assert exit_.value.code == 0, f"python -m {package} {' '.join(args)} exited {exit_.value}"
        out = capsys.readouterr().out
        missing = [word for word in expected if word not in out]
        assert not missing, f"python -m {package} {' '.join(args)} does not list {missing}"
