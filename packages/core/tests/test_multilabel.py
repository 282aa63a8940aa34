"""Multi-label classification, each part against an independent computation: the loss (binary
cross-entropy by hand), the metrics (scikit-learn's F1, subset accuracy and average precision),
the readers (tags in a table column, image files named in a table, their ``error:`` lines), the
per-label counts (scikit-learn's multilabel confusion matrix), and a real fit whose pictures'
JSON (tag sets, counts, calibration) matches the model's own predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    multilabel_confusion_matrix,
)
from torch import nn
from torchmetrics.classification import BinaryCalibrationError

from litforge import (
    ConfusionMatrix,
    DataError,
    Extremes,
    ImageTableDataModule,
    MultiLabelClassifier,
    MultiLabelExample,
    MultiLabelPrediction,
    SettingError,
    Uncertainty,
    decode_strings,
    multilabel_metrics,
    read_image_table,
    read_table,
    tag_sets,
)
from litforge.data.tags import write_tagged_images
from litforge.diagnostics.confusion import worst_labels
from litforge.diagnostics.labels import label_counts, label_facts
from litforge.tasks.metrics import several_values
from litforge.testing.syncs import host_syncs


class TagNet(MultiLabelClassifier):
    """A small conv net, a logit per label."""

    def __init__(self, num_labels: int, in_channels: int = 3, **kwargs: Any) -> None:
        super().__init__(num_labels, **kwargs)
        self.body = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16, num_labels)

    def forward(self, example: MultiLabelExample) -> MultiLabelPrediction:  # type: ignore[override]
        return MultiLabelPrediction(self.head(self.body(example.image).amax(dim=(2, 3))))


class GivenLogits(MultiLabelClassifier):
    """Its logits are the example's features: the model's own steps on chosen logits."""

    def forward(self, example: MultiLabelExample) -> MultiLabelPrediction:  # type: ignore[override]
        return MultiLabelPrediction(example.features)


def batch(n: int = 64, k: int = 5, seed: int = 0) -> tuple[MultiLabelExample, torch.Tensor]:
    """Multi-hot targets (about a third of the labels present) and logits that lean to them."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, k, generator=g) < 0.35).long()
    logits = 2 * torch.randn(n, k, generator=g) + 1.5 * (2 * target - 1)
    return MultiLabelExample(index=torch.arange(n), features=logits, target=target), logits


def test_loss_threshold_and_metrics_match_independent_computations() -> None:
    example, logits = batch()
    model = GivenLogits(5, label_names=list("abcde"), threshold=0.3)
    prediction = model(example)
    assert prediction.threshold == 0.3  # the model's, on what its forward returned
    p = torch.sigmoid(logits.double())
    y = example.target.double()
    by_hand = -(y * p.log() + (1 - y) * (1 - p).log()).mean(1)
    torch.testing.assert_close(model.per_example_loss(example, prediction).double(), by_hand)
    pred = (p > 0.3).long()
    assert torch.equal(prediction.pred, pred)

    metrics = multilabel_metrics(5, list("abcde"))
    metrics.update(example, prediction)
    got = metrics.compute()
    t, q = example.target.numpy(), pred.numpy()
    assert float(got["f1_micro"]) == pytest.approx(f1_score(t, q, average="micro"), abs=1e-6)
    assert float(got["f1_macro"]) == pytest.approx(f1_score(t, q, average="macro"), abs=1e-6)
    per_label = f1_score(t, q, average=None)
    logged = several_values("f1", metrics["f1"], metrics["f1"].compute())  # as BaseModel logs
    assert {k: round(float(v), 6) for k, v in logged.items()} == {
        f"f1/{name}": round(float(v), 6) for name, v in zip("abcde", per_label)
    }  # one scalar per label, named after it
    assert float(got["exact_match"]) == pytest.approx(accuracy_score(t, q), abs=1e-6)
    expected_map = average_precision_score(t, p.numpy(), average="macro")
    assert float(got["map"]) == pytest.approx(expected_map, abs=1e-5)
    assert model.best_metric == "f1_micro"


def test_a_training_update_makes_no_host_sync() -> None:
    """The metrics updated on training batches (``train_metrics``) read no device value on the
    host: on a GPU they would stall every step."""
    model = GivenLogits(5)
    train = model._train_template(model.build_metrics())
    assert list(train.keys()) == ["f1_micro"]
    example, _ = batch()
    calls: list[tuple[int, str]] = []
    with host_syncs(calls, lambda: 0):
        prediction = model(example)
        model.compute_loss(example, prediction)
        train.update(example, prediction)
    assert not calls, calls


def test_tags_in_a_table_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,x,tags\na,1,cat dog\nb,2,\nc,3,  dog \n\nd,4,eel cat cat\n")
    arrays = read_table(path, tags="tags", ids="id")
    assert arrays.class_names == ("cat", "dog", "eel")
    assert arrays["target"].tolist() == [[1, 1, 0], [0, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert tag_sets(arrays["target"], arrays.class_names) == [
        ["cat", "dog"], [], ["dog"], ["cat", "eel"]
    ]  # fmt: skip
    assert arrays["features"].tolist() == [[1.0], [2.0], [3.0], [4.0]]
    path.write_text("id,x,tags\na,1,cat;dog\nb,2,eel\n")
    arrays = read_table(
        path, tags="tags", ids="id", separator=";", class_names=["dog", "cat", "eel"]
    )
    assert arrays["target"].tolist() == [[1, 1, 0], [0, 0, 1]]
    with pytest.raises(DataError, match=r"t\.csv:3: column 'tags': tag 'eel' is not one of"):
        read_table(path, tags="tags", ids="id", separator=";", class_names=["dog", "cat"])


def test_image_files_named_in_a_table(tmp_path: Path) -> None:
    truth = write_tagged_images(tmp_path, 6, sizes=(9, 15))
    arrays = read_image_table(tmp_path / "tags.csv", size=8, progress=False)
    assert arrays.images.shape == (6, 3, 8, 8) and arrays.images.dtype == torch.uint8
    assert arrays.class_names == ("blue", "green", "red")
    files = decode_strings(arrays["id"])
    assert files == list(truth)
    assert tag_sets(arrays["target"], arrays.class_names) == [sorted(truth[f]) for f in files]
    resized = Image.open(tmp_path / files[2]).convert("RGB").resize((8, 8), Image.BICUBIC)
    assert np.array_equal(arrays.images[2].permute(1, 2, 0).numpy(), np.asarray(resized))
    # a second read comes from the cache, equal
    again = read_image_table(tmp_path / "tags.csv", size=8, progress=False)
    assert torch.equal(again.images, arrays.images)

    lines = (tmp_path / "tags.csv").read_text().splitlines()
    (tmp_path / "bad.csv").write_text("\n".join([*lines[:3], "images/nope.png,red"]) + "\n")
    with pytest.raises(DataError, match=r"bad\.csv:4: no image 'images/nope\.png' in "):
        read_image_table(tmp_path / "bad.csv", size=8, progress=False)
    (tmp_path / "bad.csv").write_text("\n".join([*lines[:2], "images/0001.png,red,extra"]) + "\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: 3 cells, but the header has 2"):
        read_image_table(tmp_path / "bad.csv", size=8, progress=False)
    with pytest.raises(DataError, match=r"no column 'labels' \(given as tags\)"):
        read_image_table(tmp_path / "tags.csv", tags="labels", size=8, progress=False)
    with pytest.raises(DataError, match=r"no table at .*nowhere\.csv: give one with --data\.root"):
        ImageTableDataModule(root=str(tmp_path / "nowhere.csv")).load()
    with pytest.raises(SettingError, match=r"--model\.threshold=1\.5: a probability threshold"):
        TagNet(3, threshold=1.5)


def test_label_counts_match_sklearn() -> None:
    example, logits = batch(n=80, k=4, seed=3)
    pred = (logits > 0).long()
    counts = label_counts(example.target, pred)
    confusion = multilabel_confusion_matrix(example.target.numpy(), pred.numpy())  # K x 2 x 2
    assert counts["found"].tolist() == confusion[:, 1, 1].tolist()
    assert counts["missed"].tolist() == confusion[:, 1, 0].tolist()
    assert counts["added"].tolist() == confusion[:, 0, 1].tolist()
    t, p = example.target.tolist(), pred.tolist()
    by_hand = [
        [sum(r[i] and not s[i] and s[j] and not r[j] for r, s in zip(t, p)) for j in range(4)]
        for i in range(4)
    ]
    assert counts["missed_added"].tolist() == by_hand
    # more labels than ConfusionMatrix draws: a table of those with the most errors
    table = worst_labels(label_facts(counts, list("abcd"))["labels"], top=2)
    errors = confusion[:, 1, 0] + confusion[:, 0, 1]
    order = sorted(range(4), key=lambda i: -errors[i])[:2]
    assert table.columns["label"] == ["abcd"[i] for i in order]
    assert table.columns["missed"] == [int(confusion[i, 1, 0]) for i in order]


@pytest.mark.slow
def test_a_fit_draws_tag_sets_counts_and_calibration(tmp_path: Path) -> None:
    """A real fit and test on image files named in a table: Extremes' JSON holds each example's
    true and predicted sets, ConfusionMatrix's its per-label counts, Uncertainty's the ECE of
    every label decision; each equal to what the model predicts on the test set."""
    args = ImageTableDataModule.write_test_data(tmp_path / "data")
    data = ImageTableDataModule(**{**args, "val_size": 0.25, "test_size": 0.25})
    model = TagNet(data.num_labels, label_names=data.label_names, threshold=0.4)
    model.optimizer_factory = lambda params: torch.optim.AdamW(params, lr=0.03)
    trainer = pl.Trainer(
        max_epochs=12,
        default_root_dir=tmp_path,
        logger=pl.loggers.CSVLogger(tmp_path / "logs"),
        callbacks=[Extremes(k=4), Uncertainty(n_bins=5), ConfusionMatrix()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    (results,) = trainer.test(model, data, verbose=False)

    test = data.sample("test", 10**6)
    with torch.no_grad():
        prediction = model.eval()(test)
    names = list(data.label_names)
    t, q = test.target.numpy(), prediction.pred.numpy()
    assert results["test/images/f1_micro"] == pytest.approx(f1_score(t, q, average="micro"))
    assert results["test/images/f1_micro"] > 0.7  # the colours are plain to see

    media = next(p for p in tmp_path.rglob("media/test/images") if p.is_dir())
    (shown,) = (media / "extremes" / "highest_error").glob("*.json")
    for record in json.loads(shown.read_text())["examples"]:
        i = int(record["index"])
        assert record["target"] == [n for n, on in zip(names, t[i]) if on]
        assert record["pred"] == [n for n, on in zip(names, q[i]) if on]

    (counted,) = (media / "confusion_matrix").glob("*.json")
    facts = json.loads(counted.read_text())
    confusion = multilabel_confusion_matrix(t, q)
    assert [r["found"] for r in facts["labels"]] == confusion[:, 1, 1].tolist()
    assert [r["missed"] for r in facts["labels"]] == confusion[:, 1, 0].tolist()
    assert [r["added"] for r in facts["labels"]] == confusion[:, 0, 1].tolist()
    assert [r["label"] for r in facts["labels"]] == names
    per_label = f1_score(t, q, average=None, zero_division=0)
    assert [r["f1"] for r in facts["labels"]] == pytest.approx(per_label.tolist(), abs=1e-6)
    logged = [results[f"test/images/f1/{name}"] for name in names]  # one scalar per label
    assert logged == pytest.approx(per_label.tolist(), abs=1e-6)

    (calibrated,) = (media / "uncertainty").glob("*.json")
    ece = BinaryCalibrationError(n_bins=5)(prediction.probs.flatten(), test.target.flatten())
    assert json.loads(calibrated.read_text())["ece"] == pytest.approx(float(ece), abs=1e-5)
    assert results["test/images/ece"] == pytest.approx(float(ece), abs=1e-5)


def test_the_data_state_and_readable_tag_sets(tmp_path: Path) -> None:
    """What the data taught (label names, image size and normalisation) is restored without
    reading the data, and a prediction for new image files reads as its tag set, by name, at
    the model's threshold."""
    args = ImageTableDataModule.write_test_data(tmp_path)
    data = ImageTableDataModule(**args)
    state = data.state_dict()
    assert state["label_names"] == ["blue", "green", "red"] and state["num_labels"] == 3
    fresh = ImageTableDataModule(**{**args, "root": str(tmp_path / "nowhere.csv")})
    fresh.load_state_dict(state)  # reading nowhere.csv would fail
    assert fresh.label_names == data.label_names and fresh.num_labels == 3
    assert torch.equal(fresh.mean, data.mean) and fresh.image_size == data.image_size

    torch.manual_seed(0)
    model = TagNet(3, threshold=0.45).eval()
    inputs = fresh.read_inputs(sorted((tmp_path / "images").glob("*.png"))[:6])
    with torch.no_grad():
        (prediction,) = [model(example) for example in fresh.input_loader(inputs)]
    rows = fresh.readable(inputs, prediction)
    probs = prediction.probs
    assert [r["id"] for r in rows] == [f"{i:04d}.png" for i in range(6)]
    for row, p in zip(rows, probs):
        assert row["prediction"] == " ".join(n for n, q in zip(fresh.label_names, p) if q > 0.45)
        assert [row[f"p({n})"] for n in fresh.label_names] == pytest.approx(p.tolist())
