"""Pictures people can read, measured on the rendered figures (matplotlib's Agg renderer): every
caption and title inside the figure, none over an image or another caption, every image drawn
at a readable size; numbers written for people; confusion matrices whose numbers fit their cells,
and a list of the largest confusions beyond 20 classes."""

from __future__ import annotations

import itertools
import random
from typing import Any

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.transforms import Bbox

from litforge.diagnostics import confusion, media
from litforge.diagnostics.extremes import with_error
from litforge.diagnostics.media import GridLayout, Images, Table, fmt, fmt_prob, grid_figure

LAYOUT = GridLayout()
CAPTION_LINES = [
    "automobile -> airplane",  # a class pair
    "p(true)=0.03",
    "#4711 · error 3.5",
]


def captions(k: int, lines: int, long: bool = False) -> list[str]:
    out = []
    for i in range(k):
        parts = CAPTION_LINES[:lines]
        if long and i % 3 == 0:  # an unbroken name longer than any cell
            parts = ["a_very_long_class_name_without_spaces_at_all -> another_long_one", *parts[1:]]
        out.append("\n".join(parts).replace("4711", str(4711 + i)))
    return out


def measure(fig: Any) -> tuple[Bbox, list[Bbox], list[Bbox]]:
    renderer = fig.canvas.get_renderer()
    return (
        fig.bbox,
        [ax.get_window_extent(renderer) for ax in fig.axes],
        [t.get_window_extent(renderer) for t in fig.texts],
    )


def overlap(a: Bbox, b: Bbox) -> bool:
    """Strictly overlapping areas (touching edges is not overlapping)."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5


def inside(inner: Bbox, outer: Bbox) -> bool:
    return (
        inner.x0 >= outer.x0 - 0.5
        and inner.y0 >= outer.y0 - 0.5
        and inner.x1 <= outer.x1 + 0.5
        and inner.y1 <= outer.y1 + 0.5
    )


def assert_readable(k: int, lines: int, size: int, wide: bool, long: bool = False) -> None:
    width = 3 * size + 2 if wide else size  # wide: image | true | predicted, side by side
    images = torch.randint(0, 256, (k, 3, size, width), dtype=torch.uint8)
    title = "highest error: 8 examples · data · test of checkpoints/best-epoch003-step112.ckpt (epoch 3, step 112)"
    fig = grid_figure(images, captions(k, lines, long), title)
    try:
        box, image_boxes, text_boxes = measure(fig)
        assert len(image_boxes) == k and len(text_boxes) == k + 1
        for t in text_boxes:
            assert inside(t, box), (t, box)  # nothing cut off at any edge of the figure
            for i in image_boxes:
                assert not overlap(t, i), (t, i)  # no caption over any picture
        for a, b in itertools.combinations(text_boxes, 2):
            assert not overlap(a, b), (a, b)  # no caption over another
        for i in image_boxes:
            assert inside(i, box)
            # readable: at least min_inches on the shorter side, whatever the pixel count
            assert min(i.width, i.height) >= LAYOUT.min_inches * media.DPI - 1, (size, i)
        for a, b in itertools.combinations(image_boxes, 2):
            assert not overlap(a, b)
        # each caption above its own image, centred on it
        for t, i in zip(text_boxes[:k], image_boxes):
            assert t.y0 >= i.y1 - 0.5 and abs((t.x0 + t.x1) / 2 - (i.x0 + i.x1) / 2) < 1
    finally:
        plt.close(fig)


# (k, caption lines, pixels, wide): the ends of each range, each end in more than one company
FAST = [
    (1, 1, 8, False),
    (1, 3, 256, True),
    (9, 3, 8, True),
    (9, 1, 256, False),
    (32, 3, 8, False),
    (32, 1, 256, True),
    (2, 2, 16, False),
    (7, 2, 64, True),
    (16, 3, 100, False),
]


@pytest.mark.parametrize(("k", "lines", "size", "wide"), FAST)
def test_captions_are_inside_the_figure_and_off_the_images(
    k: int, lines: int, size: int, wide: bool
) -> None:
    assert_readable(k, lines, size, wide)


@pytest.mark.parametrize("k", [1, 5, 12])
def test_long_unbroken_captions_are_wrapped_within_their_cell(k: int) -> None:
    assert_readable(k, 3, 16, False, long=True)


@pytest.mark.slow
def test_captions_readable_over_the_whole_range() -> None:
    """1 to 3 caption lines, k from 1 to 32, images from 8 to 256 px, square and wide."""
    cases = list(
        itertools.product(range(1, 33), [1, 2, 3], [8, 16, 32, 64, 128, 256], [False, True])
    )
    for case in random.Random(0).sample(cases, 120):
        assert_readable(*case)


def test_extremes_captions_name_the_example_and_its_error() -> None:
    view = Images(
        torch.zeros(3, 3, 8, 8, dtype=torch.uint8), ["cat -> dog\np(true)=0.03", "#5", ""]
    )
    records = [
        {"index": 4, "error": 3.5, "id": "img_0042.png"},
        {"index": 5, "error": 1e-9},
        {"index": 6, "error": -0.0},
    ]
    shown = with_error(view, torch.tensor([3.5, 1e-9, -0.0]), records=records)
    assert isinstance(shown, Images)
    assert shown.captions == [
        "cat -> dog\np(true)=0.03\nid img_0042.png · error 3.5",  # the id when the data has one
        "#5\nerror 1e-9",  # the index not twice
        "#6 · error 0",  # never -0
    ]


def test_numbers_for_people() -> None:
    assert fmt(-0.0) == "0" and fmt(-1e-12, 3) == "-1e-12" and fmt(-0.00001234) == "-1.23e-5"
    assert fmt(3.14159) == "3.14" and fmt(1234567.0) == "1.23e6" and fmt(12) == "12"
    assert fmt(torch.tensor(0.5)) == "0.5" and fmt("cat") == "cat" and fmt(True) == "True"
    assert fmt(float("nan")) == "nan"
    assert [fmt_prob(p) for p in (0.5, 0.031, 0.0011, 0.9996, 0.99999, 1.0, 0.0)] == [
        "0.50",
        "0.03",
        "0.0011",
        "0.9996",
        ">0.9999",
        ">0.9999",
        "0",
    ]
    table = Table({"error": [-0.0, 1.5e-7, 0.123456], "p": ["0.999, 0.00114", "a", "b"]})
    fig = media.table_figure(table)
    try:
        cells = [c.get_text().get_text() for c in fig.axes[0].tables[0].get_celld().values()]
        assert "-0" not in cells and "0" in cells and "1.5e-7" in cells and "0.1235" in cells
        assert not any("[2]" in c for c in cells)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("n", [2, 4, 10, 20])
def test_confusion_matrix_numbers_fit_their_cells(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    matrix = torch.randint(0, 40, (n, n), generator=g) + torch.diag(
        torch.randint(500, 3000, (n,), generator=g)
    )
    names = [
        f"class_{i}" if n > 10 else ["airplane", "automobile"][i % 2] + str(i) for i in range(n)
    ]
    fig = confusion.figure(matrix, names, "confusion matrix · data · test")
    try:
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        cell = ax.get_window_extent(renderer).width / n
        cell_texts = [t for t in ax.texts if t.get_position()[0] < n - 0.5]
        assert len(cell_texts) == int((matrix > 0).sum())
        for t in cell_texts:
            j, i = t.get_position()
            box = t.get_window_extent(renderer)
            assert box.width < cell and box.height < cell, (t.get_text(), box, cell)
            assert t.get_fontsize() >= 6.5
            assert t.get_text().split("\n")[0] == str(int(matrix[int(i), int(j)]))
        for t in [*ax.texts, *fig.texts, *ax.get_xticklabels(), *ax.get_yticklabels()]:
            assert inside(t.get_window_extent(renderer), fig.bbox), t.get_text()
    finally:
        plt.close(fig)


def test_many_classes_list_the_largest_confusions() -> None:
    n = 30
    g = torch.Generator().manual_seed(0)
    matrix = torch.randint(0, 5, (n, n), generator=g) + torch.diag(torch.full((n,), 100))
    matrix[3, 7], matrix[12, 1], matrix[0, 29] = 60, 45, 45
    names = [f"c{i}" for i in range(n)]
    table = confusion.largest_confusions(matrix, names, top=5)
    off = [(int(matrix[i, j]), i, j) for i in range(n) for j in range(n) if i != j]
    expected = sorted(off, key=lambda t: (-t[0], t[1], t[2]))[:5]
    assert table.columns["true"] == [names[i] for _, i, _ in expected]
    assert table.columns["predicted"] == [names[j] for _, _, j in expected]
    assert table.columns["count"] == [c for c, _, _ in expected]
    assert table.columns["true"][:3] == ["c3", "c0", "c12"] and table.columns["count"][0] == 60
    share = 60 / int(matrix[3].sum())
    assert table.columns["share of true"][0] == f"{100 * share:.0f}%"
    assert confusion.percent(0.001) == "<1%" and confusion.percent(0.999) == ">99%"


def test_table_cells_of_a_data_module_read_as_numbers() -> None:
    from litforge import ArrayDataModule, Arrays

    class Rows(ArrayDataModule):
        def load(self) -> Arrays:
            return Arrays(features=torch.zeros(4, 2), target=torch.zeros(4))

    rows = Rows()
    assert rows.describe("pred.probs", torch.tensor([0.999, 0.00114])) == "0.999, 0.00114"
    assert rows.describe("target", torch.tensor(-0.00001)) == 0.0
    assert str(rows.describe("target", torch.tensor(-0.00001))) == "0.0"  # not -0.0
    assert rows.describe("x", torch.arange(64.0)) == "0, 1, 2, 3, 4, 5, ... (64 values)"
    assert rows.describe("x", torch.zeros(1, 8, 8)).endswith("... (1 x 8 x 8)")
    assert rows.describe("x", torch.tensor([-0.0, 2.0])) == "0, 2"


@pytest.mark.parametrize("rows", [1, 8, 32])
def test_tables_fit_their_text(rows: int) -> None:
    """Every cell's text inside its cell, the title and the table inside the figure."""
    table = Table(
        {
            "error": [0.123456 * (i + 1) for i in range(rows)],
            "index": list(range(rows)),
            "features": ["0.993, -0.955, 0.0616, -3.82, -1.24, 0.123, ... (8 values)"] * rows,
            "tokens": ["a b c " * 30] * rows,  # longer than max_chars: cut with an ellipsis
        }
    )
    title = "highest error: 8 examples · rows · test of checkpoints/best-epoch022-step1863.ckpt"
    fig = media.table_figure(table, title=title)
    try:
        fig.canvas.draw()  # a table places its cells' text when drawn
        renderer = fig.canvas.get_renderer()
        drawn = fig.axes[0].tables[0]
        for cell in drawn.get_celld().values():
            box = cell.get_window_extent(renderer)
            text = cell.get_text().get_window_extent(renderer)
            assert inside(box, fig.bbox)
            assert text.x0 >= box.x0 - 0.5 and text.x1 <= box.x1 + 0.5, cell.get_text()
        assert all(len(c.get_text().get_text()) <= 64 for c in drawn.get_celld().values())
        for t in fig.texts:
            assert inside(t.get_window_extent(renderer), fig.bbox)
            assert not overlap(
                t.get_window_extent(renderer), fig.axes[0].get_window_extent(renderer)
            )
    finally:
        plt.close(fig)


LONG_TITLE = (
    "calibration · a_data_set_with_a_long_name · test of "
    "/somewhere/far/away/runs/project/20261204-134339-d8e142/checkpoints/best-epoch003-step112.ckpt "
    "(epoch 3, step 112)"
)


def figures() -> list[Any]:
    """Each diagnostic's figure, drawn from hand-made values, with a long title."""
    from litforge.diagnostics import regression, uncertainty

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 5, generator=g) * 2, -1).double()
    labels = torch.multinomial(probs, 1, generator=g)[:, 0]
    confidence, pred = probs.max(-1)
    correct = (pred == labels).double()
    entropy = -(probs * probs.log()).sum(-1) / torch.log(torch.tensor(5.0))
    rel = uncertainty.calibration_bins(confidence, correct, 10)
    summary = {
        "reliability": rel,
        "entropy": uncertainty.entropy_bins(entropy, correct, confidence, 10),
        "ece": uncertainty.ece_of(rel),
        "n": 500,
        "classes": 5,
    }
    true = torch.randn(300, 1, generator=g)
    data = {"index": torch.arange(300), "pred": true + 0.1, "true": true, "error": torch.rand(300)}
    return [
        uncertainty.figure(summary, LONG_TITLE),
        confusion.figure(torch.eye(3, dtype=torch.long) * 50 + 1, ["a", "b", "c"], LONG_TITLE),
        regression.figure(data, torch.arange(8), 40, LONG_TITLE),
        regression.error_figure(
            torch.rand(300, generator=g) + 0.01, torch.rand(8) + 1, 40, LONG_TITLE
        ),
    ]


def test_every_figure_keeps_its_text_inside_and_off_its_plots() -> None:
    for fig in figures():
        try:
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
            title = fig._suptitle.get_window_extent(renderer)
            assert inside(title, fig.bbox), fig._suptitle.get_text()
            for t in fig.texts:
                assert inside(t.get_window_extent(renderer), fig.bbox), t.get_text()
            for text in [fig._suptitle, *fig.texts]:
                for box in boxes:
                    assert not overlap(text.get_window_extent(renderer), box), text.get_text()
            for ax in fig.axes:
                for label in [ax.title, ax.xaxis.label, ax.yaxis.label]:
                    if label.get_text():
                        assert inside(label.get_window_extent(renderer), fig.bbox), label.get_text()
        finally:
            plt.close(fig)
