"""Real Trainer runs of the regression and sequence tasks of the test kit; every number the run
reports is checked against an independent computation on the same data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from litforge import Extremes, Regression, testing
from litforge.data import Arrays, split_pool
from litforge.diagnostics import media
from litforge.run.cli import LitforgeCLI
from litforge.run.loggers import finish_wandb, make_loggers
from litforge.run.runs import final_metrics
from litforge.tasks.contracts import ContractError
from litforge.testing import regression, sequence

EPOCHS = 2
K = 5  # Extremes k of both yaml files
TASKS = {"rows": regression.main, "sequences": sequence.main}


def fit(main: Any, tmp: Path, *args: str) -> LitforgeCLI:
    """A short fit, validated once (at its end): drawing the diagnostics is most of its time."""
    return testing.train(
        main,
        tmp,
        "fit",
        f"--trainer.max_epochs={EPOCHS}",
        f"--trainer.check_val_every_n_epoch={EPOCHS}",
        *args,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LitforgeCLI]:
    """One short fit of each task (fit, then test: results.json)."""
    return {name: fit(main, tmp_path_factory.mktemp(name)) for name, main in TASKS.items()}


def whole_set(
    cli: LitforgeCLI, split: str = "test", units: bool = True
) -> tuple[Any, Any, torch.Tensor]:
    """Brute force: the model on every example of a split at once, and each example's error;
    with ``units``, as the run reports them (a standardised target in its own units)."""
    dm, model = cli.datamodule, cli.model
    arrays = dm.splits[split]
    example = dm.make_example(torch.arange(len(arrays)), dict(arrays))
    model.eval()
    with torch.no_grad():
        prediction = model(example)
        if units:
            example, prediction = model.in_user_units(example), model.in_user_units(prediction)
        error = model.example_error(example, prediction)
    return example, prediction, error


def ranked(errors: torch.Tensor, highest: bool) -> list[int]:
    """Every index, the highest (or lowest) error first, ties by ascending index."""
    values = errors.tolist()
    return sorted(range(len(values)), key=lambda i: (-values[i] if highest else values[i], i))


def assert_top(shown: list[int], errors: torch.Tensor, k: int, highest: bool) -> None:
    """``shown`` is the brute-force top k. Where two errors lie within float rounding of each
    other (batched against whole-set evaluation), their order is not asserted."""
    order = ranked(errors, highest)
    expected = order[:k]
    assert len(shown) == len(set(shown)) == k
    assert torch.allclose(errors[shown], errors[expected], atol=1e-5, rtol=0)
    near_tie = any(
        abs(float(errors[order[i]] - errors[order[i + 1]])) < 1e-6
        for i in range(min(k, len(order) - 1))
    )
    if not near_tie:
        assert shown == expected, (shown, expected)


def results(cli: LitforgeCLI) -> dict[str, float]:
    """The test metrics of results.json (its other keys say which checkpoint was tested)."""
    return final_metrics(json.loads((cli.run_dir / "results.json").read_text()))


def test_the_fits_tested_their_final_weights(runs: dict[str, LitforgeCLI]) -> None:
    """Validated once, at the end: the best checkpoint is the last one, so the model in memory,
    last.ckpt and what results.json scored are the same weights."""
    for cli in runs.values():
        assert cli.trainer.state.finished
        scored = json.loads((cli.run_dir / "results.json").read_text())
        assert scored["epoch"] == EPOCHS - 1 and scored["step"] == cli.trainer.global_step
        last = torch.load(cli.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["global_step"] == cli.trainer.global_step
        for name, value in cli.model.state_dict().items():
            assert torch.equal(last["state_dict"][name], value), name


def callback(cli: LitforgeCLI, cls: type) -> Any:
    return next(c for c in cli.trainer.callbacks if isinstance(c, cls))  # type: ignore[attr-defined]


def letters_of(tokens: torch.Tensor) -> str:
    return " ".join(chr(ord("a") + t) for t in tokens.tolist())


# ---------------------------------------------------------------------- results.json
def test_regression_results_match_recomputation(runs: dict[str, LitforgeCLI]) -> None:
    cli = runs["rows"]
    got = results(cli)
    assert {
        "test/rows/mse",
        "test/rows/mae",
        "test/rows/r2",
        "test/rows/loss/total",
        "test/rows/loss/mse",
        "test/rows/residual_std",
    } <= got.keys(), got.keys()
    # the target was standardised for training (regression.yaml): the metrics are in its own
    # units, from the CSV's numbers (the same seeded split of the pool as it was read) and the
    # model's output times the training targets' std plus their mean; the loss stays in the
    # standardised units the model learned in
    example, prediction, _ = whole_set(cli, units=False)
    dm = cli.datamodule
    train, _, test = split_pool(dm.load(), dm.val_size, dm.test_size, None, dm.seed)
    assert test is not None and "target" in dm.standardize
    mean, std = train["target"].double().mean(), train["target"].double().std()
    assert float(std) > 1.2  # standard deviations are not the target's units
    value, target = prediction.value.double() * std + mean, test["target"].double()
    assert value.shape == target.shape == (len(dm.splits["test"]),)
    residual = value - target
    mse = float((residual**2).mean())
    r2 = 1 - float((residual**2).sum() / ((target - target.mean()) ** 2).sum())
    assert got["test/rows/mse"] == pytest.approx(mse, rel=1e-5)
    loss = float(((prediction.value - example.target).double() ** 2).mean())
    assert got["test/rows/loss/total"] == pytest.approx(loss, abs=1e-5)
    assert got["test/rows/loss/total"] == pytest.approx(mse / float(std) ** 2, rel=1e-4)
    assert got["test/rows/mae"] == pytest.approx(float(residual.abs().mean()), rel=1e-5)
    assert got["test/rows/r2"] == pytest.approx(r2, abs=1e-5)
    assert got["test/rows/residual_std"] == pytest.approx(float(residual.std()), rel=1e-5)
    assert r2 > 0.5  # it learned in two epochs


def test_sequence_results_match_recomputation(runs: dict[str, LitforgeCLI]) -> None:
    cli = runs["sequences"]
    got = results(cli)
    assert {
        "test/sequences/accuracy",
        "test/sequences/accuracy_macro",
        "test/sequences/ece",
        "test/sequences/loss/total",
        "test/sequences/loss/cross_entropy",
    } <= got.keys(), got.keys()
    example, prediction, _ = whole_set(cli)
    label = example.label
    logp = prediction.logits.double().log_softmax(-1)
    ce = float(-logp.gather(1, label[:, None]).mean())
    pred = prediction.logits.argmax(-1)
    recall = [float((pred[label == c] == c).double().mean()) for c in range(3)]
    # ECE by hand: 10 equal-width bins of the top-class probability
    confidence = logp.exp().max(-1).values.tolist()
    correct = (pred == label).tolist()
    ece = 0.0
    for b in range(10):
        members = [i for i, p in enumerate(confidence) if min(int(p * 10), 9) == b]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            conf = sum(confidence[i] for i in members) / len(members)
            ece += len(members) / len(label) * abs(acc - conf)
    assert got["test/sequences/loss/total"] == pytest.approx(ce, abs=1e-5)
    assert got["test/sequences/accuracy"] == pytest.approx(
        float((pred == label).double().mean()), abs=1e-6
    )
    assert got["test/sequences/accuracy_macro"] == pytest.approx(sum(recall) / 3, abs=1e-6)
    assert got["test/sequences/ece"] == pytest.approx(ece, abs=1e-5)
    assert got["test/sequences/accuracy"] > 0.6  # chance is 1/3


@pytest.mark.parametrize("task", list(TASKS))
def test_predict_and_test_from_the_last_checkpoint(
    runs: dict[str, LitforgeCLI], task: str, tmp_path: Path
) -> None:
    cli = runs[task]
    ckpt = cli.run_dir / "checkpoints" / "last.ckpt"
    predicted = testing.train(TASKS[task], tmp_path, "predict", f"--ckpt_path={ckpt}")
    saved = torch.load(predicted.run_dir / "predictions.pt", weights_only=True)
    _, prediction, _ = whole_set(cli)
    expected = prediction.tensors()
    assert saved.keys() == expected.keys()
    for name, value in expected.items():
        if value.is_floating_point():
            assert torch.allclose(saved[name], value, atol=1e-5, rtol=0), name
        else:
            assert torch.equal(saved[name], value), name
    tested = testing.train(TASKS[task], tmp_path, "test", f"--ckpt_path={ckpt}")
    again, first = results(tested), results(cli)
    assert again.keys() == first.keys()
    for key, value in first.items():
        assert again[key] == pytest.approx(value, abs=1e-6), key


# ---------------------------------------------------------------------- diagnostics
@pytest.mark.parametrize("task", list(TASKS))
def test_extremes_show_the_brute_force_extremes(runs: dict[str, LitforgeCLI], task: str) -> None:
    cli = runs[task]
    example, prediction, errors = whole_set(cli)
    extremes = callback(cli, Extremes)
    folder = cli.run_dir / "media" / "test" / task / "extremes"
    for side, highest in (("highest_error", True), ("lowest_error", False)):
        shown = extremes.last_selection[("test", task, side)]
        index = shown["index"].tolist()
        assert_top(index, errors, K, highest)
        assert torch.allclose(shown["error"], errors[index], atol=1e-5, rtol=0)
        # the table drawn: those rows, in that order
        view = shown["view"]
        assert isinstance(view, media.Table)
        assert view.columns["index"] == index
        assert torch.allclose(torch.tensor(view.columns["error"]), errors[index], atol=1e-5)
        png = folder / side / f"{cli.trainer.global_step}.png"
        assert png.is_file() and png.stat().st_size > 1000
        with png.with_suffix(".csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["index"]) for r in rows] == index
        assert torch.allclose(
            torch.tensor([float(r["error"]) for r in rows]), errors[index], atol=1e-5
        )
        assert json.loads(png.with_suffix(".json").read_text())["index"] == index
        if task == "sequences":  # the columns of sequence.yaml, tokens decoded into text
            assert list(view.columns) == [
                "error",
                "index",
                "tokens",
                "label",
                "pred.pred",
                "pred.entropy",
            ]
            text = [letters_of(example.tokens[i]) for i in index]
            assert view.columns["tokens"] == text
            assert [r["tokens"] for r in rows] == text
            assert [r["label"] for r in rows] == ["abc"[int(example.label[i])] for i in index]
            assert [r["pred.pred"] for r in rows] == ["abc"[int(prediction.pred[i])] for i in index]
        else:
            assert list(view.columns) == ["error", "index", "features", "target", "pred.value"]
            assert view.columns["target"] == [round(float(example.target[i]), 4) for i in index]


def test_regression_callback_marks_the_brute_force_worst(runs: dict[str, LitforgeCLI]) -> None:
    cli = runs["rows"]
    example, prediction, errors = whole_set(cli)
    diagnostic = callback(cli, Regression)
    drawn = diagnostic.last[("test", "rows")]
    assert drawn["index"].tolist() == list(range(len(errors)))  # every row once, in order
    assert torch.allclose(drawn["pred"][:, 0], prediction.value, atol=1e-5)
    assert torch.equal(drawn["true"][:, 0], example.target)
    assert_top(drawn["worst"].tolist(), errors, diagnostic.k, highest=True)
    png = cli.run_dir / "media" / "test" / "rows" / "regression" / f"{cli.trainer.global_step}.png"
    assert png.is_file() and png.stat().st_size > 1000


# ---------------------------------------------------------------------- data
def test_split_pool_stratified_exact_and_seeded() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 17 + [3] * 3)
    pool = Arrays(id=torch.arange(100), label=labels[torch.randperm(100)])
    train, val, test = split_pool(pool, val_size=0.2, test_size=0.15, stratify="label", seed=3)
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (65, 20, 15)
    ids = torch.cat([train["id"], val["id"], test["id"]])
    assert sorted(ids.tolist()) == list(range(100))  # disjoint, and nothing lost
    for part in (train, val, test):
        for c, n_c in enumerate((50, 30, 17, 3)):
            share = n_c * len(part) / 100
            assert abs(int((part["label"] == c).sum()) - share) <= 1, (c, len(part))
        assert torch.equal(part["label"], pool["label"][part["id"]])  # rows stay together
    again = split_pool(pool, val_size=0.2, test_size=0.15, stratify="label", seed=3)
    other = split_pool(pool, val_size=0.2, test_size=0.15, stratify="label", seed=4)
    assert torch.equal(again[2]["id"], test["id"]) and torch.equal(again[1]["id"], val["id"])
    assert not torch.equal(other[2]["id"], test["id"])
    counted = split_pool(pool, val_size=7, test_size=11, seed=0)
    assert [len(p) for p in counted if p is not None] == [82, 7, 11]
    assert split_pool(pool, 0, 10)[1] is None
    with pytest.raises(ValueError, match="no training items"):
        split_pool(pool, 0.5, 0.5)


def test_standardisation_uses_training_statistics_only() -> None:
    dm = regression.FeatureRows(
        n=200, val_size=0.1, test_size=0.25, standardize=["features", "target"]
    )
    splits = dm.splits
    raw_train, _, raw_test = split_pool(regression.feature_rows(200), 0.1, 0.25, None, 0)
    assert raw_test is not None
    for field in ("features", "target"):
        mean, std = raw_train[field].mean(0), raw_train[field].std(0)
        assert torch.allclose(dm.stats[field][0], mean) and torch.allclose(dm.stats[field][1], std)
        train = splits["train"][field]
        assert torch.allclose(train.mean(0), torch.zeros_like(mean), atol=1e-5)
        assert torch.allclose(train.std(0), torch.ones_like(std), atol=1e-5)
        expected = (raw_test[field] - mean) / std  # the test part, with the train statistics
        assert torch.allclose(splits["test"][field], expected, atol=1e-6)
        own = (raw_test[field] - raw_test[field].mean(0)) / raw_test[field].std(0)
        assert not torch.allclose(splits["test"][field], own, atol=1e-3)
    assert dm.num_features == 4 and dm.class_names is None


@pytest.mark.parametrize("length", [10, 4])
def test_token_sequences_have_one_most_frequent_class_token(length: int) -> None:
    data = sequence.token_sequences(200, length=length, vocab_size=12, seed=5)
    tokens, label = data["tokens"], data["label"]
    assert tokens.dtype == torch.int64 and tokens.shape == (200, length)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 12
    counts = torch.stack([(tokens == c).sum(1) for c in range(3)], dim=1)
    top = counts.max(1)
    assert torch.equal(top.indices, label)
    assert ((counts == top.values[:, None]).sum(1) == 1).all()  # no ties
    assert data.class_names == ("a", "b", "c")
    assert torch.equal(data["tokens"], sequence.token_sequences(200, length, 12, 5)["tokens"])


# ---------------------------------------------------------------------- contracts and failures
def test_classification_callback_on_regression_stops_before_the_first_step(
    tmp_path: Path,
) -> None:
    with pytest.raises(ContractError) as caught:
        fit(regression.main, tmp_path, "--trainer.callbacks+=litforge.Uncertainty")
    message = str(caught.value)
    for word in ("Uncertainty", "RegressionPrediction", "RegressionExample", "probs", "label"):
        assert word in message, message
    (run_dir,) = (tmp_path / "rows").iterdir()
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    assert not (run_dir / "results.json").exists()
    metrics = run_dir / "csv" / "metrics.csv"
    assert not metrics.exists() or "train/" not in metrics.read_text()


def test_a_failing_diagnostic_is_a_warning_and_results_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Extremes, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom in finish")

    monkeypatch.setattr(Extremes, "finish", boom)
    with pytest.warns(UserWarning, match=r"Extremes failed in finish.*boom in finish"):
        cli = testing.train(regression.main, tmp_path, "fit", "--trainer.max_epochs=1")
    assert cli.trainer.state.finished
    got = results(cli)
    assert {"test/rows/mse", "test/rows/r2", "test/rows/residual_std"} <= got.keys()
    files = testing.media_files(cli.run_dir)
    assert "test/rows/regression" in files  # the other diagnostic went on
    assert not any("extremes" in key for key in files)


def test_a_fit_without_validation_set_warns_nothing(tmp_path: Path) -> None:
    """val_size=0: the trainer is told there is no validation (Lightning otherwise warns that
    an empty loader has zero length), and the fit still tests and writes its results."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = testing.train(
            regression.main, tmp_path, "fit", "--trainer.max_epochs=1", "--data.val_size=0"
        )
    assert cli.datamodule.splits["val"] is None
    assert cli.trainer.limit_val_batches == 0
    # (LightningCLI's notice about args given from Python comes from this test's way of calling)
    user = [
        w
        for w in caught
        if issubclass(w.category, UserWarning) and "args parameter" not in str(w.message)
    ]
    assert not user, [str(w.message) for w in user]
    assert "test/rows/mse" in results(cli)


# ---------------------------------------------------------------------- media
@pytest.fixture
def trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = make_loggers(["wandb", "tensorboard"], tmp_path, "media-test")
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        logger=loggers,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    yield trainer
    finish_wandb(trainer.loggers)


def test_emit_images_one_and_four_channels_and_table(trainer: Any, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for channels in (1, 4):
        images = torch.randint(0, 256, (3, channels, 6, 5), dtype=torch.uint8, generator=g)
        key = f"check/c{channels}"
        png = media.emit_images(trainer, key, images, [f"#{i}" for i in range(3)])
        assert png == tmp_path / "media" / "check" / f"c{channels}" / "0.png"
        assert png.is_file() and png.stat().st_size > 500
    floats = torch.randn(2, 4, 6, 5, generator=g)  # float images are min-max scaled
    assert media.emit_images(trainer, "check/float4", floats, ["x", "y"]) is not None
    with pytest.raises(ValueError, match=r"\(2, 2, 6, 5\)"):
        media.emit_images(trainer, "check/c2", torch.zeros(2, 2, 6, 5), ["x", "y"])

    table = media.Table({"index": [3, 1], "text": ["a b", "c, d"], "error": [0.25, 1.5e-7]})
    png = media.emit_table(trainer, "check/table", table)
    assert png is not None and png.is_file()
    with png.with_suffix(".csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(table.columns)
    assert rows[1:] == [[str(table.columns[n][i]) for n in table.columns] for i in range(2)]
    with pytest.raises(ValueError, match="differ in length"):
        media.emit_table(trainer, "check/bad", media.Table({"a": [1, 2], "b": [1]}))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert {"check/c1", "check/c4", "check/float4"} <= set(acc.Tags()["images"])
    finish_wandb(trainer.loggers)
    (wandb_run,) = (tmp_path / "wandb").glob("offline-run-*")
    files = wandb_run / "files" / "media"
    logged = {p.name.split("_")[0] for p in (files / "images" / "check").glob("*.png")}
    assert {"c1", "c4", "float4"} <= logged, logged
    (logged_table,) = (files / "table" / "check").glob("table_*.table.json")
    assert json.loads(logged_table.read_text())["data"] == [
        [table.columns[n][i] for n in table.columns] for i in range(2)
    ]
