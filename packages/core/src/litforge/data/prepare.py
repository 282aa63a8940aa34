"""Chunks for the streamed data path: a data set written once, in litdata's chunk format, into a
cache folder, then read by ``StreamingDataset`` in any order, a few megabytes at a time.

    prepared = prepare_stream({"train": ImageFolderSource(root, "train"),
                               "test": ImageFolderSource(root, "test")}, folder, val_size=0.1)

Where the examples come from (a *source*, one per split of the input):

ImageFolderSource   ``<root>/<split>/<class>/*.png|jpg``: each file's own bytes are stored (no
                    re-encoding), decoded once here to check it, and decoded again by the
                    loader's worker processes while training
CsvSource           a table with a header line, one example per line: float features, and a
                    ``label`` column (class names) or a ``target`` column (numbers)
ArraysSource        ``Arrays`` a project's ``load()`` returns: small sets, one format for both paths

``val_size`` / ``test_size`` / ``stratify`` / ``seed`` cut the ``train`` source as
``split_pool`` cuts the in-memory pool: the same items land in each split, with the same index.
Every split is written in a seeded random order (litdata shuffles chunks and the items inside a
chunk; a folder written class by class would otherwise give batches of one class).

The folder holds one sub-folder of chunks per split (``train/``, ``val/``, ``test/``: litdata's
``index.json`` and ``chunk-*.bin``) and ``litforge.json``, the manifest: the input's fingerprint
(every file's path, size and modification time, or the arrays' bytes), the class names, the
fields, and the statistics of the training split (per-channel mean and std of the images, mean
and std of every float field) computed while writing. Running it again with an unchanged input
does nothing. A prepare writes into a hidden ``.<name>.partial-<pid>`` folder beside the target
and renames it into place only when every split is complete, so an interrupted prepare never
leaves chunks that look complete, and a failed one (an unreadable file, a wrong label: the error
names it) leaves the previous chunks as they were. A file lock keeps two processes (the ranks of
a job, two jobs) from writing the same folder at once.

Why litdata's ``BinaryWriter`` and not its ``optimize``: ``optimize`` starts its worker
processes by spawning (about 9 s for 1,000 tiny items on a 2-core machine), prints a dozen lines
a user can do nothing about, reports a bad item as a traceback inside a RuntimeError, and on
failure leaves partial chunks behind. The writer it uses is the same; here the files are decoded
by a pool of forked processes, in order, with one progress bar and errors that name the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from litforge.data.arrays import Arrays
from litforge.data.image_folder import (
    CACHE_ENV_VAR,
    ImageFolderError,
    MissingFolderError,
    _decode,
    _list_split,
    image_as_seen,
)
from litforge.data.split import split_pool
from litforge.errors import LitforgeError

FORMAT_VERSION = 1  # bump when what is written changes: older folders are then rewritten
MANIFEST = "litforge.json"
SPLITS = ("train", "val", "test")
DEFAULT_CHUNK_BYTES = "16MB"  # litdata's unit of reading and shuffling; small enough to mix well
PARALLEL_MIN_ITEMS = 512  # fewer items are read in this process: a pool costs more than it saves
Read = tuple[dict[str, Any], dict[str, np.ndarray]]  # (fields to store, moments of the values)


class PrepareError(LitforgeError, ValueError):
    """Input that cannot be written as chunks (an unreadable file, a wrong label, a bad row); the
    message names the file (or item) and what is wrong. The folder's previous chunks are kept."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a job's share of a node, a container's
    quota), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_stream_root() -> Path:
    """Where streamed data sets are written unless ``cache_dir`` says otherwise:
    ``$LITFORGE_CACHE/streams`` if that variable is set, else ``~/.cache/litforge/streams``."""
    base = os.environ.get(CACHE_ENV_VAR)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "litforge"
    return root / "streams"


# ---------------------------------------------------------------------- what a source lists
@dataclass
class Listing:
    """What a source holds, found without reading every example: ``n`` examples, a
    ``fingerprint`` that changes whenever their content may have, the class names and labels
    (for stratified splits; None without), the stored ``fields`` (name -> dtype, shape and
    whether the bytes are an encoded image), and ``reader``: position -> (fields to store,
    moments), a picklable callable; ``in_workers``: worth a pool of processes (decoding);
    ``columns``: names along a field's last dim (a table's feature columns); ``vocabulary``:
    the text of a ``tokens`` field (``{"tokens": [...], "tokenize": "chars"}``)."""

    n: int
    fingerprint: str
    class_names: tuple[str, ...] | None
    labels: Tensor | None
    fields: dict[str, dict[str, Any]]
    reader: Callable[[int], Read]
    in_workers: bool = False
    columns: dict[str, tuple[str, ...]] = dataclass_field(default_factory=dict)
    vocabulary: dict[str, Any] | None = None  # the text of a tokens field: tokens, tokenize


def moments(values: np.ndarray, image: bool) -> np.ndarray:
    """[sum, sum of squares] of one example's values in float64: per channel of an image
    (C x H x W; uint8 pixels in [0, 1] units, floats as they are), else per element."""
    x = values.astype(np.float64)
    if image:
        x = x.reshape(x.shape[0], -1) / (255.0 if values.dtype == np.uint8 else 1.0)
        return np.stack([x.sum(1), (x * x).sum(1)])
    return np.stack([x, x * x])


def decode_image(data: bytes, where: str, channels: int = 3) -> np.ndarray:
    """An encoded image (PNG, JPEG, ...) as uint8, C x H x W (3: RGB, 1: grayscale): the very
    pixels ``read_image_folder`` gets from the same file (the same decoder and conversion)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image_as_seen(image).convert("RGB" if channels == 3 else "L"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = "not an image file" if isinstance(error, UnidentifiedImageError) else error
        raise PrepareError(
            f"cannot decode image {where}: {reason}; replace the file, or remove it"
        ) from error
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


class ImageFolderSource:
    """``<root>/<split>/<class>/*.{png,jpg,jpeg}`` (``split=None``: ``<root>/<class>/*``), as
    ``read_image_folder`` reads it: class names are the sorted sub-folders, labels index them,
    files sorted by name; ``channels`` 3 (RGB) or 1 (grayscale).

    ``size=None``: every image must have the size of the first; each file's own bytes are
    stored (no re-encoding) and the loader's workers decode them. ``size=(H, W)``: every image
    is resized to it here, as ``read_image_folder`` resizes (antialiased), and the pixels are
    stored (larger chunks, nothing left to decode)."""

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        path = Path(root).expanduser()
        # read_image_folder reads <root>/<split>; a pool of class folders is <parent>/<name>
        self.root, self.split = (path, split) if split is not None else (path.parent, path.name)
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
        self.channels = channels

    def describe(self) -> str:
        where = self.root.resolve() / self.split
        return f"image folder {where} size={self.size} channels={self.channels}"

    def scan(self) -> Listing:
        listing = _list_split(self.root, self.split)
        if self.size is not None:
            height, width = self.size
        else:
            try:
                with Image.open(listing.files[0]) as first:
                    width, height = image_as_seen(first).size  # EXIF turned
            except (OSError, ValueError, SyntaxError) as error:
                raise PrepareError(f"cannot read image {listing.files[0]}: {error}") from error
        signature = hashlib.sha256("\n".join(listing.signature).encode())
        signature.update(f"{self.describe()} {height}x{width}".encode())
        shape = [self.channels, height, width]
        return Listing(
            n=len(listing.files),
            fingerprint=signature.hexdigest(),
            class_names=listing.class_names,
            labels=torch.tensor(listing.labels, dtype=torch.int64),
            fields={
                "image": {"dtype": "uint8", "shape": shape, "encoded": self.size is None},
                "label": {"dtype": "int64", "shape": []},
            },
            reader=_ImageFileReader(listing.files, listing.labels, shape, self.size is not None),
            in_workers=True,
        )


class _ImageFileReader:
    """One image file: its bytes to store, decoded once to check it and count its pixels (or,
    resizing, its pixels to store)."""

    def __init__(
        self, files: Sequence[str], labels: Sequence[int], shape: list[int], resize: bool
    ) -> None:
        self.files, self.labels, self.shape, self.resize = files, labels, shape, resize

    def __call__(self, position: int) -> Read:
        path = self.files[position]
        channels, height, width = self.shape
        if self.resize:
            try:
                pixels = np.ascontiguousarray(
                    _decode(path, channels, (height, width)).transpose(2, 0, 1)
                )
            except ImageFolderError as error:  # the in-memory reader's message, as below
                cause = error.__cause__ or error
                reason = "not an image file" if isinstance(cause, UnidentifiedImageError) else cause
                raise PrepareError(
                    f"cannot decode image {path}: {reason}; replace the file, or remove it"
                ) from error
            stored: dict[str, Any] = {"image": pixels}
        else:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as error:
                raise PrepareError(f"cannot read image {path}: {error}") from error
            pixels = decode_image(data, path, channels)
            if tuple(pixels.shape[1:]) != (height, width):
                raise PrepareError(
                    f"image {path} has size {pixels.shape[1]}x{pixels.shape[2]} (height x "
                    f"width), but the first image is {height}x{width}: to resize every image "
                    f"to one size, give the source size=(H, W) (e.g. --data.size=[{height},"
                    f"{width}])"
                )
            stored = {"image": data}
        stored["label"] = np.int64(self.labels[position])
        return stored, {"image": moments(pixels, image=True)}


def image_folder_sources(
    root: str | Path, size: int | tuple[int, int] | None = None, channels: int = 3
) -> dict[str, ImageFolderSource]:
    """The sources of an image folder laid out as ``ImageFolderDataModule`` reads it:
    ``<root>/train/<class>/*`` (and ``<root>/test/<class>/*`` when there) or one pool,
    ``<root>/<class>/*``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MissingFolderError(f"no image folder at {root}")
    if not (root / "train").is_dir():
        return {"train": ImageFolderSource(root, None, size, channels)}
    sources = {"train": ImageFolderSource(root, "train", size, channels)}
    if (root / "test").is_dir():
        sources["test"] = ImageFolderSource(root, "test", size, channels)
    return sources


class ArraysSource:
    """Examples held in memory as ``Arrays`` (what a project's ``load()`` returns): every field
    is stored as it is; ``image`` (uint8, N x C x H x W) counts as the image field. ``name``
    says where they came from (the fingerprint is a hash of their bytes)."""

    def __init__(self, arrays: Arrays, name: str = "arrays") -> None:
        self.arrays, self.name = arrays, name

    def describe(self) -> str:
        return f"{self.name}: {self.arrays!r}"

    def scan(self) -> Listing:
        arrays = self.arrays.to("cpu")
        digest = hashlib.sha256(repr(arrays.class_names).encode())
        fields: dict[str, dict[str, Any]] = {}
        for name, values in arrays.items():
            digest.update(f"{name} {values.dtype} {list(values.shape)}".encode())
            digest.update(values.contiguous().view(torch.uint8).numpy().tobytes())
            dtype = str(values.dtype).removeprefix("torch.")
            fields[name] = {"dtype": dtype, "shape": list(values.shape[1:])}
        labels = arrays.get("label")
        names = arrays.class_names
        if labels is not None and names is not None:
            bad = ((labels < 0) | (labels >= len(names))).nonzero()
            if len(bad):
                i = int(bad[0, 0])
                raise PrepareError(
                    f"{self.name}: item {i} has label {int(labels[i])}, but there are "
                    f"{len(names)} classes ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
                    "labels must lie in [0, number of classes)"
                )
        return Listing(
            n=len(arrays),
            fingerprint=digest.hexdigest(),
            class_names=names,
            labels=labels.long() if labels is not None and labels.dim() == 1 else None,
            fields=fields,
            reader=_ArraysReader(arrays),
            columns=dict(getattr(arrays, "columns", None) or {}),
            vocabulary=_vocabulary(getattr(arrays, "vocabulary", None)),
        )


def _vocabulary(vocabulary: Any) -> dict[str, Any] | None:
    """A ``Vocabulary`` as plain values for the manifest (its tokens but padding and unknown)."""
    if vocabulary is None:
        return None
    return {"tokens": list(vocabulary.tokens[2:]), "tokenize": vocabulary.tokenize_mode}


class _ArraysReader:
    def __init__(self, arrays: Arrays) -> None:
        self.fields = {name: values.numpy() for name, values in arrays.items()}

    def __call__(self, position: int) -> Read:
        stored = {name: values[position] for name, values in self.fields.items()}
        counted = {}
        for name, value in stored.items():
            if name == "image" and value.ndim == 3:
                counted[name] = moments(value, image=True)
            elif np.issubdtype(value.dtype, np.floating):
                counted[name] = moments(value, image=False)
        return stored, counted


class CsvSource:
    """A table: a header line with the column names, then one example per line (a value may not
    span lines). Fields: ``features`` (float32, the ``features`` columns, by default every column
    but the label and the target), ``label`` (the class of column ``label``; class names: the
    given ``class_names``, else the sorted distinct values, numerically if all are integers) and
    ``target`` (float32, the ``target`` columns; one name gives one number per example)."""

    def __init__(
        self,
        path: str | Path,
        *,
        label: str | None = None,
        target: str | Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if label is None and target is None:
            raise ValueError("CsvSource needs a label column, a target column, or both")
        self.path = Path(path).expanduser()
        self.label = label
        self.target = [target] if isinstance(target, str) else list(target or [])
        self.scalar_target = isinstance(target, str)
        self.features = list(features) if features is not None else None
        self.class_names = tuple(class_names) if class_names is not None else None

    def describe(self) -> str:
        return (
            f"csv {self.path.resolve()} label={self.label} target={self.target} "
            f"features={self.features} classes={self.class_names}"
        )

    def scan(self) -> Listing:
        try:
            stat = self.path.stat()
            f = self.path.open("rb")
        except OSError as error:
            raise PrepareError(f"cannot read the table {self.path}: {error}") from error
        with f:
            header = _csv_row(f.readline(), self.path, 1)
            columns = self._columns(header)
            offsets: list[int] = []
            raw_labels: list[str] = []
            label_column = header.index(self.label) if self.label is not None else None
            line = 1
            while True:
                offset = f.tell()
                text = f.readline()
                if not text:
                    break
                line += 1
                if not text.strip():
                    continue
                row = _csv_row(text, self.path, line)
                if len(row) != len(header):
                    raise PrepareError(
                        f"{self.path}:{line}: {len(row)} values, but the header has "
                        f"{len(header)} columns"
                    )
                offsets.append(offset)
                if label_column is not None:
                    raw_labels.append(row[label_column].strip())
        if not offsets:
            raise PrepareError(f"the table {self.path} has no rows below its header")
        names, labels = self._labels(raw_labels, offsets)
        fields: dict[str, dict[str, Any]] = {
            "features": {"dtype": "float32", "shape": [len(columns["features"])]}
        }
        if labels is not None:
            fields["label"] = {"dtype": "int64", "shape": []}
        if self.target:
            shape = [] if self.scalar_target else [len(self.target)]
            fields["target"] = {"dtype": "float32", "shape": shape}
        digest = hashlib.sha256(f"{self.describe()} {stat.st_size} {stat.st_mtime_ns}".encode())
        class_index = {name: i for i, name in enumerate(names or ())}
        return Listing(
            n=len(offsets),
            fingerprint=digest.hexdigest(),
            class_names=names,
            labels=torch.tensor(labels, dtype=torch.int64) if labels is not None else None,
            fields=fields,
            reader=_CsvRowReader(
                str(self.path), np.asarray(offsets, dtype=np.int64), columns, class_index,
                self.label, self.scalar_target,
            ),
            in_workers=True,
            columns={"features": tuple(header[i] for i in columns["features"])},
        )  # fmt: skip

    def _columns(self, header: list[str]) -> dict[str, list[int]]:
        wanted = [c for c in [self.label, *self.target, *(self.features or [])] if c is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise PrepareError(
                f"the table {self.path} has no column {', '.join(map(repr, missing))}; its "
                f"columns are {', '.join(header)}"
            )
        if self.features is not None:
            features = self.features
        else:
            features = [c for c in header if c != self.label and c not in self.target]
        if not features:
            raise PrepareError(f"the table {self.path} has no feature column")
        return {
            "features": [header.index(c) for c in features],
            "target": [header.index(c) for c in self.target],
            "label": [header.index(self.label)] if self.label is not None else [],
        }

    def _labels(
        self, raw: list[str], offsets: list[int]
    ) -> tuple[tuple[str, ...] | None, list[int] | None]:
        if self.label is None:
            return None, None
        names = self.class_names
        if names is None:
            distinct = set(raw)
            numeric = all(v.lstrip("-").isdigit() for v in distinct)
            names = tuple(sorted(distinct, key=int if numeric else str))
        index = {name: i for i, name in enumerate(names)}
        unknown = next((i for i, v in enumerate(raw) if v not in index), None)
        if unknown is not None:
            line = _line_of(self.path, offsets[unknown])
            raise PrepareError(
                f"{self.path}:{line}: label {raw[unknown]!r} is not one of the classes "
                f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"
            )
        return names, [index[v] for v in raw]


def _csv_row(text: bytes, path: Path, line: int) -> list[str]:
    try:
        return next(csv.reader([text.decode("utf-8-sig").rstrip("\r\n")]))
    except (UnicodeDecodeError, csv.Error, StopIteration) as error:
        raise PrepareError(f"{path}:{line}: not a CSV line: {error}") from error


def _line_of(path: Path, offset: int) -> int:
    with path.open("rb") as f:
        return f.read(offset).count(b"\n") + 1


class _CsvRowReader:
    def __init__(
        self,
        path: str,
        offsets: np.ndarray,
        columns: dict[str, list[int]],
        class_index: dict[str, int],
        label: str | None,
        scalar_target: bool,
    ) -> None:
        self.path, self.offsets, self.columns = path, offsets, columns
        self.class_index, self.label, self.scalar_target = class_index, label, scalar_target
        self._file: Any = None  # opened in the process that reads

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}

    def __call__(self, position: int) -> Read:
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 (kept open for the next rows)
        self._file.seek(int(self.offsets[position]))
        text = self._file.readline()
        row = _csv_row(text, Path(self.path), -1)
        stored: dict[str, Any] = {}
        try:
            stored["features"] = np.array([row[i] for i in self.columns["features"]], np.float32)
            if self.columns["target"]:
                target = np.array([row[i] for i in self.columns["target"]], np.float32)
                stored["target"] = target[0] if self.scalar_target else target
        except ValueError as error:
            line = _line_of(Path(self.path), int(self.offsets[position]))
            raise PrepareError(f"{self.path}:{line}: {error}") from error
        if self.columns["label"]:
            stored["label"] = np.int64(self.class_index[row[self.columns["label"][0]].strip()])
        counted = {
            k: moments(np.asarray(v), image=False) for k, v in stored.items() if k != "label"
        }
        return stored, counted


# ---------------------------------------------------------------------- the prepared folder
@dataclass
class Prepared:
    """A folder of chunks and its manifest; ``written``: whether this call wrote it (False:
    it was up to date)."""

    folder: Path
    manifest: dict[str, Any]
    written: bool = False

    @property
    def class_names(self) -> tuple[str, ...] | None:
        names = self.manifest["class_names"]
        return tuple(names) if names is not None else None

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """The stored fields but ``index``: name -> {dtype, shape, encoded}."""
        return dict(self.manifest["fields"])

    @property
    def columns(self) -> dict[str, tuple[str, ...]]:
        """Names along a field's last dim (a table's feature columns), where known."""
        return {name: tuple(names) for name, names in self.manifest["columns"].items()}

    @property
    def vocabulary(self) -> Any:
        """The ``Vocabulary`` of the ``tokens`` field, if the data has one."""
        from litforge.data.text import Vocabulary

        entry = self.manifest.get("vocabulary")
        return Vocabulary(entry["tokens"], entry["tokenize"]) if entry else None

    def largest(self, name: str) -> int:
        """The largest value of an integer field over the training split."""
        return int(self.manifest["max"][name])

    def has_split(self, split: str) -> bool:
        return split in self.manifest["splits"]

    def size(self, split: str) -> int:
        """The number of examples of a split."""
        return int(self.manifest["splits"][split]["n"])

    def chunks(self, split: str) -> Path:
        """The split's folder of chunks (litdata's ``index.json`` and ``chunk-*.bin``)."""
        return self.folder / split

    def stats(self, name: str) -> tuple[Tensor, Tensor]:
        """(mean, std) of a field over the training split: per channel for the image field
        (in [0, 1] pixel units), per element for a float field."""
        try:
            entry = self.manifest["stats"][name]
        except KeyError:
            raise KeyError(f"{self.folder}: no statistics of field {name!r}") from None
        return torch.tensor(entry["mean"]), torch.tensor(entry["std"])


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a prepared folder, or None if it has none (not prepared, or another
    format)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("version") == FORMAT_VERSION else None


def broken_chunks(folder: str | Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The chunk files of a prepared folder that are missing or shorter than their index says
    (deleted or cut short after ``prepare``): a folder with any is not up to date."""
    broken = []
    for split in manifest.get("splits", {}):
        index_path = Path(folder) / split / "index.json"
        try:
            chunks = json.loads(index_path.read_text())["chunks"]
        except (OSError, ValueError, KeyError, TypeError):
            broken.append(index_path)
            continue
        for chunk in chunks:
            path = index_path.parent / str(chunk.get("filename"))
            try:
                size = path.stat().st_size
            except OSError:
                broken.append(path)
                continue
            if size == 0 or size < int(chunk.get("chunk_bytes") or 0):
                broken.append(path)
    return broken


def fingerprint(listings: Mapping[str, Listing], settings: Mapping[str, Any]) -> str:
    """The hash that decides whether a folder is up to date: the format, each source's
    fingerprint, the settings of the split."""
    parts = {"version": FORMAT_VERSION, "settings": dict(settings)}
    parts["sources"] = {name: listing.fingerprint for name, listing in sorted(listings.items())}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prepare_stream(
    sources: Mapping[str, Any],
    folder: str | Path,
    *,
    val_size: float = 0,
    test_size: float = 0,
    stratify: str | None = None,
    seed: int = 0,
    workers: int | None = None,
    chunk_bytes: str | int = DEFAULT_CHUNK_BYTES,
    progress: bool = True,
) -> Prepared:
    """Writes the chunks of a data set into ``folder``, or does nothing if they are up to date.

    ``sources``: ``"train"`` (required) and optionally ``"val"`` and ``"test"``, each an
    ``ImageFolderSource``, ``CsvSource`` or ``ArraysSource`` (anything with ``describe()`` and
    ``scan() -> Listing``). Without a ``"val"`` source, ``val_size`` items of ``"train"`` are
    held out for validation (a fraction or a count), and without ``"test"``, ``test_size`` for
    testing; ``stratify="label"`` keeps the classes' proportions in each; ``seed`` fixes the
    split and the order the examples are written in. ``workers``: processes that decode the
    files (default: one per CPU, at most 8). Returns the ``Prepared`` folder. Bad input raises
    ``PrepareError`` naming the file; the folder then keeps its previous chunks.
    """
    from filelock import FileLock  # litdata's and torch's dependency

    if "train" not in sources:
        raise ValueError(f"prepare_stream needs a 'train' source, got {sorted(sources)}")
    unknown = sorted(set(sources) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split {unknown}: the splits are {', '.join(SPLITS)}")
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "val_size": val_size if "val" not in sources else None,
        "test_size": test_size if "test" not in sources else None,
        "stratify": stratify,
        "seed": seed,
        "chunk_bytes": chunk_bytes,
    }
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        listings = {name: source.scan() for name, source in sources.items()}
        digest = fingerprint(listings, settings)
        manifest = read_manifest(folder)
        if manifest is not None and manifest.get("fingerprint") == digest:
            broken = broken_chunks(folder, manifest)
            if not broken:
                return Prepared(folder, manifest, written=False)
            print(  # under DDP the rank that holds the lock says it, and rewrites them
                f"streamed data: {broken[0]} is missing or cut short ({len(broken)} chunk(s) "
                f"in all): writing the chunks of {folder} again"
            )
        for stale in folder.parent.glob(f".{folder.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # an interrupted prepare's: never complete
        partial = folder.parent / f".{folder.name}.partial-{os.getpid()}"
        try:
            manifest = _write(
                sources, listings, partial, settings, digest, workers, chunk_bytes, progress
            )
            _replace(partial, folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return Prepared(folder, manifest, written=True)


def _write(
    sources: Mapping[str, Any],
    listings: Mapping[str, Listing],
    partial: Path,
    settings: Mapping[str, Any],
    digest: str,
    workers: int | None,
    chunk_bytes: str | int,
    progress: bool,
) -> dict[str, Any]:
    train = listings["train"]
    for name, listing in listings.items():
        if listing.fields != train.fields:
            raise PrepareError(
                f"the {name} source ({sources[name].describe()}) has the fields "
                f"{listing.fields}, but the train source has {train.fields}"
            )
        if listing.class_names != train.class_names:
            raise PrepareError(
                f"the {name} source has the classes {listing.class_names}, but the train "
                f"source has {train.class_names}; both must have the same classes"
            )
    members = _split_members(train, settings)
    plan: dict[str, tuple[Listing, Tensor]] = {}
    for split in SPLITS:
        if split in listings and split != "train":
            plan[split] = (listings[split], torch.arange(listings[split].n))
        elif (part := members.get(split)) is not None:
            plan[split] = (train, part)
    partial.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "fingerprint": digest,
        "sources": {name: source.describe() for name, source in sources.items()},
        "settings": dict(settings),
        "class_names": list(train.class_names) if train.class_names is not None else None,
        "fields": train.fields,
        "columns": {name: list(names) for name, names in train.columns.items()},
        "vocabulary": train.vocabulary,
        "splits": {},
        "stats": {},
    }
    for offset, (split, (listing, positions)) in enumerate(plan.items()):
        sums, maxima = _write_split(
            split, listing, positions, partial / split, seed=int(settings["seed"]) + offset,
            workers=workers, chunk_bytes=chunk_bytes, progress=progress,
        )  # fmt: skip
        manifest["splits"][split] = {"n": len(positions)}
        if split == "train":
            manifest["stats"] = _statistics(sums, listing.fields, len(positions))
            manifest["max"] = maxima
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _split_members(train: Listing, settings: Mapping[str, Any]) -> dict[str, Tensor | None]:
    """The positions of the train source in each split, cut as ``split_pool`` cuts a pool."""
    fields = {"position": torch.arange(train.n)}
    stratify = settings["stratify"]
    if stratify is not None:
        if stratify != "label" or train.labels is None:
            raise PrepareError(f"stratify={stratify!r}: the source has no labels to stratify by")
        fields["label"] = train.labels
    try:
        parts = split_pool(
            Arrays(**fields),
            settings["val_size"] or 0,
            settings["test_size"] or 0,
            stratify,
            int(settings["seed"]),
        )
    except ValueError as err:
        raise PrepareError(str(err)) from err
    return {
        split: part["position"] if part is not None else None for split, part in zip(SPLITS, parts)
    }


def _write_split(
    split: str,
    listing: Listing,
    positions: Tensor,
    out: Path,
    *,
    seed: int,
    workers: int | None,
    chunk_bytes: str | int,
    progress: bool,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Writes the examples at ``positions`` of ``listing`` (their index: their place in
    ``positions``) in a seeded random order; returns the summed moments of their fields and
    the largest value of each integer field."""
    order = torch.randperm(len(positions), generator=torch.Generator().manual_seed(seed))
    index = order.tolist()
    sources = positions[order].tolist()
    from litforge.data._litdata import BinaryWriter  # litdata: imported when chunks are written

    writer = BinaryWriter(str(out), chunk_bytes=chunk_bytes)
    sums: dict[str, np.ndarray] = {}
    maxima: dict[str, int] = {}  # of the integer fields (a vocabulary's size: the largest id)
    with tqdm(
        total=len(index), desc=f"{split}: writing chunks", unit="ex", disable=not progress,
        mininterval=0.5,
    ) as bar:  # fmt: skip
        for k, (stored, counted) in enumerate(_read_all(listing, sources, workers)):
            writer.add_item(k, {"index": np.int64(index[k]), **stored})
            for name, value in counted.items():
                sums[name] = sums[name] + value if name in sums else value
            for name, value in stored.items():
                if isinstance(value, np.ndarray | np.integer) and np.issubdtype(
                    value.dtype, np.integer
                ):
                    top = int(value.max()) if value.size else 0
                    maxima[name] = max(maxima.get(name, top), top)
            if k % 256 == 255:
                bar.update(256)
        bar.update(len(index) - bar.n)
    writer.done()
    # merge() would wait for one index file per process of a running DDP job (litdata reads the
    # world size from torch.distributed); this process wrote all of them.
    writer._merge_no_wait()
    return sums, maxima


_READER: Callable[[int], Read] | None = None  # the pool's reader, set in each forked process


def _set_reader(reader: Callable[[int], Read]) -> None:
    global _READER
    _READER = reader


def _read_one(position: int) -> Read:
    assert _READER is not None
    return _READER(position)


def _read_all(listing: Listing, positions: list[int], workers: int | None) -> Iterator[Read]:
    """``listing.reader`` over ``positions``, in order: in this process, or, for sources that
    decode files, in a pool of forked processes (the reader is inherited, never pickled)."""
    n_workers = workers if workers is not None else min(8, usable_cpus())
    if not listing.in_workers or n_workers <= 1 or len(positions) < PARALLEL_MIN_ITEMS:
        yield from map(listing.reader, positions)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(n_workers, initializer=_set_reader, initargs=(listing.reader,)) as pool:
        yield from pool.imap(_read_one, positions, chunksize=64)


def _statistics(
    sums: Mapping[str, np.ndarray], fields: Mapping[str, Mapping[str, Any]], n: int
) -> dict[str, dict[str, list[Any]]]:
    """Mean and (unbiased) std from summed moments, as torch computes them over the arrays."""
    stats = {}
    for name, (total, squares) in sums.items():
        shape = fields[name]["shape"]
        count = n * (int(np.prod(shape[1:])) if name == "image" else 1)
        mean = total / count
        var = np.maximum(squares - count * mean * mean, 0.0) / max(count - 1, 1)
        stats[name] = {"mean": mean.tolist(), "std": np.sqrt(var).tolist()}
    return stats


def _replace(partial: Path, folder: Path) -> None:
    """Puts the complete ``partial`` folder in the place of ``folder`` (two renames)."""
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    for stale in folder.parent.glob(f".{folder.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
