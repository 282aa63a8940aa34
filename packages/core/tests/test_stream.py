"""The streamed data path (``litforge.data.prepare``, ``litforge.data.stream``) against the
in-memory one, on tiny data written here (an image folder, a CSV file, synthetic arrays):

- the examples read back from chunks are the in-memory path's, field for field, index for index,
  and the module meets the same TaskData contract;
- a prepare with unchanged input writes nothing; a changed input is written again; an unreadable
  image or a wrong label is one error naming the file (or line), and the previous chunks stay;
- a loader resumed mid-epoch gives the very batches (images and augmentation included) an
  uninterrupted one gives, with and without worker processes;
- slow (``make test-all``): a prepare killed mid-way leaves nothing that looks complete; two
  DDP processes on the CPU see each training example at most once
  per epoch (and every one but the few ``drop_last`` leaves), each evaluation example exactly
  once; a run stopped by SIGTERM mid-epoch resumes through the real CLI with the batches and the
  weights of an uninterrupted run; the command line's ``prepare`` and its error line.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from litforge import testing
from litforge.data.augment import ImageTransform
from litforge.data.prepare import (
    ArraysSource,
    CsvSource,
    ImageFolderSource,
    PrepareError,
    prepare_stream,
    read_manifest,
)
from litforge.data.stream import (
    StreamedDataModule,
    StreamedImageFolderDataModule,
    StreamLoader,
    streaming_dataset,
)
from litforge.run.handoff import HANDOFF_ENV
from litforge.run.prepare import prepare_command
from litforge.tasks.contracts import check_data
from litforge.tasks.structs import ClassificationExample, Example
from litforge.testing.streamed import StreamedSyntheticData, project

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 180  # a hung subprocess fails its test instead of hanging it
KW: dict[str, Any] = {"batch_size": 8, "eval_batch_size": 5, "val_size": 12, "seed": 3}


@pytest.fixture(scope="module", autouse=True)
def probes_importable() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes of RGB 8 x 8 PNGs: 15 per class to train on, 4 to test."""
    root = tmp_path_factory.mktemp("images")
    return testing.write_image_folder(root, classes=4, per_class={"train": 15, "test": 4}, size=8)


def by_index(examples: list[Example]) -> dict[int, dict[str, torch.Tensor]]:
    """Every example of the batches, by its index (an index seen twice fails)."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for batch in examples:
        fields = batch.tensors()
        for row, i in enumerate(batch.index.tolist()):
            assert i not in out, f"example {i} twice"
            out[i] = {k: v[row] for k, v in fields.items() if k != "index"}
    return out


def both(root: Path, cache: Path, **kw: Any) -> tuple[StreamedSyntheticData, StreamedSyntheticData]:
    """The same data module in memory and streamed, set up for fit."""
    args = {**KW, "root": str(root), "cache_dir": str(cache), "num_workers": 0, **kw}
    memory, streamed = StreamedSyntheticData(stream=False, **args), StreamedSyntheticData(**args)
    memory.setup("fit")
    streamed.setup("fit")
    return memory, streamed


# ---------------------------------------------------------------------- the same examples
def test_streamed_image_folder_gives_the_in_memory_examples(folder: Path, tmp_path: Path) -> None:
    memory, streamed = both(folder, tmp_path, translate=1, flip="random")
    check_data(streamed)
    assert streamed.class_names == memory.class_names == ("class0", "class1", "class2", "class3")
    assert (streamed.in_channels, streamed.image_size) == (memory.in_channels, memory.image_size)
    # the statistics of the training part, summed while writing, as torch computes them
    torch.testing.assert_close(streamed.mean, memory.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(streamed.std, memory.std, rtol=0, atol=1e-6)
    for split in ("val", "test"):  # not augmented: every example, the very same tensors
        assert streamed.has_split(split) and memory.has_split(split)
        loader = getattr(streamed, f"{split}_dataloader")()
        got = by_index(list(loader))
        want = by_index(list(getattr(memory, f"{split}_dataloader")()))
        assert got.keys() == want.keys() and len(got) == {"val": 12, "test": 16}[split]
        for i in want:
            assert torch.equal(got[i]["label"], want[i]["label"])
            torch.testing.assert_close(got[i]["image"], want[i]["image"], rtol=0, atol=1e-4)
    # training: each of the 48 examples once per epoch (48 = 6 batches of 8), augmented,
    # the same Example type and fields as in memory
    train = list(streamed.train_dataloader())
    assert len(train) == len(memory.train_dataloader()) == 6
    assert sorted(by_index(train)) == list(range(48))
    one = next(iter(memory.train_dataloader()))
    assert type(train[0]) is type(one) is ClassificationExample
    assert {k: (v.dtype, v.shape) for k, v in train[0].tensors().items()} == {
        k: (v.dtype, v.shape) for k, v in one.tensors().items()
    }
    sample = streamed.sample("val", 3)
    want_val = by_index([memory.sample("val", 12)])
    for row, i in enumerate(sample.index.tolist()):
        torch.testing.assert_close(sample.image[row], want_val[i]["image"], rtol=0, atol=1e-4)


def test_arrays_from_load_stream_as_they_are_held(tmp_path: Path) -> None:
    """The default source, the module's own load(): the same split, the same tensors."""
    args = {**KW, "n_train": 40, "n_test": 10, "cache_dir": str(tmp_path), "num_workers": 0}
    memory, streamed = StreamedSyntheticData(stream=False, **args), StreamedSyntheticData(**args)
    memory.setup("fit")
    streamed.setup("fit")
    got, want = by_index(list(streamed.val_dataloader())), by_index(list(memory.val_dataloader()))
    assert got.keys() == want.keys()
    for i in want:
        torch.testing.assert_close(got[i]["image"], want[i]["image"], rtol=0, atol=1e-4)


def test_image_folder_module_streams_resized_images_as_in_memory(tmp_path: Path) -> None:
    """One pool of JPEGs of mixed sizes, resized to 8 x 8: the pixels are resized once, while
    the chunks are written, as the in-memory reader resizes them."""
    root = testing.write_image_folder(
        tmp_path / "photos", classes=3, per_class={"": 10}, sizes=(10, 20), suffix=".jpg"
    )
    args = {"root": str(root), "size": 8, "val_size": 6, "test_size": 6, "eval_batch_size": 4}
    memory = StreamedImageFolderDataModule(stream=False, **args)
    streamed = StreamedImageFolderDataModule(cache_dir=str(tmp_path / "c"), num_workers=0, **args)
    memory.setup("fit")
    streamed.setup("fit")
    assert streamed.prepared.fields["image"] == {
        "dtype": "uint8",
        "shape": [3, 8, 8],
        "encoded": False,
    }
    assert streamed.image_size == memory.image_size == (8, 8)
    for split in ("val", "test"):
        got = by_index(list(getattr(streamed, f"{split}_dataloader")()))
        want = by_index(list(getattr(memory, f"{split}_dataloader")()))
        assert got.keys() == want.keys() and len(got) == 6
        for i in want:
            torch.testing.assert_close(got[i]["image"], want[i]["image"], rtol=0, atol=1e-4)


def write_table(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["width", "height", "species"])
        writer.writerows(rows)
    return path


class Table(StreamedDataModule):
    """A CSV of two features and a species: streamed, or read by numpy into memory."""

    name = "table"
    example_type = ClassificationExample

    def __init__(self, path: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path

    def sources(self) -> dict[str, Any]:
        return {"train": CsvSource(self.path, label="species")}

    def load(self) -> Any:
        from litforge.data.arrays import Arrays

        rows = np.loadtxt(self.path, delimiter=",", skiprows=1, dtype=str)
        names = tuple(sorted(set(rows[:, 2])))
        labels = torch.tensor([names.index(v) for v in rows[:, 2]])
        features = torch.tensor(rows[:, :2].astype(np.float32))
        return Arrays(names, features=features, label=labels)


def test_csv_streams_standardised_as_in_memory(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    rows = [[round(g.normal(5, 2), 3), round(g.normal(-1, 3), 3), g.choice(["ab", "cd", "ef"])]
            for _ in range(50)]  # fmt: skip
    path = write_table(tmp_path / "t.csv", rows)
    args = {**KW, "path": str(path), "standardize": ("features",), "cache_dir": str(tmp_path)}
    memory, streamed = Table(stream=False, **args), Table(num_workers=0, **args)
    memory.setup("fit")
    streamed.setup("fit")
    assert streamed.class_names == memory.class_names == ("ab", "cd", "ef")
    assert streamed.num_features == memory.num_features == 2
    assert streamed.feature_names == ("width", "height")
    # the statistics a model reads (a standardised target is reported in its own units)
    for have, expected in zip(streamed.stats["features"], memory.stats["features"]):
        torch.testing.assert_close(have, expected, rtol=0, atol=1e-5)
    got, want = by_index(list(streamed.val_dataloader())), by_index(list(memory.val_dataloader()))
    assert got.keys() == want.keys()
    for i in want:  # standardised with the training part's mean and std, per batch
        torch.testing.assert_close(got[i]["features"], want[i]["features"], rtol=0, atol=1e-5)
        assert torch.equal(got[i]["label"], want[i]["label"])


class Texts(StreamedDataModule):
    """Token sequences with their vocabulary, from load(): streamed or in memory."""

    name = "texts"
    example_type = ClassificationExample

    def load(self) -> Any:
        from litforge.data.arrays import Arrays
        from litforge.data.text import Vocabulary, pad_sequences

        vocabulary = Vocabulary.build(["abc", "bcd", "cde"], "chars")
        texts = ["abcabc"[i % 4 :] for i in range(30)]
        tokens, lengths = pad_sequences([vocabulary.encode(t) for t in texts])
        labels = torch.tensor([len(t) % 2 for t in texts])
        return Arrays(("even", "odd"), vocabulary=vocabulary, tokens=tokens, lengths=lengths,
                      label=labels)  # fmt: skip


def test_token_sequences_keep_their_vocabulary_streamed(tmp_path: Path) -> None:
    args = {"batch_size": 4, "val_size": 6, "cache_dir": str(tmp_path), "num_workers": 0}
    memory, streamed = Texts(stream=False, **args), Texts(**args)
    memory.setup("fit")
    streamed.setup("fit")
    assert streamed.vocabulary.tokens == memory.vocabulary.tokens  # type: ignore[union-attr]
    assert (streamed.vocab_size, streamed.sequence_length) == (
        memory.vocab_size,
        memory.sequence_length,
    )
    got, want = by_index(list(streamed.val_dataloader())), by_index(list(memory.val_dataloader()))
    assert got.keys() == want.keys()
    for i in want:
        assert torch.equal(got[i]["tokens"], want[i]["tokens"])
        assert streamed.describe("tokens", got[i]["tokens"]) == memory.describe(
            "tokens", want[i]["tokens"]
        )


# ---------------------------------------------------------------------- prepare
def chunk_files(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def test_prepare_again_does_nothing_and_a_changed_input_is_written_again(
    tmp_path: Path,
) -> None:
    root = testing.write_image_folder(
        tmp_path / "images", classes=2, per_class={"train": 5}, size=8
    )
    sources = {"train": ImageFolderSource(root, "train")}
    first = prepare_stream(sources, tmp_path / "chunks", progress=False)
    files = chunk_files(first.folder)
    again = prepare_stream(sources, tmp_path / "chunks", progress=False)
    assert first.written and not again.written
    assert chunk_files(again.folder) == files  # not one file touched
    image = root / "train" / "class0" / sorted(os.listdir(root / "train" / "class0"))[0]
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
    changed = prepare_stream(sources, tmp_path / "chunks", progress=False)
    assert changed.written and changed.manifest["fingerprint"] != first.manifest["fingerprint"]
    red = [item for item in streaming_dataset(changed, "train", shuffle=False, drop_last=False, seed=0)
           if item["image"][0].float().mean() == 255]  # fmt: skip
    assert len(red) == 1
    assert not list(tmp_path.glob(".chunks.*-*"))  # no partial or old folder left


def test_bad_image_names_the_file_and_keeps_the_previous_chunks(tmp_path: Path) -> None:
    root = testing.write_image_folder(
        tmp_path / "images", classes=2, per_class={"train": 5}, size=8
    )
    sources = {"train": ImageFolderSource(root, "train")}
    good = prepare_stream(sources, tmp_path / "chunks", progress=False)
    files = chunk_files(good.folder)
    bad = root / "train" / "class1" / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(PrepareError, match=f"cannot decode image {bad}: not an image file"):
        prepare_stream(sources, tmp_path / "chunks", progress=False)
    resized = {"train": ImageFolderSource(root, "train", size=4)}  # decoded while written
    with pytest.raises(PrepareError, match=f"cannot decode image {bad}: not an image file"):
        prepare_stream(resized, tmp_path / "chunks", progress=False)
    assert chunk_files(good.folder) == files
    assert read_manifest(good.folder) == good.manifest
    assert len(list(streaming_dataset(good, "train", shuffle=False, drop_last=False, seed=0))) == 10
    assert not list(tmp_path.glob(".chunks.*-*"))


def test_a_wrong_label_or_value_names_the_line(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", [[1, 2, "ab"], [3, 4, "cd"], [5, 6, "xy"]])
    with pytest.raises(PrepareError, match=rf"{path}:4: label 'xy' is not one of the classes"):
        prepare_stream(
            {"train": CsvSource(path, label="species", class_names=["ab", "cd"])},
            tmp_path / "chunks",
            progress=False,
        )
    path = write_table(tmp_path / "u.csv", [[1, 2, "ab"], [3, "four", "cd"]])
    with pytest.raises(PrepareError, match=rf"{path}:3: could not convert string"):
        prepare_stream({"train": CsvSource(path, label="species")}, tmp_path / "c2", progress=False)
    labels = testing.synthetic_images(6, num_classes=2)
    labels.fields["label"][4] = 7
    with pytest.raises(PrepareError, match="item 4 has label 7, but there are 2 classes"):
        prepare_stream({"train": ArraysSource(labels, "mine")}, tmp_path / "c3", progress=False)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no chunks, whole or partial


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_a_killed_prepare_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    """kill -9 halfway through writing a new version: the folder still holds the old one whole;
    the next prepare writes the new one and clears the remains."""
    target, marker = tmp_path / "chunks", tmp_path / "reading"
    old = prepare_stream(
        {"train": ArraysSource(testing.synthetic_images(16), "old")}, target, progress=False
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, str(TESTS / "stream_probes.py"), str(target), str(marker)], env=env)  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the prepare never started reading"
    proc.kill()
    proc.wait()
    assert list(tmp_path.glob(".chunks.partial-*"))  # the interrupted one's, never renamed
    assert read_manifest(target) == old.manifest  # the old version, whole
    from stream_probes import SlowSource

    fresh = SlowSource(64, seed=5, delay=0, marker=str(tmp_path / "m2"), after=10**9)
    new = prepare_stream({"train": fresh}, target, val_size=8, progress=False)
    assert new.written and new.size("train") == 56 and new.size("val") == 8
    assert not list(tmp_path.glob(".chunks.*-*"))


def test_prepare_command_writes_then_does_nothing(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [f"--data.root={folder}", f"--data.cache_dir={tmp_path}", "--data.val_size=12"]
    assert prepare_command(project, args, "litforge.testing.streamed") == 0
    first = capsys.readouterr().out
    assert prepare_command(project, args, "litforge.testing.streamed") == 0
    second = capsys.readouterr().out
    assert "(written; train 48, val 12, test 16 examples" in first
    assert "up to date, nothing to do" in second
    assert f"fit --data.stream=true {' '.join(args)}" in second


# ---------------------------------------------------------------------- resume mid-epoch
def loader(prepared: Any, workers: int) -> StreamLoader:
    transform = ImageTransform(torch.zeros(3), torch.ones(3), translate=2, flip="random")
    dataset = streaming_dataset(prepared, "train", shuffle=True, drop_last=True, seed=5)
    return StreamLoader(
        dataset,
        lambda index, fields: ClassificationExample(index=index, **fields),
        batch_size=6,
        drop_last=True,
        num_workers=workers,
        transform=transform,
        n_items=prepared.size("train"),
        seed=5,
        epoch=lambda: 3,
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumes_mid_epoch_with_the_same_batches(tmp_path: Path, workers: int) -> None:
    prepared = prepare_stream(
        {"train": ArraysSource(testing.synthetic_images(100), "images")},
        tmp_path / "chunks",
        chunk_bytes=2000,  # ten chunks: litdata's chunk order and the workers' turns matter
        progress=False,
    )
    uninterrupted = list(loader(prepared, workers))
    assert (
        len(uninterrupted) == 16
        and len(set(torch.cat([b.index for b in uninterrupted]).tolist())) == 96
    )
    first = loader(prepared, workers)
    before = []
    for batch in first:
        before.append(batch)
        if len(before) == 7:
            break
    state = json.loads(json.dumps(first.state_dict()))  # plain values, as in a checkpoint
    assert (state["epoch"], state["batches"]) == (3, 7)
    resumed = loader(prepared, workers)
    resumed.load_state_dict(state)
    after = list(resumed)
    assert len(after) == 9
    for got, want in zip(before + after, uninterrupted, strict=True):
        assert torch.equal(got.index, want.index)
        assert torch.equal(got.image, want.image)  # the same shifts and flips


# ---------------------------------------------------------------------- slow: DDP and the CLI
def run_module(args: list[str], log: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "litforge.testing.streamed", *args],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"hung for {TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
    return subprocess.CompletedProcess(args, rc, log.read_bytes())


def records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(folder.glob("rank*.jsonl"))
            for line in p.read_text().splitlines()]  # fmt: skip


@pytest.mark.slow
def test_ddp_two_processes_see_each_example_once_per_epoch(folder: Path, tmp_path: Path) -> None:
    spec = {
        "class_path": "stream_probes.RecordIndices",
        "init_args": {"folder": str(tmp_path / "seen")},
    }
    done = run_module(
        [
            "fit", f"--run.root={tmp_path / 'runs'}", "--run.loggers=[csv]", *testing.QUIET,
            "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
            "--trainer.max_epochs=2", f"--data.root={folder}", f"--data.cache_dir={tmp_path}",
            "--data.val_size=12", "--data.batch_size=4", "--data.eval_batch_size=5",
            "--data.num_workers=1", f"--trainer.callbacks+={json.dumps(spec)}",
        ],
        tmp_path / "ddp.log",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout.decode()[-4000:]
    seen = records(tmp_path / "seen")
    orders = []
    for epoch in (0, 1):
        train = [r for r in seen if r["stage"] == "train" and r["epoch"] == epoch]
        per_rank = Counter(r["rank"] for r in train)
        assert per_rank[0] == per_rank[1] > 0  # the same number of batches on both ranks
        indices = [i for r in train for i in r["index"]]
        counts = Counter(indices)
        assert max(counts.values()) == 1, "an example seen twice in one epoch"
        # 48 training examples, batches of 4 on 2 ranks: drop_last leaves fewer than 8 out
        assert 48 - 8 < len(indices) <= 48 and set(indices) <= set(range(48))
        orders.append(
            [i for r in sorted(train, key=lambda r: (r["step"], r["rank"])) for i in r["index"]]
        )
        val = [i for r in seen if r["stage"] == "val" and r["epoch"] == epoch for i in r["index"]]
        assert sorted(val) == list(range(12))  # every validation example once
    assert orders[0] != orders[1]  # each epoch its own order
    test = [i for r in seen if r["stage"] == "test" for i in r["index"]]
    assert sorted(test) == list(range(16))


@pytest.mark.slow
def test_sigterm_mid_epoch_resume_streams_the_same_batches(folder: Path, tmp_path: Path) -> None:
    """Through the real CLI (in this process, as test_resume.py does in memory): SIGTERM after
    step 8 (2 batches into the second epoch), then the documented resume from last.ckpt."""
    before = torch.are_deterministic_algorithms_enabled()
    common = [
        "fit", "--run.loggers=[csv]", *testing.QUIET, "--trainer.max_epochs=2",
        "--trainer.deterministic=true", "--run.test_after_fit=false", "--model.dropout=0.5",
        f"--data.root={folder}", f"--data.cache_dir={tmp_path}", "--data.val_size=8",
        "--data.batch_size=8", "--data.num_workers=1",
    ]  # fmt: skip

    def recorder(path: Path) -> str:
        spec = {"class_path": "resume_probes.RecordBatches", "init_args": {"path": str(path)}}
        return f"--trainer.callbacks+={json.dumps(spec)}"

    try:
        whole = project.main(
            [*common, f"--run.dir={tmp_path / 'whole'}", recorder(tmp_path / "whole.jsonl")]
        )
        run, record = tmp_path / "run", tmp_path / "run.jsonl"
        stop = {"class_path": "reliability_probes.PauseForSignal",
                "init_args": {"step": 8, "marker": str(tmp_path / "m"), "send": "SIGTERM"}}  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            project.main(
                [
                    *common,
                    f"--run.dir={run}",
                    recorder(record),
                    f"--trainer.callbacks+={json.dumps(stop)}",
                ]
            )
        assert exit_.value.code == 128 + signal.SIGTERM
        last = run / "checkpoints" / "last.ckpt"
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        (place,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
        assert (ckpt["global_step"], place["epoch"], place["batches"]) == (8, 1, 2)
        resumed = project.main(
            [*common, f"--run.dir={run}", f"--ckpt_path={last}", recorder(record)]
        )
    finally:
        torch.use_deterministic_algorithms(before)
    assert resumed.trainer.global_step == whole.trainer.global_step == 12
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    want = [json.loads(x) for x in (tmp_path / "whole.jsonl").read_text().splitlines()]
    assert [(r["step"], r["index"]) for r in lines] == [(r["step"], r["index"]) for r in want]
    a, b = resumed.model.state_dict(), whole.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_prepare_command_line_error_names_the_file(tmp_path: Path) -> None:
    root = testing.write_image_folder(
        tmp_path / "images", classes=2, per_class={"train": 3, "test": 2}, size=8
    )
    bad = root / "test" / "class0" / "zz.png"
    bad.write_bytes(b"\x89PNG broken")
    args = [
        "prepare",
        f"--data.root={root}",
        f"--data.cache_dir={tmp_path / 'c'}",
        "--data.val_size=2",
    ]
    done = run_module(args, tmp_path / "log")
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert f"error: cannot decode image {bad}" in out and "Traceback" not in out


@pytest.mark.slow
def test_a_chunk_deleted_after_prepare_is_named_and_written_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chunk deleted (or cut short) after ``prepare``: the folder is not up to date any more
    (``prepare`` said "up to date" and fit died 18 steps later in litdata's
    ``ChunkWaitTimeoutError``); the next prepare, or fit's, names the chunk and writes the
    chunks again, the same bytes as before."""
    root = testing.write_image_folder(
        tmp_path / "images", classes=2, per_class={"train": 5}, size=8
    )
    sources = {"train": ImageFolderSource(root, "train")}
    first = prepare_stream(sources, tmp_path / "chunks", progress=False)
    chunks = sorted((first.folder / "train").glob("chunk-*.bin"))
    before = {p.name: p.read_bytes() for p in chunks}
    chunk = chunks[0]
    chunk.unlink()
    again = prepare_stream(sources, tmp_path / "chunks", progress=False)
    assert again.written
    assert {p.name: p.read_bytes() for p in (again.folder / "train").glob("chunk-*.bin")} == before
    assert f"streamed data: {chunk} is missing or cut short" in capsys.readouterr().out
    chunk.write_bytes(chunk.read_bytes()[:10])  # cut short
    assert prepare_stream(sources, tmp_path / "chunks", progress=False).written
