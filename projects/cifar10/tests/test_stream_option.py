"""``--data.stream=true``: the demo trains from chunks on disk (``litforge.StreamedImageDataModule``)
instead of memory, on the tiny generated image folder (the root conftest.py's
``tiny_image_folder``); the chunks land in the private cache (this folder's conftest.py)."""

import json

import torch

from cifar10_demo.cli import main
from cifar10_demo.data import Cifar10Data
from litforge import StreamLoader, testing

AS_GIVEN = ["--size=null", "--run.time_budget=null", "--run.precision=null"]


def test_stream_option_trains_from_chunks(tiny_image_folder, tmp_path):
    cli = testing.train(
        main,
        tmp_path,
        "fit",
        f"--data.root={tiny_image_folder}",
        "--data.stream=true",
        "--data.num_workers=1",
        "--data.batch_size=50",
        "--data.eval_batch_size=50",
        "--trainer.max_epochs=4",
        "--model.widths=[8,16,16]",
        "--trainer.precision=32-true",
        *AS_GIVEN,
    )
    assert isinstance(cli.datamodule.train_dataloader(), StreamLoader)
    prepared = cli.datamodule.prepared
    assert prepared.manifest["splits"] == {"train": {"n": 200}, "test": {"n": 50}}
    assert prepared.fields["image"] == {"dtype": "uint8", "shape": [3, 32, 32], "encoded": False}
    results = json.loads((cli.run_dir / "results.json").read_text())
    # chance is 0.1; in memory the same 16 steps reach 0.34 (test_cifar10_project.py)
    assert results["test/cifar10/accuracy"] > 0.25, results
    media = testing.media_files(cli.run_dir)
    assert "test/cifar10/extremes/highest_error" in media, sorted(media)


def test_streamed_test_set_is_the_in_memory_one(tiny_image_folder):
    args = {"root": str(tiny_image_folder), "eval_batch_size": 16, "num_workers": 0}
    memory, streamed = Cifar10Data(**args), Cifar10Data(stream=True, **args)
    memory.setup("test")
    streamed.setup("test")
    got = {
        i: image
        for batch in streamed.test_dataloader()
        for i, image in zip(batch.index.tolist(), batch.image)
    }
    want = {
        i: image
        for batch in memory.test_dataloader()
        for i, image in zip(batch.index.tolist(), batch.image)
    }
    assert sorted(got) == sorted(want) == list(range(50))
    for i in want:
        torch.testing.assert_close(got[i], want[i], rtol=0, atol=1e-4)
