"""``read_recordings`` / ``RecordingsDataModule``: one CSV of numbers per item named in a table.
The values equal an independent read of each file (numpy); a bad file or cell is one line
naming the file, line and column; a real fit learns the classes, and the trained model is
loaded from its checkpoint alone, predicts new recording files as the model does, and exports
without a sample (``made_up_inputs``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import litforge
from litforge import DataError, InputError, RecordingsDataModule, read_recordings
from litforge.data.recordings import write_recordings
from litforge.testing.recordings import Conv1dClassifier


def test_the_values_are_each_file_as_numpy_reads_it(tmp_path: Path) -> None:
    labels = write_recordings(tmp_path, 9, rows=12)
    arrays = read_recordings(tmp_path / "labels.csv", columns=["ax", "az"])
    assert tuple(arrays["features"].shape) == (9, 2, 12)
    assert arrays.class_names == ("fast", "slow", "still")
    assert [arrays.class_names[i] for i in arrays["label"].tolist()] == labels
    assert litforge.decode_strings(arrays["id"]) == [f"rec{i:03d}.csv" for i in range(9)]
    for i in range(9):
        want = np.loadtxt(tmp_path / f"rec{i:03d}.csv", delimiter=",", skiprows=1, usecols=(1, 3))
        assert torch.equal(arrays["features"][i], torch.from_numpy(want.T.astype(np.float32)))
    assert arrays.channel_names == ("ax", "az")
    every = read_recordings(tmp_path / "labels.csv", length=5)  # every column, 5 rows
    assert tuple(every["features"].shape) == (9, 4, 5)
    assert torch.equal(every["features"][:, 1:3], read_recordings(
        tmp_path / "labels.csv", columns=["ax", "ay"])["features"][..., :5])  # fmt: skip


def test_bad_files_and_cells_are_named(tmp_path: Path) -> None:
    write_recordings(tmp_path, 6, rows=10)
    table = tmp_path / "labels.csv"
    with pytest.raises(
        DataError, match=r"rec000\.csv: no column gx; its columns are t, ax, ay, az"
    ):
        read_recordings(table, columns=["gx"])
    rec = tmp_path / "rec002.csv"
    lines = rec.read_text().splitlines()
    rec.write_text("\n".join([*lines[:4], lines[4].replace(",", ",oops,", 1), *lines[5:]]))
    with pytest.raises(DataError, match=r"rec002\.csv:5: column 'ax': 'oops' is not a number"):
        read_recordings(table, columns=["ax"])
    rec.write_text("\n".join(lines[:6]) + "\n")  # 5 rows where the others have 10
    with pytest.raises(DataError, match=r"rec002\.csv has 5 rows, rec000\.csv 10: give length="):
        read_recordings(table)
    assert read_recordings(table, length=5)["features"].shape[-1] == 5
    with pytest.raises(DataError, match=r"rec002\.csv has 5 rows, fewer than length=8"):
        read_recordings(table, length=8)
    table.write_text(table.read_text() + "missing.csv,slow\n")
    with pytest.raises(DataError, match=r"labels\.csv:8: no recording 'missing\.csv'"):
        read_recordings(table, length=5)


@pytest.mark.slow  # a fit of a few seconds, a load and an export
def test_a_fit_learns_and_the_model_reads_new_recordings(tmp_path: Path) -> None:
    settings = RecordingsDataModule.write_test_data(tmp_path / "data")
    data = RecordingsDataModule(**settings)
    data.setup("fit")
    torch.manual_seed(0)
    model = Conv1dClassifier(num_classes=data.num_classes, channels=data.channels)
    trainer = pl.Trainer(
        max_epochs=40, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    (result,) = trainer.test(model, datamodule=data, verbose=False)
    assert result["test/recordings/accuracy"] >= 0.9
    new = tmp_path / "new"
    write_recordings(new, 6, seed=1)
    (new / "labels.csv").unlink()
    predictor = litforge.load(trainer.checkpoint_callback.best_model_path)
    rows = predictor.predict(new)
    assert [r["id"] for r in rows] == [f"rec{i:03d}.csv" for i in range(6)]
    inputs = read_recordings(new.parent / "data" / "labels.csv", columns=["ax", "ay", "az"])
    assert predictor.data.num_features == inputs["features"].shape[-1]
    features = torch.stack(
        [litforge.data.recordings.read_recording(new / r["id"], ["ax", "ay", "az"])[0]
         for r in rows]
    )  # fmt: skip
    model.eval()
    with torch.no_grad():
        example = data.make_example(torch.arange(6), {"features": features, "label": None})
        probs = model(example).probs
    for row, p in zip(rows, probs):
        assert row["prediction"] == data.class_names[int(p.argmax())]
        assert row["probability"] == pytest.approx(float(p.max()), abs=1e-5)
    with pytest.raises(InputError, match="recordings are N x 3 channels x 40 rows"):
        predictor.predict(np.zeros((2, 3, 7), dtype=np.float32))
    exported = litforge.export(predictor, tmp_path / "m.onnx")  # made-up inputs: no sample
    assert exported.inputs == ("features",) and exported.max_diff < 1e-3
