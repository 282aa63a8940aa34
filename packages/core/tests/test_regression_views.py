"""The Regression diagnostic judges dense targets per example: a real fit of the test kit's
denoising task (16 x 16 images in, the clean images out) checked against brute force on the
checkpoint the test scored; the drawing helpers checked on hand-made values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
import torch

from litforge import Regression, testing
from litforge.diagnostics import extremes
from litforge.diagnostics import regression as views
from litforge.testing import denoise

K = 8  # denoise.yaml


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two epochs of the test kit's denoising task: 40 test images in eval batches of 16."""
    return testing.train(
        denoise.main,
        tmp_path_factory.mktemp("dense"),
        "fit",
        "--trainer.max_epochs=2",
        "--data.n=200",
        "--data.eval_batch_size=16",
    )


def test_dense_targets_are_judged_per_example(run: Any) -> None:
    dm, model = run.datamodule, run.model  # the model holds the weights the test scored
    test = dm.splits["test"]
    model.eval()
    with torch.no_grad():
        pred = model(dm.make_example(torch.arange(len(test)), dict(test))).value
    per_example = ((pred - test["target"]) ** 2).flatten(1).mean(1)  # brute force
    drawn = next(c for c in run.trainer.callbacks if isinstance(c, Regression))
    last = drawn.last[("test", "blobs")]
    n = len(test)
    # one error per example, every example once (eval batches of 16 do not divide the set)
    assert last["index"].tolist() == list(range(n)) and n % 16 != 0
    assert torch.allclose(last["error"], per_example, atol=1e-6)
    order = sorted(range(n), key=lambda i: (-float(per_example[i]), i))
    assert last["worst"].tolist() == order[:K]
    residual = (pred - test["target"]).double().flatten()
    assert float(last["residual_std"]) == pytest.approx(float(residual.std()), rel=1e-6)
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["test/blobs/residual_std"] == pytest.approx(float(residual.std()), rel=1e-5)

    folder = run.run_dir / "media" / "test" / "blobs" / "regression"
    assert (folder / "worst").is_dir()
    step = results["step"]
    facts = json.loads((folder / f"{step}.json").read_text())
    assert facts["examples"] == n  # examples, not n x 64 pixels
    assert [w["index"] for w in facts["worst"]] == order[:K]
    assert facts["error"]["median"] == pytest.approx(float(per_example.median()), rel=1e-5)
    worst = json.loads((folder / "worst" / f"{step}.json").read_text())
    assert [w["index"] for w in worst["worst"]] == order[:K]
    assert (folder / "worst" / f"{step}.png").stat().st_size > 5000


def test_the_error_picture_counts_examples_not_pixels() -> None:
    error = torch.tensor([0.01, 0.02, 0.02, 0.05, 0.9, 2.0], dtype=torch.float64)
    fig = views.error_figure(error, error[-2:], bins=10, title="error per example")
    try:
        ax = fig.axes[0]
        bars = [p.get_height() for p in ax.patches]
        assert sum(bars) == len(error)
        assert ax.get_xscale() == "log"  # errors spread over 200x: a log axis
        assert not ax.collections  # no scatter of points
        red = [line for line in ax.lines if line.get_color() == "tab:red"]
        assert sorted(line.get_xdata()[0] for line in red if len(line.get_xdata())) == [0.9, 2.0]
    finally:
        plt.close(fig)


def test_worst_examples_drawn_as_input_prediction_target_error() -> None:
    true = torch.zeros(2, 1, 4, 4)
    true[:, :, :2] = 1.0  # top half bright
    pred = true.clone()
    pred[1, 0, 3, 3] = 3.0  # beyond the target's range: clipped to white
    example = denoise.NoisyImage(torch.arange(2), image=torch.randn(2, 1, 4, 4), target=true)
    panels, names = views.triptychs(None, example, pred, true, "target")  # type: ignore[arg-type]
    assert names == ["image", "predicted", "true", "error"]
    grow, gap = 12, 2  # 4 px grown to 48 px, a gap of a 24th
    side = 4 * grow
    assert panels.shape == (2, 3, side, 4 * side + 3 * gap) and panels.dtype == torch.uint8
    at = [i * (side + gap) for i in range(4)]
    predicted, target, error = (panels[:, :, ::grow, a : a + side : grow] for a in at[1:])
    assert torch.equal(target[:, 0], (true[:, 0] * 255).to(torch.uint8))
    assert int(predicted[1, 0, 3, 3]) == 255  # on the target's scale, clipped
    assert (error[0] == error[0, :, :1, :1]).all()  # no error: one colour
    assert not torch.equal(error[1, :, 3, 3], error[1, :, 0, 0])  # the wrong pixel stands out
    assert (panels[:, :, :, side : side + gap] == 255).all()  # white between the panels


@pytest.mark.parametrize(
    ("shape", "dense"),
    [
        ((5,), False),
        ((5, 3), False),
        ((5, 16), False),
        ((5, 17), True),
        ((5, 8, 8), True),
        ((5, 1, 8, 8), True),
    ],
)
def test_which_targets_are_judged_whole(shape: tuple[int, ...], dense: bool) -> None:
    assert Regression().dense(torch.zeros(shape)) is dense
    assert Regression(per_example=not dense).dense(torch.zeros(shape)) is (not dense)


def test_long_series_are_drawn_as_curves(tmp_path: Path) -> None:
    t = torch.linspace(0, 6, 50)
    true = torch.stack([t.sin(), t.cos()])
    fig = views.curves_figure(true + 0.1, true, ["#3 · error 0.01", "#7 · error 0.01"], "worst")
    try:
        lines = [a.lines for a in fig.axes if a.lines]
        assert len(lines) == 2 and all(len(ls) == 2 for ls in lines)
        assert torch.allclose(torch.tensor(lines[0][0].get_ydata()), true[0])
    finally:
        plt.close(fig)


@pytest.mark.parametrize("standardize", ["[features,target]", "[features]"])
def test_the_plot_is_in_the_targets_own_units_standardised_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standardize: str
) -> None:
    """The test kit's rows-of-features task: with ``standardize`` holding ``target`` or not,
    the Regression plot draws the targets in their own units (the Regressor gives a standardised
    target back in them): the numbers of the source, its axes and facts not 'standardised'. The
    Extremes tables name the fields still standardised (the features) in their title and facts."""
    from litforge.data import split_pool
    from litforge.testing import regression as rows

    drawn: list[tuple[tuple[str, str], ...]] = []
    original = views.figure

    def recording(*args: Any, **kwargs: Any) -> plt.Figure:  # the real figure, its axes noted
        fig = original(*args, **kwargs)
        drawn.append(tuple((ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes))
        return fig

    monkeypatch.setattr(views, "figure", recording)
    titles: list[str] = []
    emit_view = extremes.emit_view

    def noting(*args: Any, **kwargs: Any) -> Any:  # the real table, its title noted
        titles.append(kwargs["title"])
        return emit_view(*args, **kwargs)

    monkeypatch.setattr(extremes, "emit_view", noting)
    cli = testing.train(
        rows.main, tmp_path, "fit", "--trainer.max_epochs=1", f"--data.standardize={standardize}"
    )
    (facts_file,) = (Path(cli.run_dir) / "media" / "test").glob("*/regression/*.json")
    assert json.loads(facts_file.read_text())["standardised"] is False
    (diagnostic,) = [c for c in cli.trainer.callbacks if isinstance(c, Regression)]
    targets = next(v["true"] for (stage, _), v in diagnostic.last.items() if stage == "test")
    dm = cli.datamodule
    _, _, test = split_pool(dm.load(), dm.val_size, dm.test_size, None, dm.seed)
    assert test is not None
    assert torch.allclose(
        targets[:, 0], test["target"][diagnostic.last[("test", "rows")]["index"]], atol=1e-5
    )
    # The Extremes tables of the same run: their title and facts name the standardised fields.
    (table_facts,) = (Path(cli.run_dir) / "media" / "test").glob("*/extremes/highest_error/*.json")
    assert json.loads(table_facts.read_text())["standardised"] == ["features"]
    assert titles and all(t.count("standardised: features ") == 1 for t in titles), titles
    assert drawn and drawn[-1] == (
        ("true", "predicted"),
        ("residual (predicted - true)", "values"),
    )
