"""``import litforge`` loads what every run needs and nothing more: the streamed path's litdata
(and boto3 under it), Optuna, W&B and submitit, and the tables' pandas and scikit-learn are
imported when a run first uses them; ONNX Runtime, onnxscript and LitServe when a model is first
exported or served."""

import subprocess
import sys

import pytest

HEAVY = ("litdata", "boto3", "optuna", "wandb", "submitit", "pandas", "sklearn")
HEAVY += ("onnxruntime", "onnxscript", "litserve")


@pytest.mark.slow  # a python process that imports litforge: seconds
def test_import_litforge_leaves_the_optional_engines_unloaded() -> None:
    code = f"import sys, litforge; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
