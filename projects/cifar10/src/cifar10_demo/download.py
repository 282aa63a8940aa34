"""The official CIFAR-10 source: download, verify, safely extract and parse into arrays.

:func:`load_cifar10` downloads ``cifar-10-python.tar.gz`` into a folder (checking its md5),
extracts it there, parses the pickled batches and caches the result as ``cifar10-uint8.npz``,
so later calls only load that file. Every step writes to a temp name first and renames, so an
interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import posixpath
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from litforge.data.arrays import ImageArrays
from litforge.data.image_folder import load_arrays_npz, save_arrays_npz

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
CACHE_NAME = "cifar10-uint8.npz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
_CHUNK_BYTES = 1 << 20


class DownloadError(OSError):
    """A download that failed or was cut short; the message names the URL and file."""


class ChecksumError(DownloadError):
    """A downloaded file whose md5 is not the expected one."""


class ArchiveError(ValueError):
    """A corrupt archive, or one with a member that would land outside the target folder."""


def load_cifar10(
    root: Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, progress: bool = True
) -> tuple[ImageArrays, ImageArrays]:
    """CIFAR-10 as (train, test) arrays, downloading and extracting it into ``root`` if needed.

    The parsed arrays are cached as ``root/cifar10-uint8.npz``; when it exists, nothing is
    downloaded or extracted. The pickled batches are trusted because the archive's md5 is checked.
    """
    root = Path(root)
    cached = _load_cache(root / CACHE_NAME)
    if cached is not None:
        return cached
    batches = root / BATCHES_DIR
    if not (batches / META_FILE).is_file():
        archive = download(url, root / ARCHIVE_NAME, md5, progress=progress)
        safe_extract(archive, root)
    train, test = parse_batches(batches)
    save_arrays_npz(root / CACHE_NAME, {"train": train, "test": test})
    return train, test


def _load_cache(path: Path) -> tuple[ImageArrays, ImageArrays] | None:
    """The (train, test) arrays cached at ``path``, or None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        arrays = load_arrays_npz(path)
        return arrays["train"], arrays["test"]
    except (OSError, ValueError, KeyError):
        return None


def download(url: str, dest: Path, md5: str, *, timeout: float = 60, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and check its md5; return ``dest``.

    Streams to ``dest.part`` and renames it to ``dest`` only once the length and the md5 are
    right; on any failure the partial file is removed. If ``dest`` already has the right md5,
    nothing is downloaded.
    """
    dest, md5 = Path(dest), md5.lower()
    if dest.is_file():
        if file_md5(dest) == md5:
            return dest
        dest.unlink()  # a stale or broken earlier download
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        actual = _stream(url, part, timeout=timeout, progress=progress)
        if actual != md5:
            raise ChecksumError(
                f"md5 mismatch for {dest} downloaded from {url}: expected {md5}, got {actual} "
                "(the file was removed)"
            )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def file_md5(path: Path) -> str:
    """The md5 hex digest of the file at ``path``."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _stream(url: str, path: Path, *, timeout: float, progress: bool) -> str:
    """Write the body of ``url`` to ``path``, checking its length; return its md5."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            with tqdm(
                total=expected,
                desc=path.name.removesuffix(".part"),
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DownloadError(f"download of {url} to {path} failed: {error}") from error
    if expected is not None and received != expected:
        raise DownloadError(
            f"download of {url} to {path} was cut short: got {received} of {expected} bytes"
        )
    return digest.hexdigest()


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract the tar ``archive`` into ``target``; return the top-level paths it created.

    Every member is checked first (see :func:`check_members`), so a bad one raises
    :class:`ArchiveError` naming it before anything is written. The archive is extracted into a
    temp folder inside ``target`` whose top-level entries are then renamed into place, so a
    failure leaves nothing half-written. Existing entries are never overwritten.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            check_members(members, archive)
            tops = _top_level_names(members)
            for top in tops:
                if os.path.lexists(target / top):
                    raise FileExistsError(
                        f"{target / top} exists already; not extracting {archive}"
                    )
            _extract_and_move(tar, members, tops, target)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ArchiveError(f"cannot extract {archive} (corrupt or truncated?): {error}") from error
    return [target / top for top in tops]


def _extract_and_move(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], tops: list[str], target: Path
) -> None:
    """Extract ``members`` into a temp folder in ``target``, then rename ``tops`` into place."""
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".extracting-", dir=target) as tmp:
            tar.extractall(tmp, members=members, filter="data")
            for top in tops:
                os.replace(Path(tmp) / top, target / top)
    except BaseException:
        if created and not any(target.iterdir()):
            target.rmdir()
        raise


def _top_level_names(members: list[tarfile.TarInfo]) -> list[str]:
    """The distinct first components of the members' paths (``.`` left out), sorted."""
    tops = {posixpath.normpath(member.name).split("/", 1)[0] for member in members}
    return sorted(tops - {"."})


def check_members(members: list[tarfile.TarInfo], archive: Path) -> None:
    """Raise :class:`ArchiveError` naming the first member that could write outside the target.

    Rejected: absolute paths, paths that climb out with ``..``, paths that go through a symlink
    of the archive, symlinks or hard links that lead outside, and anything but files, folders
    and links (devices, fifos).
    """
    symlinks = {posixpath.normpath(m.name) for m in members if m.issym()}
    for member in members:
        reason = _unsafe_reason(member, symlinks)
        if reason is not None:
            raise ArchiveError(f"unsafe member {member.name!r} in {archive}: {reason}")


def _unsafe_reason(member: tarfile.TarInfo, symlinks: set[str]) -> str | None:
    """Why extracting ``member`` is unsafe, or None if it is safe."""
    name = member.name
    if _escapes(name):
        return "its path is absolute or leaves the target folder"
    parts = posixpath.normpath(name).split("/")
    if any("/".join(parts[:i]) in symlinks for i in range(1, len(parts))):
        return "its path goes through a symlink"
    if member.issym() and _escapes(posixpath.join(posixpath.dirname(name), member.linkname)):
        return f"symlink to {member.linkname!r} leads outside the target folder"
    if member.islnk() and _escapes(member.linkname):
        return f"hard link to {member.linkname!r} leads outside the target folder"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "not a regular file, folder or link"
    return None


def _escapes(path: str) -> bool:
    """Whether the archive path ``path`` is absolute or climbs out of the folder with ``..``."""
    if path.startswith(("/", "\\")) or (path[:1].isalpha() and path[1:2] == ":"):
        return True
    normal = posixpath.normpath(path.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def parse_batches(folder: Path) -> tuple[ImageArrays, ImageArrays]:
    """Parse the pickled batches of ``cifar-10-batches-py`` into (train, test) arrays."""
    class_names = _read_class_names(folder / META_FILE)
    train_parts = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    images = np.concatenate([part[0] for part in train_parts])
    labels = np.concatenate([part[1] for part in train_parts])
    train = ImageArrays(torch.from_numpy(images), torch.from_numpy(labels), class_names)
    test_images, test_labels = _read_batch(folder / TEST_BATCH)
    test = ImageArrays(torch.from_numpy(test_images), torch.from_numpy(test_labels), class_names)
    return train, test


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: (images N x 3 x 32 x 32 uint8, labels N int64)."""
    batch = _unpickle(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a CIFAR-10 batch: {error!r}") from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise ValueError(
            f"{path}: expected N x 3072 data and N labels, got {data.shape} and {labels.shape}"
        )
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels


def _read_class_names(path: Path) -> tuple[str, ...]:
    """The class names of ``batches.meta``, in label order."""
    meta = _unpickle(path)
    try:
        return tuple(name.decode() for name in meta[b"label_names"])
    except (KeyError, AttributeError, TypeError) as error:
        raise ValueError(f"{path} has no CIFAR-10 label names: {error!r}") from error


def _unpickle(path: Path) -> Any:
    """Load a Python-2 pickle of the CIFAR-10 archive (byte-string keys)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is the CIFAR-10 extraction complete?")
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")
