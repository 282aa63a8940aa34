"""The segmentation task through the core test kit: the metric by hand, masks that move with
their images, overfitting, and a short real run checked against a recomputation."""

import json
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F

from litforge import Extremes, testing
from litforge.tasks.contracts import ContractError
from litforge.tasks.structs import SegmentationExample, SegmentationPrediction
from segmentation_demo import cli
from segmentation_demo.data import CLASS_NAMES, ShapesMasks
from segmentation_demo.model import SegModel

# Small images and sets keep every run here to a few seconds.
SMALL = [
    "--data.n_train=192",
    "--data.n_test=48",
    "--data.val_size=32",
    "--data.size=16",
    "--data.batch_size=32",
    "--model.width=8",
]


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch):
    # The CLI leaves LITFORGE_RUN_DIR set (for DDP children); later runs in this process would
    # reuse that folder.
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def test_python_m_help(monkeypatch, capsys):
    """`python -m segmentation_demo --help`, through __main__."""
    monkeypatch.setattr(sys, "argv", ["segmentation_demo", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("segmentation_demo", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0 and "fit" in capsys.readouterr().out


def test_smoke(tmp_path):
    run = testing.smoke(cli.main, tmp_path, *SMALL)
    assert isinstance(run.model, SegModel) and isinstance(run.datamodule, ShapesMasks)
    assert run.model.num_classes == len(CLASS_NAMES)  # linked from the data


def test_iou_by_hand():
    """Mean IoU over the classes, from the pixels of the whole epoch (not a mean per image)."""
    true = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 3], [2, 2, 0, 0]])
    # class 0: true 5 px, predicted 5, both 4 -> 4 / (5 + 5 - 4) = 4/6
    # class 1: true 4, predicted 4, both 3    -> 3 / 5
    # class 2: true 3, predicted 2, both 2    -> 2 / 3
    # class 3: true 0, predicted 1, both 0    -> 0 / 1 = 0 (counted: it was predicted)
    # class 4: neither true nor predicted     -> no union: left out of the mean (torchmetrics'
    #                                            JaccardIndex, average='macro', gives it weight 0)
    expected_iou = (4 / 6 + 3 / 5 + 2 / 3 + 0) / 4
    expected_accuracy = (4 + 3 + 2) / 12
    model = SegModel(num_classes=5)
    example = SegmentationExample(
        index=torch.tensor([0]), image=torch.zeros(1, 3, 3, 4), mask=true[None]
    )
    logits = 5.0 * F.one_hot(pred, 5).permute(2, 0, 1)[None].float()  # argmax is `pred`
    prediction = SegmentationPrediction(logits=logits)
    assert torch.equal(prediction.pred[0], pred)

    metrics = model.build_metrics()
    metrics.update(example, prediction)
    result = metrics.compute()
    assert result["iou"].item() == pytest.approx(expected_iou, abs=1e-6)
    assert result["pixel_accuracy"].item() == pytest.approx(expected_accuracy, abs=1e-6)

    # The same pixels in two batches (rows 0-1, then row 2) give the same numbers: the metric
    # adds up intersections and unions over the epoch. (The IoUs of the two parts alone would
    # differ: class 2 is absent from the first.)
    metrics = model.build_metrics()
    for rows in (slice(0, 2), slice(2, 3)):
        part = SegmentationExample(example.index, example.image[:, :, rows], example.mask[:, rows])
        metrics.update(part, SegmentationPrediction(logits=logits[:, :, rows]))
    assert metrics.compute()["iou"].item() == pytest.approx(expected_iou, abs=1e-6)


def move(x, dy, dx, flipped, pad):
    """``x`` (... x H x W) shifted down by dy and right by dx, borders filled by reflection,
    then mirrored left-right if ``flipped``: written here apart from core's augmentation."""
    h, w = x.shape[-2:]
    padded = F.pad(x.float().reshape(-1, 1, h, w), (pad, pad, pad, pad), mode="reflect")
    out = padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w].reshape(x.shape)
    return out.flip(-1) if flipped else out


def test_masks_move_with_their_images():
    pad = 2
    data = ShapesMasks(n_train=64, n_test=8, val_size=0, size=16, batch_size=32, translate=pad)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    stored = data.splits["train"]
    shown = data.to_display(batch.image)  # the augmented images as uint8
    moves = {}
    for i, idx in enumerate(batch.index.tolist()):
        image, mask = stored["image"][idx], stored["mask"][idx]
        # the one shift and flip that gives the batch's image from the stored one
        found = [
            (dy, dx, f)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            for f in (False, True)
            if (move(image, dy, dx, f, pad) - shown[i].float()).abs().max() <= 1
        ]
        assert len(found) == 1, (i, found)
        moves[i] = found[0]
        assert torch.equal(batch.mask[i], move(mask, *found[0], pad).long())
    assert any(f for _, _, f in moves.values()) and not all(f for _, _, f in moves.values())
    # One shifted, unflipped example by hand: pixel (y, x) of the batch is (y - dy, x - dx) of
    # the stored mask, away from the reflected border.
    i, (dy, dx, _) = next((i, m) for i, m in moves.items() if not m[2] and m[:2] != (0, 0))
    idx = int(batch.index[i])
    for y in range(pad, 16 - pad):
        for x in range(pad, 16 - pad):
            assert batch.mask[i, y, x] == stored["mask"][idx, y - dy, x - dx]


def test_overfits_one_batch():
    torch.manual_seed(0)
    data = ShapesMasks(n_train=16, n_test=8, val_size=0, size=16, batch_size=16)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model = SegModel(num_classes=data.num_classes, width=8)
    model.optimizer_factory = lambda params: torch.optim.AdamW(params, lr=0.01)
    testing.overfit(model, batch, steps=40, ratio=0.3)


def test_classification_diagnostics_stop_the_run_at_fit_start(tmp_path):
    """ConfusionMatrix reads one probability vector per image: a ContractError before the
    first step, by design."""
    with pytest.raises(ContractError, match="ConfusionMatrix"):
        testing.train(
            cli.main,
            tmp_path,
            "fit",
            *SMALL,
            "--trainer.callbacks+=litforge.ConfusionMatrix",
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LITFORGE_RUN_DIR", raising=False)
        return testing.train(
            cli.main, tmp_path_factory.mktemp("runs"), "fit", "--trainer.max_epochs=2", *SMALL
        )


def mean_iou(model, data) -> float:
    """The test set's mean IoU recomputed from the model's predictions: intersections and unions
    per class over every pixel, averaged over the classes that occur in either."""
    k = data.num_classes
    confusion = torch.zeros(k, k, dtype=torch.long)  # [true, predicted]
    model.eval()
    with torch.no_grad():
        for batch in data.test_dataloader():
            pred = model(batch).logits.argmax(dim=1)
            confusion += torch.bincount(
                k * batch.mask.flatten() + pred.flatten(), minlength=k * k
            ).view(k, k)
    both = confusion.diag().double()
    union = confusion.sum(0) + confusion.sum(1) - both
    return float((both[union > 0] / union[union > 0]).mean())


def test_results_match_a_recomputation(run):
    results = json.loads((run.run_dir / "results.json").read_text())
    iou = results["test/shapes/iou"]
    assert 0 <= iou <= 1 and 0 <= results["test/shapes/pixel_accuracy"] <= 1
    assert iou == pytest.approx(mean_iou(run.model, run.datamodule), abs=1e-6)


def test_extremes_show_image_true_and_predicted_mask(run):
    media = testing.media_files(run.run_dir)
    for key in ("test/shapes/extremes/highest_error", "test/shapes/extremes/lowest_error"):
        assert media.get(key), f"no PNG for {key}; found {sorted(media)}"
    extremes = next(c for c in run.trainer.callbacks if isinstance(c, Extremes))
    shown = extremes.last_selection[("test", "shapes", "highest_error")]
    pixels, index = shown["view"].pixels, shown["index"]
    data = run.datamodule
    n, (h, w) = len(data.splits["test"]), data.image_size
    assert pixels.shape == (min(extremes.k, n), 3, h, 3 * w + 2)  # three panels, 1-px gaps
    assert (pixels[..., w] == 255).all() and (pixels[..., 2 * w + 1] == 255).all()
    # The first panel is the test image itself: normalised for the model, shown back as uint8.
    stored = data.splits["test"]["image"][index.to(data.splits["test"]["image"].device)]
    assert (pixels[..., :w].int() - stored.cpu().int()).abs().max() <= 1
    assert torch.all(shown["error"][:-1] >= shown["error"][1:])  # worst first
