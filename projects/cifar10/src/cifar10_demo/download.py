"""The official CIFAR-10 source: download, verify, safely extract and parse into arrays.

:func:`load_cifar10` downloads ``cifar-10-python.tar.gz`` into a folder (checking its md5),
extracts it there, parses the pickled batches and caches the result as ``cifar10-uint8.npz``,
so later calls only load that file. Every step writes to a temp name first and renames, so an
interrupted run never leaves a file that looks complete.

What is torchvision's (``torchvision.datasets``), used as is:

- the md5 of a file (``utils.calculate_md5``) and the "present with this md5?" check
  (``utils.check_integrity``), for the archive and for each extracted file;
- the md5 list of the official extracted files (``CIFAR10.train_list``, ``test_list``, ``meta``),
  checked whenever the archive is the official one (``md5 == CIFAR10_MD5``);
- parsing the pickled batches into images, labels and class names (``CIFAR10``, through the
  subclass :class:`_ExtractedCIFAR10`, which only switches off its own integrity check: that
  check runs here first, see :func:`_check_files`, so that a failure names the file, and a
  non-official archive, e.g. the tests' small one, has no per-file md5s torchvision knows).

What is ours, and why (torchvision 0.24 falls short of it):

- :func:`download`. ``utils.download_url`` writes straight to the final file name, so a cut-off
  or failed download leaves a partial file there; it never compares the bytes received with
  ``Content-Length``, so a cut-off download is only reported as "File not found or corrupted.";
  it has no timeout, so a stalled server hangs it; on any error with an https URL it silently
  retries over plain http; it first sends an extra GET to resolve redirects (its "HEAD" is only
  a header); and its errors name neither the URL nor the file nor the two md5s. Ours streams to
  ``<file>.part`` with a timeout and a progress bar, checks the length and the md5, renames only
  then, removes the partial file on any failure, and raises :class:`DownloadError` /
  :class:`ChecksumError` naming the URL, the file and both md5s.
- :func:`safe_extract`. ``utils.extract_archive`` (``_extract_tar``) calls
  ``tarfile.extractall`` without ``filter=``, so on Python < 3.14 (3.11 to 3.13 are supported
  here) a crafted archive can write outside its folder (absolute paths, ``..``, links leading
  out, device files); it also extracts in place, so a corrupt archive leaves a half-written
  folder behind, and its errors do not name the archive. Ours checks every member first
  (:func:`check_members`), extracts with ``filter="data"`` into a temp folder, renames into
  place, and raises :class:`ArchiveError` naming the archive (and the member).
- :func:`_check_files`: torchvision's per-file check raises "Dataset not found or corrupted"
  without saying which file; ours names it. The md5s it checks are torchvision's.
- The checks of the parsed arrays' shapes and dtype, the errors naming the folder, the
  conversion back to N x 3 x 32 x 32 (``CIFAR10`` gives N x 32 x 32 x 3) and the npz cache.
"""

from __future__ import annotations

import gzip
import http.client
import os
import pickle
import posixpath
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5, check_integrity
from tqdm import tqdm

from litforge import ImageArrays, load_arrays_npz, save_arrays_npz

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
    train, test = parse_batches(batches, official=md5.lower() == CIFAR10_MD5)
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
    nothing is downloaded. (Ours, not ``torchvision.datasets.utils.download_url``: see the module
    docstring; the md5 is torchvision's ``calculate_md5``.)
    """
    dest, md5 = Path(dest), md5.lower()
    if check_integrity(dest, md5):
        return dest
    dest.unlink(missing_ok=True)  # a stale or broken earlier download
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        _stream(url, part, timeout=timeout, progress=progress)
        actual = calculate_md5(part)
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


def _stream(url: str, path: Path, *, timeout: float, progress: bool) -> None:
    """Write the body of ``url`` to ``path``, checking its length against ``Content-Length``."""
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
                    received += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DownloadError(f"download of {url} to {path} failed: {error}") from error
    if expected is not None and received != expected:
        raise DownloadError(
            f"download of {url} to {path} was cut short: got {received} of {expected} bytes"
        )


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


class _ExtractedCIFAR10(CIFAR10):
    """torchvision's ``CIFAR10`` parsing over a folder whose files :func:`_check_files` checked.

    ``CIFAR10.__init__`` first checks each extracted file against the md5 of the official
    release and raises a RuntimeError that names no file. That check is run by
    :func:`_check_files` instead (with torchvision's md5 list when the archive is the official
    one; for another archive, whose md5 the caller gave and :func:`download` verified, the
    official per-file md5s cannot match, so only presence is checked). Hence both of its checks
    are switched off here: ``_check_integrity`` and the md5 that ``_load_meta`` checks.
    """

    meta: ClassVar[dict[str, Any]] = {**CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


def parse_batches(folder: Path, *, official: bool = True) -> tuple[ImageArrays, ImageArrays]:
    """Parse the pickled batches of ``cifar-10-batches-py`` into (train, test) arrays.

    With ``official``, each file must have the md5 torchvision lists for the official release;
    otherwise it only has to exist. The parsing is torchvision's ``CIFAR10``.
    """
    folder = Path(folder)
    _check_files(folder, official=official)
    return _parse_split(folder, train=True), _parse_split(folder, train=False)


def _check_files(folder: Path, *, official: bool) -> None:
    """Raise naming the first file of the batches folder that is missing (or has a wrong md5)."""
    meta = [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]
    for name, md5 in [*CIFAR10.train_list, *CIFAR10.test_list, meta]:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: is the CIFAR-10 extraction complete?")
        if official and not check_integrity(path, md5):
            raise ChecksumError(
                f"{path} does not have the md5 of the official CIFAR-10 file ({md5}): "
                f"remove {folder} to extract the archive again"
            )


def _parse_split(folder: Path, *, train: bool) -> ImageArrays:
    """One split parsed by torchvision's ``CIFAR10``, as N x 3 x 32 x 32 uint8 images."""
    names = [name for name, _ in (CIFAR10.train_list if train else CIFAR10.test_list)]
    what = f"the {'training' if train else 'test'} batches ({', '.join(names)}) in {folder}"
    if folder.name != CIFAR10.base_folder:
        raise ValueError(f"{folder}: the batches folder must be named {CIFAR10.base_folder}")
    try:
        dataset = _ExtractedCIFAR10(folder.parent, train=train)
        data = np.asarray(dataset.data)
        labels = np.asarray(dataset.targets, dtype=np.int64)
        class_names = tuple(str(name) for name in dataset.classes)
    except (
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        EOFError,
        pickle.UnpicklingError,
    ) as error:
        raise ValueError(f"{what} are not CIFAR-10 batches: {error!r}") from error
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or labels.shape != (len(data),):
        raise ValueError(
            f"{what}: expected N x 32 x 32 x 3 uint8 images and N labels, "
            f"got {data.dtype} {data.shape} and {labels.shape}"
        )
    images = np.ascontiguousarray(data.transpose(0, 3, 1, 2))  # torchvision gives HWC
    return ImageArrays(torch.from_numpy(images), torch.from_numpy(labels), class_names)
