"""The streamed data path: data larger than memory, read from chunks on disk while training.

``StreamedDataModule`` and ``StreamedImageDataModule`` are ``ArrayDataModule`` and
``ImageDataModule`` with one more choice, ``stream``:

- ``stream: false``: everything as in memory (``load()`` -> Arrays, batches gathered on the
  device);
- ``stream: true``: the data set is written once into chunks (``litforge.data.prepare``: from the
  module's ``sources()``, by default its own ``load()``; an image folder or a CSV file for sets
  larger than memory) in a cache folder, then read by litdata's ``StreamingDataset`` /
  ``StreamingDataLoader``: worker processes read and decode the examples, a few megabytes of
  chunks at a time; the main process moves each batch to the device, normalises and augments it
  there (``ImageTransform``: the same shifts and flips as in memory) and builds the task's
  ``Example``. Every task base, metric and diagnostic works unchanged.

Shuffling is seeded: the order of an epoch depends on (seed, epoch) only, like the in-memory
path's (litdata permutes the chunks, then the items inside each). Under DDP litdata gives each
rank its own items: a training epoch sees each example at most once across ranks, the ranks the
same number of batches (``drop_last``: at most one batch per rank is left out); evaluation sees
every example exactly once (shards may differ by some items; metrics and diagnostics gather
across ranks). ``StreamLoader`` keeps its place in the epoch in Lightning's checkpoints
(``state_dict``: litdata's own, plus the batches handed out), so a run resumed mid-epoch
continues with the very batches an uninterrupted run gets, the augmentation's draws included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor

if TYPE_CHECKING:  # litdata (and boto3 under it) is imported when a stream is first read
    from litdata import StreamingDataset
from litforge.data.arrays import Arrays
from litforge.data.augment import FlipMode, ImageTransform
from litforge.data.device import Fields, Seeds, Transform
from litforge.data.images import ImageDataModule, ImageFolderDataModule
from litforge.data.module import ArrayDataModule
from litforge.data.prepare import (
    ArraysSource,
    Prepared,
    decode_image,
    default_stream_root,
    image_folder_sources,
    prepare_stream,
    usable_cpus,
)
from litforge.errors import DataError
from litforge.tasks.contracts import Split
from litforge.tasks.structs import ClassificationExample, Example


class _NoDropLastWarning(logging.Filter):
    """litdata warns that evaluation without ``drop_last`` under DDP may hang collectives; the
    evaluation here runs none per batch (metrics and diagnostics gather at the epoch's end)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "drop_last" not in str(record.msg)


logging.getLogger("litdata.streaming.dataset").addFilter(_NoDropLastWarning())


class Decode:
    """Turns a stored item into tensors, in the loader's worker process: encoded images are
    decoded (RGB uint8, C x H x W), every other field takes its dtype from the manifest."""

    def __init__(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        self.fields = {"index": {"dtype": "int64", "shape": []}, **fields}

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Tensor]:
        out = {}
        for name, value in item.items():
            spec = self.fields[name]
            if spec.get("encoded"):
                where = f"item {item['index']}"
                out[name] = torch.from_numpy(decode_image(value, where, spec["shape"][0]))
            else:
                out[name] = torch.from_numpy(np.array(value, dtype=np.dtype(spec["dtype"])))
        return out


def streaming_dataset(
    prepared: Prepared, split: str, *, shuffle: bool, drop_last: bool, seed: int
) -> StreamingDataset:
    """litdata's dataset over one split's chunks, its items decoded into tensors."""
    from litforge.data._litdata import StreamingDataset

    return StreamingDataset(
        str(prepared.chunks(split)),
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
        # every item of a chunk in a random place (windows of 256 items would put the same items
        # together in a batch every epoch), each read alone (litdata's default decodes a window
        # of 256 items for one: 250x slower when the items come in a random order)
        item_shuffle_window="full",
        batch_decode=0,
        transform=Decode(prepared.fields),
    )


class Chain:
    """Transforms applied one after the other (each one's ``start_epoch`` and ``skip`` too)."""

    def __init__(self, *transforms: Transform | None) -> None:
        self.transforms = [t for t in transforms if t is not None]

    def start_epoch(self, epoch: int, n_items: int, seeds: Seeds) -> None:
        for t in self.transforms:
            t.start_epoch(epoch, n_items, seeds)

    def skip(self, index: Tensor) -> None:
        for t in self.transforms:
            skip = getattr(t, "skip", None)
            if callable(skip):
                skip(index)

    def __call__(self, fields: Fields, index: Tensor) -> Fields:
        for t in self.transforms:
            fields = t(fields, index)
        return fields


class Standardize:
    """``(x - mean) / std`` of float fields, per batch on its device: what the in-memory path
    does once to the stored arrays with ``standardize``."""

    def __init__(self, stats: Mapping[str, tuple[Tensor, Tensor]]) -> None:
        self.stats = dict(stats)

    def start_epoch(self, epoch: int, n_items: int, seeds: Seeds) -> None:
        pass

    def skip(self, index: Tensor) -> None:
        pass

    def __call__(self, fields: Fields, index: Tensor) -> Fields:
        out = dict(fields)
        for name, (mean, std) in self.stats.items():
            values = fields[name]
            out[name] = (values - mean.to(values.device, values.dtype)) / std.to(
                values.device, values.dtype
            )
        return out


class StreamLoader:
    """Batches of a streamed split as the task's Examples, on ``device``, transformed there.

    Args:
    dataset: litdata's dataset of the split (shuffled or not; built in the process that trains,
      after DDP has started, so that it knows this process's rank).
    build: makes the task's Example from (index, fields of the batch).
    batch_size, drop_last, num_workers: as a DataLoader's (workers read and decode).
    transform: normalisation / augmentation of a batch's fields on the device.
    n_items: the split's number of examples (the transform draws a flip per example).
    seed, epoch: the order and the transform's draws depend only on (seed, epoch()).
    """

    def __init__(
        self,
        dataset: StreamingDataset,
        build: Callable[[Tensor, Fields], Example],
        *,
        batch_size: int,
        drop_last: bool = False,
        num_workers: int = 0,
        transform: Transform | None = None,
        n_items: int,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        # A DataLoader draws its workers' seed from the global generator at each iteration's
        # start, which would move dropout's draws (a resumed run starts one more iteration than
        # an uninterrupted one); its own generator, seeded by (seed, epoch), leaves them alone.
        self._generator = torch.Generator()
        from litforge.data._litdata import StreamingDataLoader

        self.loader = StreamingDataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
            generator=self._generator,
        )
        self.build, self.transform, self.n_items = build, transform, n_items
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, dataset.shuffle
        self.seeds, self.epoch = Seeds(seed, self.device), epoch
        self.world_size = dataset.distributed_env.world_size
        self._position = (-1, 0)  # (epoch, batches handed out) of the iteration under way
        self._resume: dict[str, Any] | None = None  # a loaded state, for the next iteration

    def __len__(self) -> int:
        return len(self.loader)

    # ------------------------------------------------------------------ the place in the epoch
    def _fingerprint(self) -> dict[str, Any]:
        """What fixes the order and the batches: a saved place means nothing for another."""
        return {
            "n_items": self.n_items,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "seed": self.seeds.seed,
            "world_size": self.world_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """The place in the epoch: its number, the batches handed out so far, and litdata's
        own state (which items each worker has read). Lightning's fit loop stores it in every
        checkpoint; a batch counts as handed out once yielded, as in ``DeviceLoader``."""
        epoch, batches = self._position
        state = {"epoch": epoch, "batches": batches, **self._fingerprint()}
        if 0 < batches < len(self):
            state["stream"] = self.loader.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next iteration, if it is of the same epoch, continues after the batches the state
        says were handed out. A state of another loader (another set, batch size, seed, world
        size) is ignored with a warning: the epoch then starts from its first batch."""
        mismatch = {
            k: (state.get(k), v) for k, v in self._fingerprint().items() if state.get(k) != v
        }
        if mismatch:
            rank_zero_warn(
                "StreamLoader: the checkpoint's place in the epoch is of another loader "
                f"(saved, now: {mismatch}); the epoch starts from its first batch"
            )
            self._resume = None
            return
        self._resume = dict(state)

    def __iter__(self) -> Iterator[Example]:
        epoch = self.epoch()
        resume, self._resume = self._resume, None  # a loaded place serves one iteration only
        skip = 0
        if resume is not None and resume["epoch"] == epoch and "stream" in resume:
            skip = int(resume["batches"])
            self.loader.load_state_dict(resume["stream"])  # litdata continues after them
        else:
            # litdata counts epochs itself (its __iter__ adds one): the order follows the
            # trainer's epoch whatever this loader iterated before
            self.loader.restore = False
            self.loader.current_epoch = epoch
        if self.transform is not None:
            self.transform.start_epoch(epoch, self.n_items, self.seeds)
            skip_draws = getattr(self.transform, "skip", None)
            if callable(skip_draws):  # the draws of the batches handed out before the checkpoint
                for _ in range(skip):
                    skip_draws(torch.empty(self.batch_size, dtype=torch.long, device=self.device))
        self._generator.manual_seed(self.seeds.seed * 1_000_003 + epoch)
        self._position = (epoch, skip)
        for number, batch in enumerate(self.loader, start=skip):
            fields = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            index = fields.pop("index")
            if self.transform is not None:
                fields = self.transform(fields, index)
            self._position = (epoch, number + 1)
            yield self.build(index, fields)


def default_workers() -> int:
    """Loader worker processes when ``num_workers`` is not given: one per usable CPU but one
    (the one that trains), 1 to 8."""
    return max(1, min(8, usable_cpus() - 1))


class _Streamed:
    """What a streamed data module adds to ArrayDataModule (a mixin: ``StreamedDataModule`` and
    ``StreamedImageDataModule`` put it before their in-memory base)."""

    stream: bool
    cache_dir: str | None
    num_workers: int | None
    _prepared: Prepared | None
    _stream_device: torch.device
    _restored: dict[str, Any] | None
    # from ArrayDataModule
    name: str
    batch_size: int
    eval_batch_size: int
    val_size: float
    test_size: float
    stratify: str | None
    standardize: tuple[str, ...]
    stats: dict[str, tuple[Tensor, Tensor]]
    seed: int
    trainer: Any

    def _init_stream(self, stream: bool, cache_dir: str | None, num_workers: int | None) -> None:
        self.stream, self.cache_dir, self.num_workers = stream, cache_dir, num_workers
        self._prepared = None
        self._stream_device = torch.device("cpu")

    # ------------------------------------------------------------------ what a task may override
    def sources(self) -> dict[str, Any]:
        """Where the streamed chunks come from: ``{"train": source, "test": source}`` (test is
        optional; ``val_size`` / ``test_size`` cut the train source as the in-memory path cuts
        ``load()``'s pool). By default this module's own ``load()``, held in memory once while
        the chunks are written. Override it for data larger than memory, e.g.
        ``{"train": ImageFolderSource(root, "train"), "test": ImageFolderSource(root, "test")}``
        or ``{"train": CsvSource(path, label="species")}``."""
        loaded = self.load()  # type: ignore[attr-defined]
        pool, test = (loaded, None) if isinstance(loaded, Arrays) else loaded
        where = f"{type(self).__name__}.load()"
        out: dict[str, Any] = {"train": ArraysSource(pool, f"{where} train")}
        if test is not None:
            out["test"] = ArraysSource(test, f"{where} test")
        return out

    # ------------------------------------------------------------------ the chunks
    def stream_folder(self, sources: Mapping[str, Any] | None = None) -> Path:
        """The data set's folder of chunks: ``<cache_dir>/<name>-<hash of where the data comes
        from and how it is split>`` (``cache_dir``: ``~/.cache/litforge/streams`` by default)."""
        import hashlib

        sources = sources if sources is not None else self.sources()
        identity = [
            [(split, source.describe()) for split, source in sorted(sources.items())],
            [self.val_size, self.test_size, self.stratify, self.seed],
        ]
        digest = hashlib.sha256(repr(identity).encode()).hexdigest()[:12]
        root = Path(self.cache_dir).expanduser() if self.cache_dir else default_stream_root()
        return root / f"{self.name}-{digest}"

    @property
    def prepared(self) -> Prepared:
        """The chunks, written on first use if they are missing or out of date (every process
        may ask: a file lock lets the first write them and the others read them)."""
        return self.prepare()

    def prepare(self, announce: bool = True) -> Prepared:
        """Writes the chunks if they are missing or out of date (once per module; ``python -m
        <project> prepare`` calls it ahead of training); returns the prepared folder.
        ``announce``: say where they are, on one line."""
        if self._prepared is None:
            sources = self.sources()
            folder = self.stream_folder(sources)
            prepared = prepare_stream(
                sources,
                folder,
                val_size=self.val_size,
                test_size=self.test_size,
                stratify=self.stratify,
                seed=self.seed,
                progress=getattr(rank_zero_only, "rank", 0) == 0,
            )
            if announce:
                sizes = ", ".join(f"{s} {prepared.size(s)}" for s in ("train", "val", "test")
                                  if prepared.has_split(s))  # fmt: skip
                done = "written" if prepared.written else "up to date"
                rank_zero_info(f"streamed data: {folder} ({done}; {sizes} examples)")
            self._prepared = prepared
        return self._prepared

    def prepare_data(self) -> None:
        if self.stream:
            self.prepare()
        else:
            super().prepare_data()  # type: ignore[misc]

    def setup(self, stage: str) -> None:
        if not self.stream:
            return super().setup(stage)  # type: ignore[misc]
        trainer = self.trainer
        self._stream_device = trainer.strategy.root_device if trainer else torch.device("cpu")
        self.prepare()
        for name in self.standardize:  # as in memory: what a model reports its units from
            mean, std = self.prepared.stats(name)
            self.stats[name] = (mean, std.clamp_min(1e-8))
        if stage == "fit" and trainer is not None and not self.has_split("val"):
            trainer.limit_val_batches = 0  # as in memory: no warning about an empty loader

    # ------------------------------------------------------------------ the TaskData contract
    @property
    def class_names(self) -> tuple[str, ...] | None:
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super().class_names  # type: ignore[misc, no-any-return]
        return self.prepared.class_names

    # The values the model takes from the data (num_features, target_shape, out_channels, ...)
    # read one item of a field of the training set: streamed, a stand-in of zeros with the
    # field's dtype and shape, from the manifest, serves them all.
    @property
    def _train(self) -> Arrays:
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super()._train  # type: ignore[misc, no-any-return]
        fields = {name: self._stand_in(name) for name in self.prepared.fields}
        return Arrays(
            self.class_names,
            columns=self.prepared.columns,
            vocabulary=self.prepared.vocabulary,
            **fields,
        )

    def _stand_in(self, name: str) -> Tensor:
        spec = self.prepared.fields[name]
        return torch.zeros((1, *spec["shape"]), dtype=getattr(torch, spec["dtype"]))

    def _field(self, name: str, wanted_by: str) -> Tensor:
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super()._field(name, wanted_by)  # type: ignore[misc, no-any-return]
        if name not in self.prepared.fields:
            raise DataError(
                f"{type(self).__name__}.{wanted_by} reads the {name!r} field, but the data's "
                f"fields are {list(self.prepared.fields)}: remove {wanted_by} from the model's "
                f"arguments, or give the data a {name!r} field"
            )
        return self._stand_in(name)

    @property
    def vocab_size(self) -> int:
        """The number of token ids (padding and unknown included): an embedding's size."""
        if not self.stream or self.prepared.vocabulary is not None:
            return super().vocab_size  # type: ignore[misc, no-any-return]
        self._field("tokens", "vocab_size")
        return self.prepared.largest("tokens") + 1

    def has_split(self, split: Split) -> bool:
        if not self.stream:
            return super().has_split(split)  # type: ignore[misc, no-any-return]
        return self.prepared.has_split(split)

    def _stream_transform(self, split: Split) -> Transform | None:
        """Standardisation (``standardize``) then the task's transform of the split."""
        own = self.transform(split)  # type: ignore[attr-defined]
        if not self.standardize:
            return own
        stats = {}
        for name in self.standardize:
            mean, std = self.prepared.stats(name)
            stats[name] = (mean, std.clamp_min(1e-8))
        return Chain(Standardize(stats), own)

    def sample(self, split: Split, n: int) -> Example:
        if not self.stream:
            return super().sample(split, n)  # type: ignore[misc, no-any-return]
        if not self.has_split(split):
            raise ValueError(f"{type(self).__name__} has no {split} set")
        dataset = streaming_dataset(self.prepared, split, shuffle=False, drop_last=False, seed=0)
        items = [dataset[i] for i in range(min(n, self.prepared.size(split)))]
        fields = {k: torch.stack([item[k] for item in items]).to(self._stream_device)
                  for k in items[0]}  # fmt: skip
        index = fields.pop("index")
        transform = self._stream_transform("test")  # as the model sees it, without augmentation
        if transform is not None:
            transform.start_epoch(0, self.prepared.size(split), Seeds(self.seed, index.device))
            fields = transform(fields, index)
        return self.make_example(index, fields)  # type: ignore[attr-defined, no-any-return]

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: Split, train: bool) -> Any:
        if not self.stream:
            return super()._loader(split, train)  # type: ignore[misc]
        if not self.has_split(split):
            return []
        trainer = self.trainer
        # overfit_batches (--run.debug=overfit): the same first batches every epoch
        shuffle = train and not getattr(trainer, "overfit_batches", 0)
        dataset = streaming_dataset(
            self.prepared, split, shuffle=shuffle, drop_last=train, seed=self.seed
        )
        return StreamLoader(
            dataset,
            self.make_example,  # type: ignore[attr-defined]
            batch_size=self.batch_size if train else self.eval_batch_size,
            drop_last=train,
            num_workers=self.num_workers if self.num_workers is not None else default_workers(),
            transform=self._stream_transform(split),
            n_items=self.prepared.size(split),
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            device=self._stream_device,
        )

    def train_dataloader(self) -> Any:
        if not self.stream:
            return super().train_dataloader()  # type: ignore[misc]
        loader = self._loader("train", train=True)
        if len(loader) == 0:
            raise DataError(
                f"{type(self).__name__}: batch_size={self.batch_size} is larger than this "
                f"process's share of the training set ({self.prepared.size('train')} examples "
                "in all): no batch"
            )
        return loader


class StreamedDataModule(_Streamed, ArrayDataModule):
    """ArrayDataModule that can stream: with ``stream: true`` the data set is written once into
    chunks in a cache folder and read from them while training, so it need not fit in memory.

    The other arguments are ArrayDataModule's. A task implements ``load()`` (both paths) or
    ``sources()`` (what the chunks are written from: an image folder, a CSV file; see
    ``litforge.data.prepare``).

    Args:
        stream: read the data from chunks on disk (true) or hold it in memory (false).
        cache_dir: where the chunks are written (default ``~/.cache/litforge/streams``, or
            ``$LITFORGE_CACHE/streams``); each data set gets its own folder in it.
        num_workers: processes that read and decode batches (default: one per CPU but one,
            at most 8).
    """

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        standardize: tuple[str, ...] = (),
        seed: int = 0,
        stream: bool = True,
        cache_dir: str | None = None,
        num_workers: int | None = None,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, val_size, test_size, stratify, standardize, seed
        )
        self._init_stream(stream, cache_dir, num_workers)


class StreamedImageDataModule(_Streamed, ImageDataModule):
    """ImageDataModule that can stream: with ``stream: true`` the images are written once into
    chunks in a cache folder (an image folder's files as they are, decoded by the loader's
    workers) and read from them while training; normalisation, shifts and flips still run on
    the device, batch by batch, with the training split's statistics from the chunks.

    The other arguments are ImageDataModule's (``--help`` shows their help too).

    Args:
        stream: read the images from chunks on disk (true) or hold them in memory (false).
        cache_dir: where the chunks are written (default ``~/.cache/litforge/streams``, or
            ``$LITFORGE_CACHE/streams``); each data set gets its own folder in it.
        num_workers: processes that read and decode batches (default: one per CPU but one,
            at most 8).
    """

    example_type: ClassVar[type[Example]] = ClassificationExample

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
        stream: bool = True,
        cache_dir: str | None = None,
        num_workers: int | None = None,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, val_size, test_size, stratify, translate, flip, seed
        )
        self._init_stream(stream, cache_dir, num_workers)

    def _image_shape(self) -> list[int]:
        spec = self.prepared.fields.get(self.image_field)
        if spec is None or spec["dtype"] != "uint8" or len(spec["shape"]) != 3:
            raise ValueError(
                f"{type(self).__name__}: the {self.image_field!r} field must be uint8 "
                f"C x H x W, got {spec}"
            )
        return list(spec["shape"])

    @property
    def in_channels(self) -> int:
        """Channels of the images (1 for grayscale, 3 for RGB)."""
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super().in_channels
        return self._image_shape()[0]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super().image_size
        _, height, width = self._image_shape()
        return height, width

    def _statistics(self) -> ImageTransform:
        """Per-channel mean and std of the training images, in [0, 1] pixel units."""
        if not self.stream or self._restored is not None:  # restored: from a checkpoint
            return super()._statistics()
        if self._display is None:  # type: ignore[has-type]
            mean, std = self.prepared.stats(self.image_field)
            self._display = ImageTransform(
                mean.float(), std.float().clamp_min(1e-3), field=self.image_field
            )
        return self._display


class StreamedImageFolderDataModule(StreamedImageDataModule, ImageFolderDataModule):
    """ImageFolderDataModule that can stream: ``<root>/<class>/*`` (one pool) or
    ``<root>/train/<class>/*`` and ``<root>/test/<class>/*``, written once into chunks with
    ``stream: true`` (each file's own bytes, decoded by the loader's workers; with ``size``,
    the resized pixels) and read from them while training: a folder larger than memory.

    Args:
        root: the folder (``make train-<project> DATA=...`` sets it).
        size: (height, width) every image is resized to, antialiased; one number for a square;
            null: the images' own size, which must then be the same for all of them.
        channels: 3 (RGB) or 1 (grayscale).
        stream: read the images from chunks on disk (true) or hold them in memory (false).
        cache_dir: where the chunks are written (default ``~/.cache/litforge/streams``).
        num_workers: processes that read and decode batches (default: one per CPU but one,
            at most 8).

    The other arguments are ImageDataModule's.
    """

    name = "images"

    def __init__(
        self,
        root: str = "data/images",
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
        stream: bool = True,
        cache_dir: str | None = None,
        num_workers: int | None = None,
    ) -> None:
        ImageFolderDataModule.__init__(
            self,
            root,
            size,
            channels,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            test_size=test_size,
            stratify=stratify,
            translate=translate,
            flip=flip,
            seed=seed,
        )
        self._init_stream(stream, cache_dir, num_workers)

    def sources(self) -> dict[str, Any]:
        return dict(image_folder_sources(self.root, self.size, self.channels))
