"""``line_plots``: line plots and curves as the ``Images`` a data module's ``show`` returns. The
lines are where the pixels say (a rising line rises, each name keeps its colour), and what a
caption says lands in the JSON beside the picture: through ``emit_view``, and through Extremes in
a real fit whose data module shows each row as lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from litforge import ArrayDataModule, Arrays, Extremes, Images, line_plots
from litforge.diagnostics.media import emit_view, fmt
from litforge.tasks.structs import RegressionExample, RegressionPrediction
from litforge.testing.regression import FeatureRows, MLPRegressor

BLUE, ORANGE, GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)  # tab10's first colours


def where(pixels: torch.Tensor, colour: tuple[int, int, int]) -> np.ndarray:
    """(row, column) of the pixels of one colour (give or take antialiasing) in an RGB image."""
    rgb = pixels.permute(1, 2, 0).int().numpy()
    return np.argwhere(np.abs(rgb - np.array(colour)).sum(-1) < 30)


def test_each_line_is_drawn_where_its_values_are() -> None:
    up, down = np.arange(10.0), np.arange(10.0)[::-1].copy()
    shown = line_plots(
        [{"series": up}, {"series": torch.from_numpy(down)}, {"a": (np.arange(5), up[:5]), "b": down}],
        captions=["rising", "falling", "two lines"],
        size=(240, 160),
    )  # fmt: skip
    assert isinstance(shown, Images) and shown.pixels.dtype == torch.uint8
    assert tuple(shown.pixels.shape) == (3, 3, 160, 240) and shown.facts is None
    rising, falling = where(shown.pixels[0], BLUE), where(shown.pixels[1], BLUE)
    assert len(rising) > 100 and len(falling) > 100
    # rows count down the picture: a rising line's rows fall as its columns grow
    assert np.corrcoef(rising[:, 1], rising[:, 0])[0, 1] < -0.9
    assert np.corrcoef(falling[:, 1], falling[:, 0])[0, 1] > 0.9
    # each name keeps one colour over the plots (series, a, b: blue, orange, green), each line
    # where its values are
    a, b = where(shown.pixels[2], ORANGE), where(shown.pixels[2], GREEN)
    assert len(a) > 50 and np.corrcoef(a[:, 1], a[:, 0])[0, 1] < -0.9
    assert len(b) > 100 and np.corrcoef(b[:, 1], b[:, 0])[0, 1] > 0.9
    assert a[:, 1].max() < b[:, 1].max() - 50  # a spans x 0..4, b 0..9: a ends left of b
    assert len(where(shown.pixels[2], BLUE)) < 5
    # the same plot draws the same pixels; a restyled line another colour
    again = line_plots([{"series": up}], size=(240, 160))
    assert torch.equal(again.pixels[0], shown.pixels[0])
    black = line_plots([{"series": up}], size=(240, 160), styles={"series": {"color": "k"}})
    assert len(where(black.pixels[0], BLUE)) < 5 and len(where(black.pixels[0], (0, 0, 0))) > 100


@pytest.mark.slow
def test_times_on_the_x_axis() -> None:
    """Times as datetime64, as ISO text or as datetime objects (pandas' timestamps are): the
    same picture."""
    hours = np.arange("2024-03-05T10", "2024-03-06T10", dtype="datetime64[h]")
    load = np.sin(np.arange(24) / 4)
    shown = line_plots(
        [{"load": (hours, load)}, {"load": (hours.astype(str), load)},
         {"load": (hours.astype(object), load)}],
        size=(240, 160),
    )  # fmt: skip
    assert torch.equal(shown.pixels[0], shown.pixels[1])
    assert torch.equal(shown.pixels[0], shown.pixels[2])
    assert len(where(shown.pixels[0], BLUE)) > 100


def test_bad_lines_and_counts_are_named() -> None:
    with pytest.raises(ValueError, match=r"plot 0, line 'x'"):
        line_plots([{"x": (np.arange(3), np.arange(4))}])
    with pytest.raises(ValueError, match="2 plots but 1 captions"):
        line_plots([{"x": [1, 2]}, {"x": [2, 1]}], captions=["one"])


@pytest.mark.slow
def test_the_json_beside_the_picture_holds_each_caption_and_its_facts(tmp_path: Path) -> None:
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    view = line_plots(
        [{"load": [1, 3, 2]}, {"load": [2, 2, 5]}],
        captions=["from 2024-03-05 10:00\nMAE 0.5", "from 2024-03-06 10:00\nMAE 1.2"],
        facts=[{"start": "2024-03-05 10:00", "mae": 0.5}, {"start": "2024-03-06 10:00", "mae": 1.2}],
    )  # fmt: skip
    path = emit_view(trainer, "val/load/windows", view, step=7, facts={"model": "m"})
    assert path == tmp_path / "media" / "val" / "load" / "windows" / "7.png"
    facts = json.loads(path.with_suffix(".json").read_text())
    assert facts["model"] == "m"
    assert facts["pictures"] == [
        {"caption": "from 2024-03-05 10:00\nMAE 0.5", "start": "2024-03-05 10:00", "mae": 0.5},
        {"caption": "from 2024-03-06 10:00\nMAE 1.2", "start": "2024-03-06 10:00", "mae": 1.2},
    ]


class RowsAsLines(FeatureRows):
    """Each row drawn as a line of its features, with its target and prediction as flat lines;
    the caption's numbers also given as facts."""

    def show(self, example: RegressionExample, prediction: RegressionPrediction) -> Images:  # type: ignore[override]
        target, value = example.target.tolist(), prediction.value.detach().tolist()
        ends = [0, self.n_features - 1]
        return line_plots(
            [
                {"features": x, "target": (ends, [t, t]), "predicted": (ends, [v, v])}
                for x, t, v in zip(example.features, target, value)
            ],
            captions=[f"target {fmt(t)}\npredicted {fmt(v)}" for t, v in zip(target, value)],
            facts=[
                {"target": t, "predicted": v, "feature_mean": float(x.mean())}
                for x, t, v in zip(example.features, target, value)
            ],
            styles={"target": {"color": "k"}, "predicted": {"linestyle": "--"}},
        )


@pytest.mark.slow
def test_extremes_of_a_fit_put_each_caption_and_its_facts_in_the_json(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = RowsAsLines(n=64, test_size=0.25, batch_size=16)
    model = MLPRegressor(num_features=4, hidden=8)
    extremes = Extremes(k=3, stages=["test"])
    trainer = pl.Trainer(
        max_epochs=1, callbacks=[extremes], default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    test = data.splits["test"]
    model.eval()
    with torch.no_grad():
        predicted = model(data.make_example(torch.arange(len(test)), dict(test))).value
    folder = tmp_path / "media" / "test" / "rows" / "extremes" / "highest_error"
    facts = json.loads(next(folder.glob("*.json")).read_text())
    shown = extremes.last_selection[("test", "rows", "highest_error")]
    assert len(facts["examples"]) == 3 and "pictures" not in facts  # once, in each record
    for record, caption in zip(facts["examples"], shown["view"].captions):
        i = record["index"]
        # the struct's own facts stay (the target as the data module describes it); the
        # others are added
        assert record["target"] == pytest.approx(float(test["target"][i]), abs=1e-3)
        assert record["predicted"] == pytest.approx(float(predicted[i]), abs=1e-5)
        mean = float(test["features"][i].mean())
        assert record["feature_mean"] == pytest.approx(mean, abs=1e-6)
        assert record["caption"] == caption
        assert caption.startswith(f"target {fmt(record['target'])}\npredicted ")
        assert f"error {fmt(record['error'])}" in caption
    assert shown["view"].pixels.shape[1:] == (3, 200, 320)


class Recordings(ArrayDataModule):
    """Two channels over 20 positions per example (channel 0 rises, channel 1 is flat at the
    example's target): a kind no page names, with no ``show`` of its own."""

    name = "recordings"
    example_type = RegressionExample

    def load(self) -> Arrays:
        n = 12
        target = torch.arange(n, dtype=torch.float32)
        ramp = torch.linspace(0, 1, 20).expand(n, 20)
        flat = target[:, None].expand(n, 20) / n
        return Arrays(features=torch.stack([ramp, flat], 1), target=target)


def test_a_float_field_of_channels_over_positions_is_drawn_as_lines() -> None:
    """The default ``show`` of an N x C x L float field: a line plot per example, a line per
    channel where its values are, captioned (and in the facts) with the other fields, not a
    table of the first numbers."""
    data = Recordings(val_size=0.25, test_size=0.25, batch_size=4)
    data.setup("fit")
    example = data.sample("test", 3)
    assert data.signal_field(example) == "features"
    shown = data.show(example, RegressionPrediction(value=example.target + 0.5))
    assert isinstance(shown, Images) and tuple(shown.pixels.shape[:2]) == (3, 3)
    rising = where(shown.pixels[0], BLUE)  # channel 0: rises from left to right
    left, right = rising[rising[:, 1] < 120], rising[rising[:, 1] > 200]
    assert len(left) and len(right) and left[:, 0].mean() > right[:, 0].mean()
    rgb = shown.pixels[1].permute(1, 2, 0).int()
    orange = (rgb[..., 0] > 200) & (rgb[..., 1] > 100) & (rgb[..., 1] < 190) & (rgb[..., 2] < 110)
    assert int(orange.sum()) > 200  # channel 1 (flat, across the plot): the second colour
    for i, (caption, facts) in enumerate(zip(shown.captions, shown.facts or [])):
        target = float(example.target[i])
        assert caption.startswith(f"#{int(example.index[i])}\n")
        assert f"target {data.describe('target', example.target[i])}" in caption
        assert facts["target"] == pytest.approx(target, abs=1e-3)
        assert facts["pred.value"] == pytest.approx(target + 0.5, abs=1e-3)
