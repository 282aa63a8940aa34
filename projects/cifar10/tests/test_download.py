"""Tests of ``cifar10_demo.download``, offline: a tiny archive in the official format, served locally."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar10_demo import download as dl
from cifar10_demo.download import (
    CLASS_NAMES,
    ArchiveError,
    ChecksumError,
    DownloadError,
    download,
    load_cifar10,
    safe_extract,
)

PER_BATCH = 10


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (path -> body) and records every requested path in ``requests``.

    A path in ``truncated`` announces its full length but sends only half, then closes.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.requests: list[str] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.server.truncated:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def no_proxy_for_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def batch(seed: int) -> tuple[np.ndarray, list[int]]:
    """A batch's ``data`` (N x 3072 uint8, CHW order) and ``labels``."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=PER_BATCH).tolist()
    return data, labels


def pickled(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def cifar_archive() -> bytes:
    """A ``cifar-10-python.tar.gz`` in the official layout, with 10 images per batch.

    The official batches are Python-2 pickles whose keys and class names are byte strings that
    torchvision's ``CIFAR10`` reads as ``str`` (``encoding="latin1"``); these Python-3 pickles
    hold ``str`` directly, which reads the same.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for seed, name in enumerate(names):
            data, labels = batch(seed)
            content = {"batch_label": name, "labels": labels, "data": data}
            add_file(tar, f"cifar-10-batches-py/{name}", pickled(content))
        meta = {
            "label_names": list(CLASS_NAMES),
            "num_cases_per_batch": PER_BATCH,
            "num_vis": 3072,
        }
        add_file(tar, "cifar-10-batches-py/batches.meta", pickled(meta))
        add_file(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    return buffer.getvalue()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_load_cifar10_downloads_extracts_and_parses(server: FileServer, tmp_path: Path) -> None:
    archive = cifar_archive()
    server.files["/cifar.tar.gz"] = archive
    root = tmp_path / "cifar10"
    train, test = load_cifar10(root, url=server.url("/cifar.tar.gz"), md5=md5_of(archive))

    assert train.class_names == test.class_names == CLASS_NAMES
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32)
    assert test.images.shape == (PER_BATCH, 3, 32, 32)
    assert train.images.dtype == test.images.dtype == torch.uint8
    for index in range(5):
        data, labels = batch(index)
        part = slice(index * PER_BATCH, (index + 1) * PER_BATCH)
        np.testing.assert_array_equal(train.images[part].numpy(), data.reshape(-1, 3, 32, 32))
        assert train.labels[part].tolist() == labels
    data, labels = batch(5)
    np.testing.assert_array_equal(test.images.numpy(), data.reshape(-1, 3, 32, 32))
    assert test.labels.tolist() == labels
    # One pixel by hand: image 3 of the test batch, channel 1 (green), row 2, column 5.
    assert test.images[3, 1, 2, 5].item() == data[3, 1024 + 2 * 32 + 5]

    assert server.requests == ["/cifar.tar.gz"]
    assert (root / "cifar10-uint8.npz").is_file()
    assert (root / "cifar-10-batches-py" / "batches.meta").is_file()
    assert not list(root.glob("*.part")) and not list(root.glob(".*"))

    again_train, again_test = load_cifar10(root, url=server.url("/cifar.tar.gz"), md5="0" * 32)
    assert server.requests == ["/cifar.tar.gz"]  # no network work the second time
    assert torch.equal(again_train.images, train.images)
    assert torch.equal(again_test.labels, test.labels)


def test_second_call_does_no_tar_work(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = cifar_archive()
    server.files["/cifar.tar.gz"] = archive
    load_cifar10(tmp_path, url=server.url("/cifar.tar.gz"), md5=md5_of(archive), progress=False)

    def no_tar(*args: object, **kwargs: object) -> None:
        raise AssertionError("opened a tar although the arrays are cached")

    monkeypatch.setattr(tarfile, "open", no_tar)
    train, _ = load_cifar10(tmp_path, url=server.url("/cifar.tar.gz"), md5=md5_of(archive))
    assert len(train) == 5 * PER_BATCH
    assert server.requests == ["/cifar.tar.gz"]


def test_existing_file_with_the_right_md5_is_not_downloaded(
    server: FileServer, tmp_path: Path
) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"already here")
    assert download(server.url("/file.bin"), dest, md5_of(b"already here")) == dest
    assert server.requests == []


def test_md5_mismatch_raises_and_leaves_no_file(server: FileServer, tmp_path: Path) -> None:
    server.files["/file.bin"] = b"some content"
    dest = tmp_path / "file.bin"
    wrong = "0123456789abcdef0123456789abcdef"
    actual = md5_of(b"some content")
    message = f"{re.escape(str(dest))}.*expected {wrong}, got {actual}"
    with pytest.raises(ChecksumError, match=message):
        download(server.url("/file.bin"), dest, wrong, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_raises_and_leaves_no_file(server: FileServer, tmp_path: Path) -> None:
    body = os.urandom(200_000)
    server.files["/big.bin"] = body
    server.truncated.add("/big.bin")
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match=f"cut short: got 100000 of {len(body)} bytes"):
        download(server.url("/big.bin"), dest, md5_of(body), timeout=5, progress=False)
    assert not dest.exists()
    assert not dest.with_suffix(".bin.part").exists()
    assert list(tmp_path.iterdir()) == []


def test_http_error_raises_naming_the_url(server: FileServer, tmp_path: Path) -> None:
    url = server.url("/missing")
    with pytest.raises(DownloadError, match=re.escape(url)):
        download(url, tmp_path / "missing", "0" * 32, timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def evil_archive(path: Path, member: tarfile.TarInfo) -> Path:
    """A tar with a harmless file, then ``member`` (a file gets some content), then another file."""
    with tarfile.open(path, "w") as tar:
        add_file(tar, "good/first.txt", b"fine")
        if member.isfile():
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
        else:
            tar.addfile(member)
        add_file(tar, "good/last.txt", b"fine")
    return path


def symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil.txt"),
        tarfile.TarInfo("good/../../evil.txt"),
        tarfile.TarInfo("/tmp/litforge-test-evil.txt"),
        symlink("good/link", "../../outside"),
        symlink("link", "/etc/passwd"),
        symlink("good/hard", "../outside", kind=tarfile.LNKTYPE),
        device("good/null"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-up",
        "symlink-absolute",
        "hardlink-up",
        "device",
    ],
)
def test_unsafe_members_raise_before_writing_anything(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    archive = evil_archive(tmp_path / "evil.tar", member)
    target = tmp_path / "sandbox" / "target"
    before = files_under(tmp_path)
    with pytest.raises(ArchiveError, match=f"unsafe member {re.escape(repr(member.name))}"):
        safe_extract(archive, target)
    assert files_under(tmp_path) == before  # nothing inside the target, nothing outside
    assert not Path("/tmp/litforge-test-evil.txt").exists()


def test_path_through_an_archive_symlink_is_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        tar.addfile(symlink("here", "."))
        add_file(tar, "here/ok.txt", b"data")
    with pytest.raises(ArchiveError, match=r"'here/ok.txt'.*goes through a symlink"):
        safe_extract(tmp_path / "evil.tar", tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_safe_extract_puts_entries_in_place(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "pkg/a.txt", b"a")
        add_file(tar, "pkg/sub/b.txt", b"b")
        tar.addfile(symlink("pkg/link", "sub/b.txt"))
        add_file(tar, "top.txt", b"t")
    target = tmp_path / "target"
    assert safe_extract(archive, target) == [target / "pkg", target / "top.txt"]
    assert files_under(target) == [
        "pkg",
        "pkg/a.txt",
        "pkg/link",
        "pkg/sub",
        "pkg/sub/b.txt",
        "top.txt",
    ]
    assert (target / "pkg" / "link").read_bytes() == b"b"
    with pytest.raises(FileExistsError, match=re.escape(str(target / "pkg"))):
        safe_extract(archive, target)


def test_corrupt_archive_raises_naming_it(server: FileServer, tmp_path: Path) -> None:
    junk = os.urandom(5000)
    server.files["/junk.tar.gz"] = junk
    root = tmp_path / "cifar10"
    archive = re.escape(str(root / "cifar-10-python.tar.gz"))
    with pytest.raises(ArchiveError, match=f"cannot extract {archive}"):
        load_cifar10(root, url=server.url("/junk.tar.gz"), md5=md5_of(junk), progress=False)
    assert files_under(root) == ["cifar-10-python.tar.gz"]


def test_truncated_archive_raises_naming_it(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    whole = cifar_archive()
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ArchiveError, match=f"cannot extract {re.escape(str(archive))}"):
        safe_extract(archive, tmp_path / "target")
    assert files_under(tmp_path) == ["cut.tar.gz"]


def extracted_batches(tmp_path: Path) -> Path:
    """The tests' archive, extracted; returns its ``cifar-10-batches-py`` folder."""
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_archive())
    safe_extract(archive, tmp_path)
    return tmp_path / "cifar-10-batches-py"


def test_missing_batch_names_the_file(tmp_path: Path) -> None:
    folder = extracted_batches(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(folder / "data_batch_3"))):
        dl.parse_batches(folder, official=False)


def test_malformed_batch_names_the_split_and_folder(tmp_path: Path) -> None:
    folder = extracted_batches(tmp_path)
    bad = {"data": np.zeros((4, 100), dtype=np.uint8), "labels": [0, 1, 0, 1]}
    (folder / "data_batch_1").write_bytes(pickled(bad))
    message = f"training batches .*data_batch_1.* in {re.escape(str(folder))}"
    with pytest.raises(ValueError, match=message):
        dl.parse_batches(folder, official=False)


def test_official_archive_files_are_checked_against_torchvision_md5s(tmp_path: Path) -> None:
    """For the official archive, each extracted file must have the md5 torchvision lists."""
    folder = extracted_batches(tmp_path)
    with pytest.raises(ChecksumError, match=re.escape(str(folder / "data_batch_1"))):
        dl.parse_batches(folder)  # the tests' small batches are not the official files


def test_load_cifar10_checks_extracted_files_only_for_the_official_md5(
    server: FileServer, tmp_path: Path
) -> None:
    archive = cifar_archive()
    server.files["/cifar.tar.gz"] = archive
    root = tmp_path / "cifar10"
    load_cifar10(root, url=server.url("/cifar.tar.gz"), md5=md5_of(archive), progress=False)
    (root / "cifar10-uint8.npz").unlink()  # parse the extracted folder again, as the official one
    with pytest.raises(ChecksumError, match="official CIFAR-10 file"):
        load_cifar10(root, url=server.url("/cifar.tar.gz"), progress=False)
    assert server.requests == ["/cifar.tar.gz"]
