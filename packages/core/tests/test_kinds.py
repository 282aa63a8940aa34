"""What the kinds of task need from core, each checked against an independent computation:
tables (``read_table``), token sequences (``Vocabulary``, ``pad_sequences``), text ids, image
folders of mixed sizes (``ImageFolderDataModule``), float images and dense float targets, the
regression metrics chosen by the target's shape, classification of any input, the values a data
module provides to the model, and the learning-rate schedules that span the run."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litforge import (
    ArrayDataModule,
    Arrays,
    ClassificationExample,
    ClassificationPrediction,
    Classifier,
    DataError,
    ImageArrays,
    ImageDataModule,
    ImageFolderDataModule,
    Images,
    RegressionExample,
    RegressionPrediction,
    Regressor,
    Table,
    Vocabulary,
    decode_cells,
    decode_strings,
    encode_strings,
    lr_factor,
    pad_sequences,
    read_table,
    regression_metrics,
    sequence_mask,
    testing,
)
from litforge.data.image_folder import ImageFolderError, MissingFolderError
from litforge.run.arguments import init_parameters
from litforge.run.cli import LitforgeCLI


# ---------------------------------------------------------------------- tables
def write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def tumours(tmp_path: Path) -> tuple[Path, list[list[Any]]]:
    rng = np.random.default_rng(0)
    rows = [
        [f"P{i:03d}", *np.round(rng.normal(size=3), 4).tolist(), ["malignant", "benign"][i % 2]]
        for i in range(9)
    ]
    return write_csv(
        tmp_path / "t.csv", ["id", "radius", "texture", "area", "diagnosis"], rows
    ), rows


def test_read_table_features_labels_ids(tumours: tuple[Path, list[list[Any]]]) -> None:
    path, rows = tumours
    arrays = read_table(path, label="diagnosis", ids="id")
    expected = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3))  # independent
    assert arrays["features"].dtype == torch.float32
    np.testing.assert_allclose(arrays["features"].numpy(), expected, rtol=1e-6)
    assert arrays.columns["features"] == ("radius", "texture", "area")
    assert arrays.class_names == ("benign", "malignant")  # sorted
    assert [arrays.class_names[i] for i in arrays["label"].tolist()] == [r[4] for r in rows]
    assert decode_strings(arrays["id"]) == [r[0] for r in rows]
    assert set(arrays) == {"features", "label", "id", "cells"}
    cells = decode_cells(arrays["cells"], arrays.columns["cells"])  # as the file has them
    assert cells == {c: [str(r[j]) for r in rows] for j, c in enumerate(arrays.columns["cells"], 1)}
    # named features, in the order given; the others left out
    two = read_table(path, label="diagnosis", features=["area", "radius"])
    np.testing.assert_allclose(two["features"].numpy(), expected[:, [2, 0]], rtol=1e-6)


def test_read_table_targets_tsv_and_numeric_class_names(tmp_path: Path) -> None:
    rows = [[i, i * 0.5, 10 - i, str(c)] for i, c in enumerate([10, 2, 2, 1, 10])]
    path = write_csv(tmp_path / "r.tsv", ["a", "b", "y", "grade"], rows, delimiter="\t")
    one = read_table(path, target="y", features=["a", "b"])
    assert one["target"].shape == (5,) and one["target"].tolist() == [10, 9, 8, 7, 6]
    two = read_table(path, target=["y", "b"], features=["a"])
    assert two["target"].shape == (5, 2) and two.columns["target"] == ("y", "b")
    graded = read_table(path, label="grade", features=["a"])
    assert graded.class_names == ("1", "2", "10")  # integers: numeric order
    assert graded["label"].tolist() == [2, 1, 1, 0, 2]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("P1,1.0,abc,2.0,benign", r"t\.csv:3: column 'texture': 'abc' is not a number, in a"),
        ("P1,1.0,inf,2.0,benign", r"t\.csv:3: column 'texture': 'inf' is not finite"),
        ("P1,1.0,2.0,benign", r"t\.csv:3: 4 cells, but the header has 5"),
        ("P1,1.0,2.0,3.0,", r"t\.csv:3: column 'diagnosis': missing label"),
    ],
)
def test_a_bad_row_names_file_line_and_column(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,radius,texture,area,diagnosis\nP0,1,2,3,benign\n" + line + "\n")
    with pytest.raises(DataError, match=error):
        read_table(path, label="diagnosis", ids="id")


def test_table_errors_say_what_to_do(tumours: tuple[Path, list[list[Any]]], tmp_path: Path) -> None:
    path, _ = tumours
    with pytest.raises(
        DataError, match=r"no column 'label' \(given as label\); its columns are id"
    ):
        read_table(path, label="label")
    with pytest.raises(DataError, match=r"column 'id' holds a different text in each of its 9"):
        read_table(path, label="diagnosis")  # the id column taken for a feature
    with pytest.raises(DataError, match=r"'malignant' is not one of the classes benign"):
        read_table(path, label="diagnosis", ids="id", class_names=["benign"])
    with pytest.raises(DataError, match="no table at"):
        read_table(tmp_path / "missing.csv", label="x")


def test_read_table_text_column(tmp_path: Path) -> None:
    texts = ["(())", "(", "()()()", ""]
    path = write_csv(
        tmp_path / "s.csv", ["text", "label"], [[t, "xy"[i % 2]] for i, t in enumerate(texts)]
    )
    arrays = read_table(path, text="text", label="label")
    vocab = arrays.vocabulary
    assert vocab is not None and vocab.tokens[2:] == ("(", ")")
    ids = {"(": 2, ")": 3}
    expected = [[ids[c] for c in t] + [0] * (6 - len(t)) for t in texts]  # right-padded with 0
    assert arrays["tokens"].tolist() == expected
    assert arrays["lengths"].tolist() == [len(t) for t in texts]
    assert [vocab.decode(row) for row in arrays["tokens"]] == texts


# ---------------------------------------------------------------------- sequences and text
def test_vocabulary_pad_and_mask() -> None:
    vocab = Vocabulary.build(["the cat", "a cat sat"], tokenize="words")
    assert vocab.tokens == ("<pad>", "<unk>", "a", "cat", "sat", "the") and len(vocab) == 6
    assert vocab.encode("the dog sat") == [5, 1, 4]  # dog: unknown
    tokens, lengths = vocab.encode_batch(["the cat", "a", "cat sat the cat"], length=3)
    assert tokens.tolist() == [[5, 3, 0], [2, 0, 0], [3, 4, 5]] and lengths.tolist() == [2, 1, 3]
    assert vocab.decode(tokens[0]) == "the cat"
    padded, n = pad_sequences([[7], [1, 2, 3], []])
    assert padded.tolist() == [[7, 0, 0], [1, 2, 3], [0, 0, 0]] and n.tolist() == [1, 3, 0]
    mask = sequence_mask(n)
    assert mask.tolist() == [[j < k for j in range(3)] for k in (1, 3, 0)]
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "a"])


def test_strings_survive_a_batch() -> None:
    names = ["P001", "", "größe/7", "x" * 30]
    encoded = encode_strings(names)
    assert encoded.dtype == torch.uint8 and encoded.shape == (4, 30)
    assert decode_strings(encoded) == names
    assert decode_strings(encoded[torch.tensor([3, 0])]) == [names[3], names[0]]


# ---------------------------------------------------------------------- classification of any input
class RowsData(ArrayDataModule):
    name = "rows"
    example_type = ClassificationExample

    def __init__(self, path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path

    def load(self) -> Arrays:
        return read_table(self.path, label="diagnosis", ids="id")


class RowsModel(Classifier):
    def __init__(self, num_classes: int, num_features: int, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.linear = nn.Linear(num_features, num_classes)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        return ClassificationPrediction(self.linear(example.features))


def test_classification_of_rows_with_ids(tumours: tuple[Path, list[list[Any]]]) -> None:
    path, rows = tumours
    data = RowsData(str(path), batch_size=4, test_size=3)
    data.setup("fit")
    assert data.num_classes == 2 and data.num_features == 3
    assert data.feature_names == ("radius", "texture", "area")
    batch = data.sample("test", 3)
    assert batch.image is None and batch.features.shape == (3, 3)
    model = RowsModel(2, 3)
    prediction = model(batch)
    loss = model.compute_loss(batch, prediction).total
    assert loss.item() == pytest.approx(F.cross_entropy(prediction.logits, batch.label).item())
    table = data.show(batch, prediction)
    assert isinstance(table, Table)
    by_id = {r[0]: r[4] for r in rows}
    # the rows shown by their own ids, not their position in the split
    assert table.columns["id"] == decode_strings(batch.id)
    assert [by_id[i] for i in table.columns["id"]] == table.columns["label"]
    # the cells as the file has them, by column name, in place of the features
    assert list(table.columns)[:6] == ["index", "id", "radius", "texture", "area", "label"]
    by_row = {r[0]: [str(v) for v in r[1:4]] for r in rows}
    assert [by_row[i] for i in table.columns["id"]] == [
        list(cells) for cells in zip(*(table.columns[c] for c in ("radius", "texture", "area")))
    ]


# ---------------------------------------------------------------------- image folders
def test_image_folder_module_pool_of_mixed_sizes(tmp_path: Path) -> None:
    folder = testing.write_image_folder(
        tmp_path / "photos", classes=("cat", "dog"), per_class={"": 6}, sizes=(9, 30), suffix=".jpg"
    )
    sizes = {
        tuple(np.asarray(__import__("PIL.Image").Image.open(p)).shape)
        for p in folder.rglob("*.jpg")
    }
    assert len(sizes) > 5
    data = ImageFolderDataModule(str(folder), size=12, val_size=2, batch_size=4)
    data.setup("fit")
    assert (data.num_classes, data.in_channels, data.image_size) == (2, 3, (12, 12))
    assert data.class_names == ("cat", "dog") and len(data.splits["train"]) == 10
    gray = ImageFolderDataModule(str(folder), size=(8, 10), channels=1)
    assert gray.in_channels == 1 and gray.image_size == (8, 10)
    with pytest.raises(ImageFolderError, match=r"pass size=\(H, W\)"):
        ImageFolderDataModule(str(folder)).setup("fit")  # mixed sizes, none asked for


def test_image_folder_module_train_and_test(tmp_path: Path) -> None:
    folder = testing.write_image_folder(tmp_path / "f", classes=3, size=10)
    data = ImageFolderDataModule(str(folder))
    assert len(data.splits["train"]) == 60 and len(data.splits["test"]) == 15
    (folder / "test" / "class2").rename(folder / "test" / "other")
    with pytest.raises(ImageFolderError, match="give both the same class folders"):
        ImageFolderDataModule(str(folder)).setup("fit")
    with pytest.raises(MissingFolderError, match=r"--data.root=PATH \(make train-<project> DATA"):
        ImageFolderDataModule(str(tmp_path / "none")).setup("fit")
    args = testing.data_args(ImageFolderDataModule, tmp_path / "sample")
    assert args[0] == f"--data.root={tmp_path / 'sample'}" and "--data.size=[16, 16]" in args
    sample = ImageFolderDataModule(str(tmp_path / "sample"), size=16, val_size=0.2)
    assert sample.num_classes == 3 and sample.image_size == (16, 16)


# ---------------------------------------------------------------------- float images
class Denoise(ImageDataModule):
    name = "denoise"
    example_type = RegressionExample
    dense = ("target",)

    def load(self) -> ImageArrays:
        g = torch.Generator().manual_seed(0)
        clean = torch.rand(16, 2, 6, 6, generator=g)
        return ImageArrays(clean + 0.1 * torch.randn(16, 2, 6, 6, generator=g), target=clean)


def test_float_images_and_a_dense_float_target_move_together() -> None:
    data = Denoise(translate=2, flip="random", batch_size=16)
    data.setup("fit")
    assert (data.in_channels, data.out_channels, data.target_shape) == (2, 2, (2, 6, 6))
    train = data.splits["train"]
    images = train["image"]
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))  # no /255 for floats
    assert torch.allclose(data.mean, mean) and torch.allclose(data.std, std)
    # the target is the image itself: shifted and flipped alike, it stays the (normalised) image
    same = train.replace(target=images.clone())
    transform = data.transform("train")
    transform.start_epoch(1, len(same), data._loader("train", True).seeds)
    out = transform(dict(same.fields), torch.arange(len(same)))
    restored = out["image"] * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    assert torch.allclose(restored, out["target"], atol=1e-5)
    assert not torch.allclose(out["target"], images)  # it did move


def test_dense_float_target_is_drawn_input_prediction_target() -> None:
    data = Denoise(batch_size=16)
    data.setup("fit")
    example = data.sample("train", 3)
    prediction = RegressionPrediction(example.target * 0.5)
    view = data.show(example, prediction)
    assert isinstance(view, Images) and view.pixels.shape == (3, 3, 6, 3 * 6 + 2)
    assert all("input | predicted | true" in c for c in view.captions)
    as_pixels = (example.target * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(view.pixels[:, 0, :, 14:], as_pixels[:, 0])  # the target, gray as RGB
    half = (example.target * 0.5 * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(view.pixels[:, 1, :, 7:13], half[:, 0])  # the prediction


# ---------------------------------------------------------------------- regression by shape
def test_regression_metrics_follow_the_target_shape() -> None:
    g = torch.Generator().manual_seed(0)
    one_pred, one_true = torch.randn(20, generator=g), torch.randn(20, generator=g)
    many_pred, many_true = torch.randn(20, 3, generator=g), torch.randn(20, 3, generator=g)
    image_true = torch.rand(8, 1, 4, 4, generator=g)
    image_pred = image_true + 0.1 * torch.randn(8, 1, 4, 4, generator=g)

    def computed(shape: Any, pred: Tensor, true: Tensor) -> dict[str, float]:
        metrics = regression_metrics(shape)
        metrics.update(
            RegressionExample(torch.arange(len(true)), target=true), RegressionPrediction(pred)
        )
        return {k: float(v) for k, v in metrics.compute().items()}

    def r2(pred: Tensor, true: Tensor) -> float:  # per output, averaged
        true, pred = true.reshape(len(true), -1), pred.reshape(len(pred), -1)
        ss_res = ((true - pred) ** 2).sum(0)
        ss_tot = ((true - true.mean(0)) ** 2).sum(0)
        return float((1 - ss_res / ss_tot).mean())

    got = computed((), one_pred, one_true)
    assert set(got) == {"mse", "mae", "r2"}
    assert got["mse"] == pytest.approx(float(((one_pred - one_true) ** 2).mean()), rel=1e-5)
    assert got["r2"] == pytest.approx(r2(one_pred, one_true), rel=1e-4)
    got = computed((3,), many_pred, many_true)
    assert got["r2"] == pytest.approx(r2(many_pred, many_true), rel=1e-4)
    got = computed((1, 4, 4), image_pred, image_true)
    assert set(got) == {"mse", "mae", "psnr"}  # no R^2 for images
    mse = float(((image_pred - image_true) ** 2).mean())
    assert got["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
    assert set(computed(None, image_pred, image_true)) == {"mse", "mae"}


class Pixels(Regressor):
    def __init__(self, in_channels: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = nn.Conv2d(in_channels, 2, 3, padding=1)

    def forward(self, example: RegressionExample) -> RegressionPrediction:  # type: ignore[override]
        return RegressionPrediction(self.conv(example.image))


def test_a_regressor_on_images_gets_its_target_shape_from_the_data(tmp_path: Path) -> None:
    assert "target_shape" in init_parameters(Pixels)  # through **kwargs, from Regressor
    cli = LitforgeCLI(
        Pixels,
        Denoise,
        project="denoise",
        args=[
            f"--run.root={tmp_path}",
            "--run.loggers=[]",
            "--data.batch_size=8",
            "--data.val_size=4",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
        ],
        run=False,
    )
    assert cli.model.target_shape == (2, 6, 6)
    cli.trainer.fit(cli.model, cli.datamodule)
    logged = cli.trainer.callback_metrics
    assert {"val/denoise/mse", "val/denoise/psnr"} <= set(logged) and "val/denoise/r2" not in logged


# ---------------------------------------------------------------------- values for the model
def test_provided_values_and_what_a_missing_one_says(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", ["text", "label"], [["abc", "x"], ["a", "y"], ["", "x"]])

    class Lines(ArrayDataModule):
        def load(self) -> Arrays:
            return read_table(path, text="text", label="label")

    data = Lines()
    assert (data.vocab_size, data.sequence_length, data.num_classes) == (5, 3, 2)
    with pytest.raises(
        DataError,
        match=r"num_features reads the 'features' field, but the data's "
        r"fields are \['label', 'tokens', 'lengths'\]: remove num_features",
    ):
        data.num_features  # noqa: B018
    assert "vocab_size" in ArrayDataModule.provides and "out_channels" in ImageDataModule.provides


# ---------------------------------------------------------------------- learning-rate schedules
@pytest.mark.parametrize("total", [200, 1000])
def test_schedules_against_torch(total: int) -> None:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    one = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, total_steps=total, pct_start=0.25, cycle_momentum=False
    )
    for step in range(total):  # torch ends its phases a step earlier: within 4 / total
        assert abs(opt.param_groups[0]["lr"] - lr_factor("onecycle", step, total)) < 4 / total
        opt.step()
        if step < total - 1:
            one.step()
    opt = torch.optim.SGD([param], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    for step in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor("cosine", step, total))
        opt.step()
        cosine.step()
    assert lr_factor("constant", 5, 10) == 1.0


class Rates(pl.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("epochs", [2, 5])
def test_the_schedule_spans_the_run_whatever_max_epochs(epochs: int) -> None:
    from litforge.testing.regression import FeatureRows, MLPRegressor

    rates = Rates()
    model = MLPRegressor(4, lr_schedule="onecycle", lr_warmup=0.3)
    data = FeatureRows(n=160, batch_size=32)  # 5 steps an epoch
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[rates],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    total = 5 * epochs
    expected = [1e-3 * lr_factor("onecycle", s, total, 0.3) for s in range(total)]
    assert rates.rates == pytest.approx(expected, rel=1e-6)
    assert max(rates.rates) > 0.9e-3 and rates.rates[-1] < 0.05e-3  # up to the peak, then down


def test_a_per_step_period_far_shorter_than_the_run_is_warned_of() -> None:
    from litforge.testing.regression import FeatureRows, MLPRegressor

    model = MLPRegressor(
        4, lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    )
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match=re.escape("CosineAnnealingLR(T_max=3) steps every")):
        trainer.fit(model, FeatureRows(n=160, batch_size=32))
    with pytest.raises(ValueError, match=r"give lr_schedule .* or lr_scheduler, not both"):
        MLPRegressor(4, lr_schedule="cosine", lr_scheduler=lambda o: None)
