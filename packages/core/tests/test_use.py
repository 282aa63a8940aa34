"""Using a trained model (``litforge.run.use``): ``Model.load_from_checkpoint(path)`` alone in a
fresh process, ``litforge.load(run folder)`` that reads raw inputs with what the data taught
(restored from the checkpoint, the training data unread) and gives what the model gives on the
same items through the trainer, and ``python -m <project> predict --data.predict=<path>``,
which writes ``predictions.csv`` (masks as PNG files) or one ``error:`` line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import litforge
from litforge import ClassificationPrediction, InputError, testing
from litforge.data.module import ArrayDataModule
from litforge.run.use import find_checkpoint, write_predictions
from litforge.tasks.model import is_plain

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def fresh_process(code: str, cwd: Path) -> str:
    """Runs ``code`` in a new Python process (nothing imported or registered beforehand)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def predict_command(module: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "predict", f"--run.root={cwd / 'runs'}", *QUIET, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def predictions_csv(output: str) -> Path:
    line = next(x for x in output.splitlines() if x.strip().startswith("predictions: "))
    return Path(line.split("predictions: ", 1)[1].strip())


# ---------------------------------------------------------------------- fast: no fit
def test_hyperparameters_built_in_python_keep_plain_values_only() -> None:
    """A model built in Python saves its arguments, the subclass's and the linked ones, but not
    the optimizer callable that ``weights_only=True`` refuses; they rebuild the model."""
    model = testing.TinyClassifier(num_classes=3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    hparams = dict(model.hparams)
    assert hparams["num_classes"] == 3 and "optimizer" not in hparams, hparams
    assert all(is_plain(v) for v in hparams.values())
    rebuilt = type(model)(**hparams)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_readable_classification_rows_are_the_softmax_by_class_name() -> None:
    data = ArrayDataModule()
    data.load_state_dict({"class_path": "x.Y", "class_names": ["cat", "dog", "eel"], "stats": {}})
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    inputs = litforge.Arrays(features=torch.zeros(2, 1), id=litforge.encode_strings(["a", "b"]))
    rows = data.readable(inputs, ClassificationPrediction(logits))
    probs = torch.softmax(logits, 1)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert [r["prediction"] for r in rows] == ["dog", "cat"]
    assert rows[0]["probability"] == pytest.approx(float(probs[0, 1]))
    assert rows[1]["p(eel)"] == pytest.approx(float(probs[1, 2]))


def test_predictions_csv_is_whole_and_masks_are_png(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 2]], dtype=np.uint8)
    rows = [{"id": "x/a.png", "mask": mask, "share(b)": 0.25}, {"id": "c.png", "mask": mask}]
    path = write_predictions(rows, tmp_path)
    table = read_csv(path)
    assert list(table[0]) == ["id", "mask", "share(b)"] and table[1]["share(b)"] == ""
    assert np.array_equal(np.asarray(Image.open(tmp_path / table[0]["mask"])), mask)
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------------- slow: real fits
@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory) -> litforge.LitforgeCLI:
    from template_project import cli

    tmp = tmp_path_factory.mktemp("template")
    os.environ.pop("LITFORGE_RUN_DIR", None)
    data = testing.data_args(cli.project.data_class, tmp / "data")
    return testing.train(cli.main, tmp, "fit", "--trainer.max_epochs=1", *data)


@pytest.mark.slow
def test_template_loads_alone_in_a_fresh_process(template_run, tmp_path: Path) -> None:
    """``ShapeModel.load_from_checkpoint(path)`` with no other argument, in a new process,
    gives the logits the trained model gives on the same images."""
    ckpt = find_checkpoint(template_run.run_dir)
    assert ckpt.name.startswith("best-")  # the one results.json says was tested
    example = template_run.datamodule.sample("test", 8)
    torch.save(example.image.cpu(), tmp_path / "images.pt")
    model = type(template_run.model).load_from_checkpoint(ckpt).eval()
    with torch.no_grad():
        expected = model(example).logits
    out = fresh_process(
        "import torch\n"
        "from template_project.model import ShapeModel\n"
        "from litforge import ClassificationExample\n"
        f"m = ShapeModel.load_from_checkpoint({str(ckpt)!r}).eval()\n"
        f"x = torch.load({str(tmp_path / 'images.pt')!r}, weights_only=True)\n"
        "with torch.no_grad():\n"
        "    y = m(ClassificationExample(index=torch.arange(len(x)), image=x, label=None))\n"
        f"torch.save(y.logits, {str(tmp_path / 'logits.pt')!r})\n"
        "print(m.hparams.num_classes, m.hparams.in_channels)\n",
        tmp_path,
    )
    assert out.split() == ["4", "3"]
    assert torch.allclose(torch.load(tmp_path / "logits.pt"), expected, atol=1e-6)


@pytest.mark.slow
def test_load_predicts_raw_images_as_the_trainer_predicts_the_test_set(template_run) -> None:
    """``litforge.load(run folder).predict(images)`` on the test images as raw uint8 arrays
    equals ``trainer.predict`` on the test split (the data module's own path)."""
    run = template_run
    predictor = litforge.load(run.run_dir)
    assert predictor.data._splits is None  # what the data taught, from the checkpoint
    test = run.datamodule.splits["test"]
    pixels = [img.permute(1, 2, 0).cpu().numpy() for img in test["image"][:20]]
    ckpt = str(find_checkpoint(run.run_dir))
    batches = run.trainer.predict(run.model, datamodule=run.datamodule, ckpt_path=ckpt)
    probs = torch.cat([b.probs for b in batches])[:20]
    rows = predictor.predict(pixels)
    names = run.datamodule.class_names
    assert [r["prediction"] for r in rows] == [names[i] for i in probs.argmax(1)]
    for row, p in zip(rows, probs):
        got = torch.tensor([row[f"p({n})"] for n in names])
        assert torch.allclose(got, p, atol=1e-5), (got, p)
    with pytest.raises(InputError, match="image 0 is 16x16x4: the model reads images of 3"):
        predictor.predict([np.zeros((16, 16, 4), dtype=np.uint8)])


def test_load_reads_no_training_data(tmp_path: Path) -> None:
    """The data module ``litforge.load`` rebuilds restores what the data taught from the
    checkpoint: its sets stay unloaded."""
    pytest.importorskip("template_project")  # a cheap stand-in: the state alone
    from template_project.data import ShapesData

    data = ShapesData(n_train=64, n_test=16)
    state = data.state_dict()  # reads the training set
    fresh = ShapesData(n_train=10**9)  # reading this one would take forever
    fresh.load_state_dict(state)
    assert fresh.class_names == data.class_names and fresh.in_channels == 3
    assert torch.equal(fresh.mean, data.mean) and fresh.image_size == data.image_size
    assert fresh._splits is None


@pytest.mark.slow
def test_predict_command_writes_a_readable_csv_and_refuses_bad_files(
    template_run, tmp_path: Path
) -> None:
    """``predict --ckpt_path=<run folder> --data.predict=<folder>``: images of any size and
    mode, one row each, values as ``litforge.load`` computes them; an unreadable file: one
    ``error:`` line naming it, exit status 2, no predictions.csv."""
    folder = tmp_path / "new"
    folder.mkdir()
    g = np.random.default_rng(0)
    for name, shape in (("a.png", (20, 31, 3)), ("b.jpg", (40, 40, 3)), ("c.png", (9, 12))):
        Image.fromarray(g.integers(0, 255, shape, dtype=np.uint8)).save(folder / name)
    done = predict_command(
        "template_project",
        tmp_path,
        f"--ckpt_path={template_run.run_dir}",
        f"--data.predict={folder}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = read_csv(predictions_csv(done.stdout))
    expected = litforge.load(template_run.run_dir).predict(folder)
    names = template_run.datamodule.class_names
    assert list(table[0]) == ["id", "prediction", "probability", *[f"p({n})" for n in names]]
    assert [r["id"] for r in table] == ["a.png", "b.jpg", "c.png"]
    for row, want in zip(table, expected):
        assert row["prediction"] == want["prediction"]
        assert float(row["probability"]) == pytest.approx(want["probability"], rel=1e-4)

    (folder / "d.png").write_bytes(b"not an image")
    bad = predict_command(
        "template_project",
        tmp_path,
        f"--ckpt_path={template_run.run_dir}",
        f"--data.predict={folder}",
    )
    assert bad.returncode == 2, bad.stderr[-2000:]
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "d.png: cannot be read as an image" in line, line
    assert len(line) < 200


@pytest.mark.slow
def test_regression_predictions_are_in_the_targets_units(tmp_path: Path) -> None:
    """A standardised target: ``litforge.load(...).predict(raw rows)`` gives the trainer's
    prediction on the test split with the standardisation undone."""
    from litforge.testing import regression

    run = testing.train(regression.main, tmp_path, "fit", "--trainer.max_epochs=2")
    data = run.datamodule
    mean, std = data.stats["target"]
    ckpt = str(find_checkpoint(run.run_dir))
    batches = run.trainer.predict(run.model, datamodule=data, ckpt_path=ckpt)
    expected = torch.cat([b.value for b in batches]) * std + mean
    raw = data.splits["test"]["features"] * data.stats["features"][1] + data.stats["features"][0]
    rows = litforge.load(run.run_dir).predict(raw.numpy())
    got = torch.tensor([r["prediction"] for r in rows])
    assert torch.allclose(got, expected, atol=1e-4), (got[:4], expected[:4])
    assert float(std) > 1.2 or float(mean.abs()) > 0.2  # the units differ from standardised


@pytest.mark.slow
def test_segmentation_masks_come_back_at_each_images_size(tmp_path: Path) -> None:
    """The segmentation demo: loaded alone in a fresh process; the predict command writes one
    mask PNG per image, at the image's own size, as ``litforge.load`` computes it."""
    from segmentation_demo import cli

    small = ["--data.n_train=96", "--data.n_test=32", "--data.val_size=32", "--data.size=32"]
    run = testing.train(cli.main, tmp_path, "fit", "--trainer.max_epochs=1", *small)
    ckpt = find_checkpoint(run.run_dir)
    out = fresh_process(
        "from segmentation_demo.model import SegModel\n"
        f"print(SegModel.load_from_checkpoint({str(ckpt)!r}).hparams.num_classes)\n",
        tmp_path,
    )
    assert out.split() == ["4"]
    folder = tmp_path / "new"
    folder.mkdir()
    g = np.random.default_rng(1)
    for name, shape in (("p.png", (48, 40, 3)), ("q.png", (32, 32, 3))):
        Image.fromarray(g.integers(0, 255, shape, dtype=np.uint8)).save(folder / name)
    done = predict_command(
        "segmentation_demo", tmp_path, f"--ckpt_path={run.run_dir}", f"--data.predict={folder}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    path = predictions_csv(done.stdout)
    table = read_csv(path)
    expected = litforge.load(run.run_dir).predict(folder)
    for row, want, shape in zip(table, expected, ((48, 40), (32, 32))):
        mask = np.asarray(Image.open(path.parent / row["mask"]))
        assert mask.shape == shape and np.array_equal(mask, want["mask"])
        assert float(row["share(background)"]) == pytest.approx(np.mean(mask == 0), abs=1e-5)


@pytest.mark.slow
def test_cifar10_streamed_loads_alone_and_predicts_without_its_data(tmp_path: Path) -> None:
    """The CIFAR-10 demo (a streamed data module): the predict command, its data folder gone,
    gives what ``litforge.load`` gives, and the model loads alone in a fresh process."""
    testing.write_image_folder(tmp_path / "tiny", classes=10, per_class={"train": 8, "test": 4})
    new = testing.write_image_folder(
        tmp_path / "new", classes=("x",), per_class={"": 3}, sizes=(20, 50)
    )
    args = [
        "--size=null",
        "--run.time_budget=null",
        "--run.precision=null",
        "--trainer.precision=32-true",
    ]
    fit = subprocess.run(
        [
            *(sys.executable, "-m", "cifar10_demo", "fit", "--data.root=tiny"),
            *("--data.batch_size=16", "--model.widths=[8,16,16]", "--trainer.max_epochs=1"),
            *("--run.dir=run", *args, "--run.loggers=[csv]", *QUIET),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    expected = litforge.load(tmp_path / "run").predict(new / "x")
    import shutil

    shutil.rmtree(tmp_path / "tiny")
    out = fresh_process(
        "from cifar10_demo.model import Cifar10Model\n"
        f"print(Cifar10Model.load_from_checkpoint({str(tmp_path / 'run/checkpoints/last.ckpt')!r})"
        ".hparams.widths)\n",
        tmp_path,
    )
    assert out.split() == ["(8,", "16,", "16)"]
    done = predict_command(
        "cifar10_demo", tmp_path, "--ckpt_path=run", f"--data.predict={new / 'x'}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = read_csv(predictions_csv(done.stdout))
    assert (
        [r["id"] for r in table]
        == [r["id"] for r in expected]
        == ["00000.png", "00001.png", "00002.png"]
    )
    for row, want in zip(table, expected):
        assert row["prediction"] == want["prediction"]
        assert float(row["p(class3)"]) == pytest.approx(want["p(class3)"], rel=1e-4)
