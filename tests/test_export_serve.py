"""``python -m <project> export`` and ``serve`` on real runs, as a user runs them.

Export, for the template and three recipe kinds (tabular classification, segmentation, image
regression; docs/recipes/ applied to a fresh project by test_new_project's helpers): a short
real fit, then the export command; then ONNX Runtime runs the written file on the test sample
(the test CSV's rows, the test images), read as new inputs by ``litforge.load``'s predictor,
and its outputs are compared with the predictor's own PyTorch pass (``Predictor.outputs``: the
data module's normalisation, not the graph's) within ``litforge.run.export``'s tolerance.

Serve: the template's server as a subprocess on a free port of 127.0.0.1, sent a few
concurrent requests (bounded, with timeouts) whose answers must be the predictor's rows; a bad
request gets a 4xx with a one-line reason and a good request after it still gets its answer;
the server is stopped, whatever happens.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from litforge import testing
from litforge.run.export import ATOL, RTOL

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "new_project_tests", REPO / "tests/test_new_project.py"
)
assert _spec is not None and _spec.loader is not None
recipes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipes)
repo, mytask = recipes.repo, recipes.mytask  # the fixtures: a repository copy, a fresh project

# Run in the project's environment: the new inputs read by the predictor, the export's file run
# with ONNX Runtime, and the worst difference of each float output from the predictor's PyTorch
# pass, relative to the tolerance (<= 1: within it), printed as JSON.
COMPARE = textwrap.dedent(
    """
    import json, sys
    import onnxruntime, torch
    import litforge
    from litforge.run.export import ATOL, RTOL
    run, onnx_file, source = sys.argv[1:4]
    predictor = litforge.load(run)
    if source.startswith("python:"):
        from mytask.data import make_shapes
        source = [image for image in eval(source[len("python:"):])]
    inputs = predictor.inputs(source)
    want = predictor.outputs(inputs).tensors()
    if "value" in want:
        want["value"] = predictor.data.in_target_units(want["value"])
    session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, feed)))
    report = {"items": len(inputs), "inputs": list(feed), "outputs": {}}
    for name, value in want.items():
        have = torch.from_numpy(got[name])
        assert have.shape == value.shape, (name, have.shape, value.shape)
        if value.is_floating_point():
            diff = (have - value.float()).abs()
            ratio = (diff / (ATOL + RTOL * value.float().abs())).max()
            report["outputs"][name] = {"max_diff": float(diff.max()), "ratio": float(ratio)}
        else:
            report["outputs"][name] = {"agree": float((have == value).float().mean())}
    print(json.dumps(report))
    """
)


def export_and_compare(
    project: Path, root: Path, source: str, *extra: str
) -> tuple[dict[str, Any], str]:
    """``python -m mytask export`` on the run in ``root/run``; then COMPARE on ``source``.
    Returns the comparison and the export's output."""
    env = recipes.with_path(project)
    command = [sys.executable, "-m", recipes.RECIPE_PROJECT, "export"]
    done = subprocess.run(
        [*command, f"--ckpt_path={root / 'run'}", *extra],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = [line for line in done.stdout.splitlines() if line.startswith("exported: ")]
    assert len(written) == 1, done.stdout
    onnx_file = Path(written[0].removeprefix("exported: ").split(" (")[0])
    assert onnx_file.is_file() and onnx_file.suffix == ".onnx", onnx_file
    assert not list(onnx_file.parent.glob("*partial*"))
    compared = subprocess.run(
        [sys.executable, "-c", COMPARE, str(root / "run"), str(onnx_file), source],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compared.returncode == 0, compared.stdout[-2000:] + compared.stderr[-3000:]
    return json.loads(compared.stdout.strip().splitlines()[-1]), done.stdout


def within_tolerance(report: dict[str, Any], floats: set[str]) -> None:
    outputs = report["outputs"]
    assert floats <= set(outputs), outputs
    for name, result in outputs.items():
        if "ratio" in result:
            assert result["ratio"] <= 1.0, (name, result, f"tolerance {ATOL} + {RTOL} * |value|")
        else:  # an argmax: equal but for near ties
            assert result["agree"] >= 0.99, (name, result)


SMALL_IMAGES = ["--data.n_train=256", "--data.n_test=64", "--data.val_size=64"]


@pytest.mark.slow  # a short fit, the export, the comparison: about a minute
def test_export_of_the_template_agrees_with_pytorch(mytask: Path, tmp_path: Path) -> None:
    recipes.fit(mytask, tmp_path, *SMALL_IMAGES, *recipes.epochs(1))
    report, output = export_and_compare(mytask, tmp_path, "python:make_shapes(32, 16, 1).images")
    assert "checked: ONNX Runtime against PyTorch" in output and "tolerance" in output
    assert report["inputs"] == ["image"] and report["items"] == 32
    within_tolerance(report, {"logits", "probs", "entropy"})


@pytest.mark.slow
def test_export_of_a_table_classifier_has_its_standardisation_inside(
    mytask: Path, tmp_path: Path
) -> None:
    recipes.apply_recipe("tabular-classification", mytask)
    recipes.tumour_rows(tmp_path / "tumours.csv", n=200)
    args = [f"--data.root={tmp_path / 'tumours.csv'}", "--data.label=diagnosis"]
    recipes.fit(mytask, tmp_path, *args, *recipes.epochs(2))
    # the CSV's rows as new inputs (the label column is read as part of the id, not a feature),
    # also the sample the export is traced and checked on
    csv_file = str(tmp_path / "tumours.csv")
    report, output = export_and_compare(mytask, tmp_path, csv_file, f"--sample={csv_file}")
    assert "on batches of 200 and 1" in output, output
    assert report["inputs"] == ["features"] and report["items"] == 200
    within_tolerance(report, {"logits", "probs"})


@pytest.mark.slow
def test_export_of_a_segmenter_agrees_with_pytorch(mytask: Path, tmp_path: Path) -> None:
    recipes.apply_recipe("segmentation", mytask)
    recipes.fit(mytask, tmp_path, *SMALL_IMAGES, *recipes.epochs(1))
    report, _ = export_and_compare(mytask, tmp_path, "python:make_shapes(16, 16, 1).images")
    assert report["inputs"] == ["image"]
    within_tolerance(report, {"logits"})
    assert report["outputs"]["pred"]["agree"] >= 0.99  # the mask, pixel by pixel


@pytest.mark.slow
def test_export_of_an_image_regressor_agrees_with_pytorch(mytask: Path, tmp_path: Path) -> None:
    recipes.apply_recipe("image-regression", mytask)
    recipes.fit(mytask, tmp_path, *SMALL_IMAGES, *recipes.epochs(1))
    # the noisy test images (floats) as new inputs: read as pixels, as any image file
    report, _ = export_and_compare(mytask, tmp_path, "python:make_shapes(16, 16, 1).images")
    assert report["inputs"] == ["image"] and set(report["outputs"]) == {"value"}
    within_tolerance(report, {"value"})


# ---------------------------------------------------------------------- serve
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def png_base64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def same_row(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """The same keys and texts, the same numbers but for float rounding (a batch of other
    sizes may sum in another order)."""
    assert got.keys() == want.keys(), (got, want)
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-5), (key, got, want)
        else:
            assert got[key] == value, (key, got, want)
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """The template trained briefly, served by ``python -m template_project serve`` on a free
    port; stopped (its whole process group) when the test ends, passed or failed."""
    from template_project import cli

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LITFORGE_RUN_DIR", raising=False)
        args = testing.data_args(cli.project.data_class, tmp_path / "data")
        run = testing.train(cli.main, tmp_path, "fit", *args, "--trainer.max_epochs=1")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    command = ["-m", "template_project", "serve", f"--ckpt_path={run.run_dir}", f"--port={port}"]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its workers in its group: all stopped together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the server was not up within 120 s")
        yield url, run.run_dir, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.mark.slow  # a short fit, a server's start, a few requests: about a minute
def test_serve_answers_as_the_predictor_and_survives_a_bad_request(
    server: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    import litforge

    url, run_dir, process = server
    printed = (tmp_path / "serve.log").read_text()
    assert f"{url}/predict" in printed and "try: curl -s" in printed, printed
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(16, 16), (20, 12)] * 3]
    bodies = [json.dumps({"image": png_base64(p)}).encode() for p in images]
    with ThreadPoolExecutor(len(bodies)) as pool:  # together: LitServe batches them
        answers = list(pool.map(lambda b: post(f"{url}/predict", b), bodies))
    predictor = litforge.load(run_dir)
    for (status, text), pixels in zip(answers, images):
        assert status == 200, text
        (want,) = predictor.predict([pixels])
        assert same_row(json.loads(text), want)

    for bad in (b"{not json", json.dumps({"image": "not base64!"}).encode(), b'{"rows": 1}'):
        status, text = post(f"{url}/predict", bad)
        reason = json.loads(text)["detail"]
        assert 400 <= status < 500 and isinstance(reason, str), (status, text)
        assert "\n" not in reason and len(reason) < 300, reason
    # the server goes on; a JSON body sent as a form (curl -d without a Content-Type) is JSON
    status, text = post(f"{url}/predict", bodies[0], "application/x-www-form-urlencoded")
    assert status == 200 and same_row(json.loads(text), json.loads(answers[0][1]))
    assert process.poll() is None
