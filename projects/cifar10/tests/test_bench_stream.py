"""``make bench-stream`` (``cifar10_demo.bench_stream``) on tiny settings: it measures what it says
(both paths of (a) train; (b) writes the sizes asked for and reports each run's peak memory),
so that the real benchmark works the first time it is run on a quiet machine."""

import json

import numpy as np
import pytest

from cifar10_demo import bench_stream


def test_generated_images_are_the_same_streamed_and_in_memory():
    data = bench_stream.GeneratedData(12, 8, stream=False)
    arrays = data.load()
    for i in (0, 5, 11):
        stored, moments = bench_stream.GeneratedReader(8)(i)
        assert np.array_equal(stored["image"], arrays.images[i].numpy())
        assert stored["label"] == arrays.labels[i] == i % 10
        assert moments["image"].shape == (2, 3)


@pytest.mark.slow
def test_bench_stream_measures_both_paths_and_the_memory_of_two_sizes(tmp_path):
    bench_stream.main_bench(
        [
            "--per-class=30", "--size=tiny", "--precision=32-true", "--steps=2", "--warmup=1",
            "--rounds=1", "--workers=1", "--sizes=0.002,0.004", "--image=16",
            f"--out={tmp_path}",
        ]
    )  # fmt: skip
    (saved,) = tmp_path.glob("*/stream.json")
    results = json.loads(saved.read_text())
    speed = results["speed"]
    assert speed["memory_img_s"] > 0 and speed["streamed_img_s"] > 0
    assert speed["ratio_median_of_rounds"] == pytest.approx(
        speed["streamed_img_s"] / speed["memory_img_s"]
    )
    rows = results["memory"]
    assert [(r["path"], r["images"]) for r in rows] == [
        ("streamed", 2604), ("in memory", 2604), ("streamed", 5208), ("in memory", 5208),
    ]  # fmt: skip
    for row in rows:  # one epoch each, in batches of 256 (drop_last)
        assert row["trained_images"] == row["images"] // 256 * 256
        assert 100 < row["peak_rss_mb"] < 20_000
