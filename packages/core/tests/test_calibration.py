"""The calibration diagnostic against independent computations: synthetic models that are
calibrated by construction (each label drawn from the predicted probabilities) and models that
are not, for 2, 3 and 10 classes; TorchMetrics' calibration error; and the picture, whose
points and title are read back from the drawn figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from litforge.diagnostics import uncertainty as u
from litforge.diagnostics.media import fmt

N_BINS = 10


def model(
    classes: int, n: int, seed: int, sharpen: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs N x C, labels N): labels drawn from softmax(logits); the model states
    softmax(sharpen * logits): calibrated for sharpen = 1, overconfident above."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64) * 1.5
    labels = torch.multinomial(logits.softmax(-1), 1, generator=g)[:, 0]
    # as a model states them, in float32 (what TorchMetrics is given too)
    return (sharpen * logits).softmax(-1).float().double(), labels


def views(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    confidence, pred = probs.max(-1)
    correct = (pred == labels).double()
    entropy = -(probs * probs.clamp_min(1e-300).log()).sum(-1) / math.log(probs.shape[1])
    reliability = u.calibration_bins(confidence, correct, N_BINS)
    return {
        "reliability": reliability,
        "entropy": u.entropy_bins(entropy, correct, confidence, N_BINS),
        "ece": u.ece_of(reliability),
        "n": len(labels),
        "classes": probs.shape[1],
        "confidence": confidence,
        "correct": correct,
        "entropy_values": entropy,
    }


def by_hand(confidence: torch.Tensor, correct: torch.Tensor, bins: int) -> tuple[list, float]:
    """Bins [lo, hi) (the last one [lo, 1]) by a loop over the examples; their (count, accuracy,
    mean confidence) and the ECE."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(confidence.tolist()):
        members[min(int(c * bins), bins - 1)].append(i)
    rows: list[tuple[int, float | None, float | None]] = []
    ece = 0.0
    for m in members:
        if not m:
            rows.append((0, None, None))
            continue
        acc = sum(correct[i].item() for i in m) / len(m)
        conf = sum(confidence[i].item() for i in m) / len(m)
        rows.append((len(m), acc, conf))
        ece += len(m) / len(confidence) * abs(acc - conf)
    return rows, ece


def sampling_sigma(p: torch.Tensor) -> float:
    """Standard deviation of the mean of independent Bernoulli(p_i): a bin's sampling error."""
    return float((p * (1 - p)).sum().sqrt() / len(p))


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_a_calibrated_model_has_ece_near_0_and_bins_on_the_diagonal(classes: int) -> None:
    probs, labels = model(classes, 20_000, seed=classes)
    v = views(probs, labels)
    confidence, correct, rel = v["confidence"], v["correct"], v["reliability"]
    assert (confidence < 1).all()  # no example on a bin edge of TorchMetrics' extra bin
    bins = u.bin_of(confidence, N_BINS)
    bound = 0.0
    for b in range(N_BINS):
        inside = bins == b
        n_b = int(inside.sum())
        assert int(rel["count"][b]) == n_b
        if n_b == 0:
            assert math.isnan(rel["accuracy"][b])
            continue
        sigma = sampling_sigma(confidence[inside])
        bound += n_b / len(labels) * 3 * sigma
        # each bin on the diagonal within its sampling error (4 sigma)
        gap = abs(float(rel["accuracy"][b] - rel["confidence"][b]))
        assert gap <= 4 * sigma + 1e-12, (classes, b, n_b, gap, sigma)
    # the ECE of a calibrated model is its bins' sampling noise, nothing more
    assert float(v["ece"]) <= bound, (float(v["ece"]), bound)
    assert float(v["ece"]) < 0.02

    # error against entropy: each bin's error rate is what calibration predicts for it
    ent = v["entropy"]
    ebins = u.bin_of(v["entropy_values"], N_BINS)
    for b in range(N_BINS):
        inside = ebins == b
        if int(inside.sum()) < 20:
            continue
        expected = float((1 - confidence[inside]).mean())
        assert float(ent["expected"][b]) == pytest.approx(expected)
        assert float(ent["rate"][b]) == pytest.approx(float(1 - correct[inside].mean()))
        sigma = sampling_sigma(1 - confidence[inside])
        assert abs(float(ent["rate"][b]) - expected) <= 4 * sigma + 1e-12
    # the reference is not y = x: near-uniform predictions of C classes err (C - 1) / C of the
    # time at most, so the top entropy bin's calibrated error is below 1 - 1/C, far below 0.95
    top = float(ent["expected"][N_BINS - 1])
    assert top <= 1 - 1 / classes + 1e-9
    assert top < 0.95 - 0.25 if classes <= 3 else top < 0.95


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_ece_equals_torchmetrics_and_a_loop_by_hand(classes: int) -> None:
    for sharpen in (1.0, 2.0):  # calibrated, then overconfident
        probs, labels = model(classes, 5_000, seed=10 + classes, sharpen=sharpen)
        v = views(probs, labels)
        # a confidence of exactly 1.0 is in our last bin, [0.9, 1], as in the textbook; TorchMetrics
        # gives it an eleventh bin of its own: the two agree where no confidence is 1.0
        assert (v["confidence"] < 1).all()
        metric = MulticlassCalibrationError(num_classes=classes, n_bins=N_BINS, norm="l1")
        expected = float(metric(probs.float(), labels))
        assert float(v["ece"]) == pytest.approx(expected, abs=2e-6)
        rows, ece = by_hand(v["confidence"], v["correct"], N_BINS)
        assert float(v["ece"]) == pytest.approx(ece, abs=1e-12)
        rel = v["reliability"]
        for b, (count, acc, conf) in enumerate(rows):
            assert int(rel["count"][b]) == count
            if count:
                assert float(rel["accuracy"][b]) == pytest.approx(acc, abs=1e-12)
                assert float(rel["confidence"][b]) == pytest.approx(conf, abs=1e-12)
        if sharpen > 1:  # overconfident: a large ECE, every well-filled bin under y = x
            assert ece > 0.05
            well_filled = (rel["count"] >= 100) & (rel["confidence"] > 1 / classes + 0.1)
            assert well_filled.any()
            assert (rel["accuracy"][well_filled] < rel["confidence"][well_filled]).all()


def test_the_picture_draws_exactly_the_bins_of_its_ece() -> None:
    probs, labels = model(4, 3_000, seed=3, sharpen=2.0)
    v = views(probs, labels)
    fig = u.figure(v, "calibration")
    try:
        reliability, entropy_ax = fig.axes[0], fig.axes[1]
        rel = v["reliability"]
        some = rel["count"] > 0
        (points,) = reliability.containers  # the bins' points with their intervals
        x, y = points.lines[0].get_data()
        assert torch.allclose(torch.tensor(x), rel["confidence"][some])
        assert torch.allclose(torch.tensor(y), rel["accuracy"][some])
        # the ECE in the title is the ECE of these very points and their counts
        ece = (
            rel["count"][some]
            / rel["count"].sum()
            * (rel["accuracy"] - rel["confidence"])[some].abs()
        ).sum()
        assert f"ECE {fmt(float(ece))} on these {N_BINS} confidence bins" in reliability.get_title()
        counts_ax = fig.axes[2]  # the counts under the reliability diagram
        heights = [p.get_height() for p in counts_ax.patches]
        assert heights == rel["count"].tolist()
        # the entropy view's reference is the calibrated error of each bin, not y = x
        ent = v["entropy"]
        reference = next(line for line in entropy_ax.lines if "calibrated" in str(line.get_label()))
        assert torch.allclose(
            torch.tensor(reference.get_ydata()), ent["expected"][ent["count"] > 0]
        )
    finally:
        plt.close(fig)


def test_wilson_interval_covers_and_shrinks() -> None:
    lo, hi = u.wilson_interval(torch.tensor([0.5, 0.5, 0.0, 1.0]), torch.tensor([10, 1000, 50, 50]))
    assert (lo <= torch.tensor([0.5, 0.5, 0.0, 1.0])).all() and (
        hi >= torch.tensor([0.5, 0.5, 0.0, 1.0])
    ).all()
    assert hi[1] - lo[1] < hi[0] - lo[0]  # more examples, a narrower interval
    assert float(hi[1] - lo[1]) == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 1000), rel=0.01)
    assert 0 < float(hi[2]) < 0.1 and 0.9 < float(lo[3]) < 1  # never a zero-width interval


def test_a_confidence_of_one_is_in_the_last_bin() -> None:
    confidence = torch.tensor([1.0, 1.0, 0.95, 0.3], dtype=torch.float64)
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    bins = u.calibration_bins(confidence, correct, N_BINS)
    assert bins["count"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 3]
    _, ece = by_hand(confidence, correct, N_BINS)
    assert float(u.ece_of(bins)) == pytest.approx(ece)
    # last bin: accuracy 2/3, confidence 0.9833; the 0.3 bin: accuracy 0, confidence 0.3
    assert ece == pytest.approx(3 / 4 * abs(2 / 3 - 2.95 / 3) + 1 / 4 * 0.3)
