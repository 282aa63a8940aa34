"""Read ``<root>/<split>/<class>/*.{png,jpg,jpeg}`` into `ImageArrays`, with a disk cache.

The first read decodes every image with PIL (resized to ``size`` when given, antialiased); the
decoded arrays are then saved as one ``.npz`` file in a cache folder, keyed by the folder's
path, the split, the size and channels asked for, and every file's (relative path, size, mtime),
so that a later read of an unchanged folder only loads that file and any change to the folder
or the request decodes it afresh. The source folder is only read, never written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from litforge.data.arrays import ImageArrays
from litforge.errors import LitforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CACHE_ENV_VAR = "LITFORGE_CACHE"
# Decoding tiny images (CIFAR's 32x32) is bound by Python overhead under the GIL, and threads
# only slow it down; PIL releases the GIL while decoding, so threads pay off for larger images.
_THREAD_MIN_PIXELS = 96 * 96
_MAX_THREADS = 4
_CHUNK = 256
# Bump when the cache layout or the decoding changes, so old cache files are not reused.
_CACHE_VERSION = 3
# PIL's bicubic filter widens with the scale when it shrinks an image: antialiased (as
# torchvision's resize with antialias=True, which is written to match it).
RESAMPLE = Image.Resampling.BICUBIC
_CACHE_KEY = "split"


class ImageFolderError(LitforgeError, ValueError):
    """An image folder whose content cannot be read into arrays; the message names the path."""


class MissingFolderError(LitforgeError, FileNotFoundError):
    """The image folder, or one of its splits, is not there; the message names the path."""


@dataclass(frozen=True)
class _Listing:
    """The image files of one split, sorted by class then name, with labels and stat data."""

    root: Path
    split_dir: Path
    size: tuple[int, int] | None
    channels: int
    class_names: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    # One "<class>/<file>\0<size>\0<mtime_ns>" line per file: what the cache key hashes.
    signature: tuple[str, ...]


def read_image_folder(
    root: str | Path,
    split: str,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ImageArrays:
    """Read ``<root>/<split>/<class>/*.{png,jpg,jpeg}`` as uint8 images, N x C x H x W.

    Class names are the sorted sub-folder names of ``<root>/<split>`` and labels index them; the
    files of a class are sorted by name. ``size``: the (height, width) every image is resized to
    (one number: a square), antialiased (PIL's bicubic filter); None: every image must have the
    size of the first. ``channels``: 3 (RGB) or 1 (grayscale). ``cache_dir`` defaults to
    [`default_cache_dir`][litforge.default_cache_dir]. Missing folders raise
    [`MissingFolderError`][litforge.MissingFolderError] (a FileNotFoundError), bad content
    [`ImageFolderError`][litforge.ImageFolderError]; both are LitforgeErrors, one line on the
    command line.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    hw = (size, size) if isinstance(size, int) else (None if size is None else tuple(size))
    if hw is not None and (len(hw) != 2 or min(hw) < 1):
        raise ValueError(f"size must be (height, width) of positive numbers, got {size}")
    listing = _list_split(Path(root), split, hw, channels)  # type: ignore[arg-type]
    cache_path = _cache_path(listing, cache_dir)
    cached = _load_cache(cache_path, len(listing.files), listing.class_names)
    if cached is not None and (hw is None or tuple(cached.images.shape[2:]) == hw):
        return cached  # the request is in the cache's name: same channels, same size
    arrays = _decode_listing(listing, progress)
    _save_cache(arrays, cache_path)
    return arrays


def default_cache_dir() -> Path:
    """``$LITFORGE_CACHE/image_folder`` if that variable is set, else ``~/.cache/litforge/...``."""
    base = os.environ.get(CACHE_ENV_VAR)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "litforge"
    return root / "image_folder"


def save_arrays_npz(path: str | Path, arrays: Mapping[str, ImageArrays]) -> None:
    """Save named arrays (e.g. ``{"train": ..., "test": ...}``) as one uncompressed ``.npz``.

    The file is written atomically: to a temp file in the same folder, then renamed.
    """
    fields: dict[str, Any] = {}
    for name, item in arrays.items():
        fields[f"{name}.images"] = item.images.numpy()
        fields[f"{name}.labels"] = item.labels.numpy()
        fields[f"{name}.class_names"] = np.array(item.class_names, dtype=str)
    with _atomic_write(Path(path)) as f:
        np.savez(f, **fields)


def load_arrays_npz(path: str | Path) -> dict[str, ImageArrays]:
    """Load the named arrays saved by [`save_arrays_npz`][litforge.save_arrays_npz]."""
    with np.load(path, allow_pickle=False) as npz:
        names = [key.removesuffix(".images") for key in npz.files if key.endswith(".images")]
        return {
            name: ImageArrays(
                torch.from_numpy(npz[f"{name}.images"]),
                torch.from_numpy(npz[f"{name}.labels"]),
                tuple(str(c) for c in npz[f"{name}.class_names"]),
            )
            for name in names
        }


def _list_split(
    root: Path, split: str, size: tuple[int, int] | None = None, channels: int = 3
) -> _Listing:
    """Find the class folders and image files of ``<root>/<split>``, with clear errors."""
    if not root.is_dir():
        raise MissingFolderError(f"image folder root {root} does not exist (or is not a folder)")
    split_dir = root / split
    if not split_dir.is_dir():
        raise MissingFolderError(f"split folder {split_dir} does not exist (or is not a folder)")
    class_dirs = sorted(
        (p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not class_dirs:
        raise ImageFolderError(f"split folder {split_dir} has no class sub-folders")
    files: list[str] = []
    labels: list[int] = []
    signature: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        images = _scan_images(class_dir)
        if not images:
            raise ImageFolderError(
                f"class folder {class_dir} has no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        prefix = class_dir.name + "/"
        for entry in images:
            stat = entry.stat()
            files.append(entry.path)
            signature.append(f"{prefix}{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}")
        labels.extend([label] * len(images))
    class_names = tuple(p.name for p in class_dirs)
    return _Listing(
        root, split_dir, size, channels, class_names, tuple(files), tuple(labels), tuple(signature)
    )


def _scan_images(class_dir: Path) -> list[os.DirEntry[str]]:
    """The image files directly in ``class_dir``, sorted by name (``os.scandir`` is fast)."""
    with os.scandir(class_dir) as entries:
        images = [
            entry
            for entry in entries
            if entry.name.lower().endswith(IMAGE_SUFFIXES)
            and not entry.name.startswith(".")
            and entry.is_file()
        ]
    return sorted(images, key=lambda entry: entry.name)


def _cache_path(listing: _Listing, cache_dir: str | Path | None) -> Path:
    """The cache file for ``listing``: ``<stem>-<hash of its files>.npz``."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return folder / f"{_cache_stem(listing)}-{_files_hash(listing)}.npz"


def _cache_stem(listing: _Listing) -> str:
    """``<root name>-<split>-<size>-<hash of the resolved root, split, size and channels>``: one
    per folder, split and request (each size asked for keeps its own file)."""
    root = listing.root.resolve()
    request = f"{listing.size}\0{listing.channels}"
    key = f"v{_CACHE_VERSION}\0{root}\0{listing.split_dir.name}\0{request}"
    where = hashlib.sha256(key.encode())
    shown = "x".join(map(str, listing.size)) if listing.size else "own"
    stem = f"{root.name}-{listing.split_dir.name}-{shown}-c{listing.channels}"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)
    return f"{stem}-{where.hexdigest()[:12]}"


def _files_hash(listing: _Listing) -> str:
    """A hash of every file's (relative path, size, mtime_ns) line, in order."""
    return hashlib.sha256("\n".join(listing.signature).encode()).hexdigest()[:24]


def _save_cache(arrays: ImageArrays, path: Path) -> None:
    """Save ``arrays`` at ``path`` and drop older caches of the folder; warn if it cannot."""
    try:
        save_arrays_npz(path, {_CACHE_KEY: arrays})
        _remove_stale_caches(path)
    except OSError as error:
        warnings.warn(f"could not write the image cache {path}: {error}", stacklevel=3)


def _remove_stale_caches(path: Path) -> None:
    """Delete the older cache files of the same folder and split as ``path`` (other hashes)."""
    stem = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{stem}-*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def _load_cache(path: Path, n_images: int, class_names: Sequence[str]) -> ImageArrays | None:
    """The cached arrays at ``path``, or None if there are none or they are unreadable or stale."""
    if not path.is_file():
        return None
    try:
        arrays = load_arrays_npz(path)[_CACHE_KEY]
    except (OSError, ValueError, KeyError):
        return None
    if len(arrays) != n_images or arrays.class_names != tuple(class_names):
        return None
    return arrays


def _decode_listing(listing: _Listing, progress: bool) -> ImageArrays:
    """Decode every file of ``listing`` into one preallocated N x C x H x W uint8 array."""
    size, channels = listing.size, listing.channels
    first = _decode(listing.files[0], channels, size)
    height, width = size if size is not None else first.shape[:2]
    out = np.empty((len(listing.files), channels, height, width), dtype=np.uint8)

    def decode_range(start: int, stop: int) -> int:
        for i in range(start, stop):
            pixels = first if i == 0 else _decode(listing.files[i], channels, size)
            _check_size(listing.files[i], pixels, (height, width), listing.files[0])
            out[i] = pixels.transpose(2, 0, 1)
        return stop - start

    n_threads = _n_threads(height * width)
    with tqdm(
        total=len(listing.files),
        desc=f"decoding {listing.split_dir}",
        unit="img",
        disable=not progress,
    ) as bar:
        _run_chunks(decode_range, len(listing.files), n_threads, bar.update)
    labels = torch.tensor(listing.labels, dtype=torch.int64)
    return ImageArrays(torch.from_numpy(out), labels, listing.class_names)


def image_as_seen(image: Image.Image) -> Image.Image:
    """``image`` as a viewer shows it, in 8 bits: turned as its EXIF orientation says (a phone's
    portrait JPEG is stored sideways; PIL's ``ImageOps.exif_transpose``), and a 16- or 32-bit
    grayscale image (PNG ``I;16``, ``I``) scaled to 0..255 by its bit depth (65535 -> 255):
    PIL's own conversion to 8 bits clips it, and a 16-bit picture turns white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or values.max(initial=0) <= 65535 else 2.0**32 - 1
        if image.mode == "I" and values.min(initial=0) < 0:  # signed 32-bit
            values, top = values + 2.0**31, 2.0**32 - 1
        scaled = np.rint(values * (255.0 / top)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(scaled, mode="L")
    return image


def _decode(path: str, channels: int = 3, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image file as an H x W x C uint8 array (C: 3 for RGB, 1 for grayscale),
    as a viewer shows it (``image_as_seen``), resized to ``size`` (height, width) when given,
    antialiased."""
    try:
        with Image.open(path) as image:
            converted = image_as_seen(image).convert("RGB" if channels == 3 else "L")
            if size is not None and converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), RESAMPLE)
            pixels = np.asarray(converted)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageFolderError(f"cannot decode image {path}: {error}") from error
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _check_size(
    path: str,
    pixels: np.ndarray,
    expected: tuple[int, int],
    first_path: str,
) -> None:
    """Raise if ``pixels`` is not ``expected`` (height, width), naming the file, both sizes and
    what to do."""
    actual = (pixels.shape[0], pixels.shape[1])
    if actual == expected:
        return
    raise ImageFolderError(
        f"image {path} has size {actual[0]}x{actual[1]} (height x width), but the first image "
        f"{first_path} is {expected[0]}x{expected[1]}: to resize every image to one size, pass "
        f"size=(H, W) to read_image_folder, or --data.size=[H,W] to ImageFolderDataModule "
        f"(e.g. --data.size=[{expected[0]},{expected[1]}])"
    )


def _n_threads(pixels_per_image: int) -> int:
    """How many decoding threads to use: 1 for small images, else up to 4 (one per CPU)."""
    if pixels_per_image < _THREAD_MIN_PIXELS:
        return 1
    return max(1, min(_MAX_THREADS, os.cpu_count() or 1))


def _run_chunks(
    work: Callable[[int, int], int], n: int, n_threads: int, done: Callable[[int], object]
) -> None:
    """Run ``work(start, stop)`` over ``range(n)`` in chunks, on ``n_threads`` threads if > 1."""
    chunks = [(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    if n_threads <= 1:
        for start, stop in chunks:
            done(work(start, stop))
        return
    with ThreadPoolExecutor(n_threads, thread_name_prefix="image-folder") as pool:
        futures = [pool.submit(work, start, stop) for start, stop in chunks]
        try:
            for future in futures:
                done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


@contextmanager
def _atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """Yield a temp file next to ``path``; rename it to ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def check_same_classes(root: str | Path, train: ImageArrays, test: ImageArrays) -> None:
    """Raise [`ImageFolderError`][litforge.ImageFolderError] when ``<root>/train`` and
    ``<root>/test`` hold other class folders: each split is labelled by its own sorted class
    list, so a test image would get the label that means another class in training, and its
    metrics would be wrong without a word. The message names both folders and the classes only
    one of them has."""
    if train.class_names == test.class_names:
        return
    root = Path(root)
    train_names, test_names = list(train.class_names or ()), list(test.class_names or ())
    only_train = [c for c in train_names if c not in test_names]
    only_test = [c for c in test_names if c not in train_names]
    differ = [
        f"only in {root / split}: {', '.join(names)}"
        for split, names in (("train", only_train), ("test", only_test))
        if names
    ]
    raise ImageFolderError(
        f"{root / 'train'} and {root / 'test'} hold other classes ({'; '.join(differ)}): "
        "give both splits the same class folders"
    )
