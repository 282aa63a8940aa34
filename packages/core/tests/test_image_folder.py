"""Tests of ``litforge.data.image_folder``: reading, caching and errors, on small folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from litforge.data import image_folder
from litforge.data.image_folder import ImageFolderError, read_image_folder

CLASSES = ("cat", "dog", "frog")
CIFAR10_CLASSES = (
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


def cifar10_jpeg_dir() -> Path | None:
    """The shared CIFAR-10 JPEG copy (``$LITFORGE_CIFAR10_JPEG`` or ``<repo>/../shared/...``)."""
    env = os.environ.get("LITFORGE_CIFAR10_JPEG")
    repo = Path(__file__).resolve().parents[3]
    path = Path(env) if env else repo / ".." / "shared" / "datasets" / "cifar10-jpeg"
    return path if path.is_dir() else None


def pixels(label: int, index: int, size: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Distinct deterministic H x W x 3 uint8 pixels for image ``index`` of class ``label``."""
    rng = np.random.default_rng(100 * label + index)
    return rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(array).save(path)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its (size, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``<root>/train/{cat,dog,frog}``, 4 images of 8x8 each: PNGs, plus JPEGs in ``frog``.

    Also holds things to ignore: a text file, a hidden folder and a file beside the classes.
    """
    root = tmp_path / "data"
    for label, name in enumerate(CLASSES):
        for index in range(4):
            suffix = (".jpg", ".jpeg")[index % 2] if name == "frog" else ".png"
            save(root / "train" / name / f"{index:02d}{suffix}", pixels(label, index))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    save(root / "train" / ".hidden" / "00.png", pixels(9, 0))
    (root / "train" / "README.md").write_text("not a class")
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_reads_labels_class_names_and_exact_pixels(root: Path, cache: Path) -> None:
    before = snapshot(root)
    arrays = read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert arrays.class_names == CLASSES
    assert arrays.images.shape == (12, 3, 8, 8)
    assert arrays.images.dtype == torch.uint8
    assert arrays.labels.dtype == torch.int64
    assert arrays.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for label in (0, 1):  # the PNG classes: lossless, so exact
        for index in range(4):
            got = arrays.images[4 * label + index].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, pixels(label, index))
    with PIL.Image.open(root / "train" / "frog" / "00.jpg") as jpeg:  # lossy: compare to PIL
        np.testing.assert_array_equal(arrays.images[8].permute(1, 2, 0).numpy(), np.asarray(jpeg))
    assert snapshot(root) == before  # the source folder is never written
    assert len(list(cache.glob("*.npz"))) == 1


def test_grayscale_images_become_rgb(tmp_path: Path, cache: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = tmp_path / "data" / "test" / "only" / "a.png"
    path.parent.mkdir(parents=True)
    PIL.Image.fromarray(gray, mode="L").save(path)
    arrays = read_image_folder(tmp_path / "data", "test", cache_dir=cache, progress=False)
    assert arrays.images.shape == (1, 3, 8, 8)
    for channel in range(3):
        np.testing.assert_array_equal(arrays.images[0, channel].numpy(), gray)


def test_second_call_loads_the_cache_without_decoding(
    root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = read_image_folder(root, "train", cache_dir=cache, progress=False)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    second = read_image_folder(str(root), "train", cache_dir=cache, progress=False)
    assert torch.equal(second.images, first.images)
    assert torch.equal(second.labels, first.labels)
    assert second.class_names == first.class_names


def test_changed_file_invalidates_the_cache(root: Path, cache: Path) -> None:
    read_image_folder(root, "train", cache_dir=cache, progress=False)
    changed = save(root / "train" / "dog" / "02.png", pixels(7, 7))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    arrays = read_image_folder(root, "train", cache_dir=cache, progress=False)
    np.testing.assert_array_equal(arrays.images[6].permute(1, 2, 0).numpy(), pixels(7, 7))
    assert len(list(cache.glob("*.npz"))) == 1  # the stale cache was removed


def test_added_file_invalidates_the_cache(root: Path, cache: Path) -> None:
    read_image_folder(root, "train", cache_dir=cache, progress=False)
    save(root / "train" / "cat" / "99.png", pixels(0, 99))
    arrays = read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert arrays.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 4


def test_interrupted_cache_write_leaves_nothing(
    root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_savez(file: object, **arrays: object) -> None:
        assert hasattr(file, "write")
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", interrupted_savez)
        with pytest.raises(KeyboardInterrupt):
            read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []
    arrays = read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert len(arrays) == 12


def test_unreadable_cache_is_rebuilt(root: Path, cache: Path) -> None:
    read_image_folder(root, "train", cache_dir=cache, progress=False)
    (path,) = cache.glob("*.npz")
    path.write_bytes(b"garbage")
    arrays = read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert len(arrays) == 12
    assert len(image_folder.load_arrays_npz(path)["split"]) == 12


def test_default_cache_dir_follows_the_env_var(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITFORGE_CACHE", str(tmp_path / "env-cache"))
    read_image_folder(root, "train", progress=False)
    assert len(list((tmp_path / "env-cache" / "image_folder").glob("*.npz"))) == 1


def test_threaded_decoding_of_larger_images(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_folder, "_CHUNK", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    size = (100, 120)
    assert image_folder._n_threads(size[0] * size[1]) == 2
    for label, name in enumerate(CLASSES):
        for index in range(2):
            save(tmp_path / "big" / "val" / name / f"{index}.png", pixels(label, index, size))
    arrays = read_image_folder(tmp_path / "big", "val", cache_dir=cache, progress=False)
    assert arrays.images.shape == (6, 3, *size)
    for i in range(6):
        expected = pixels(i // 2, i % 2, size)
        np.testing.assert_array_equal(arrays.images[i].permute(1, 2, 0).numpy(), expected)


def test_a_requested_size_resizes_antialiased_and_has_its_own_cache(
    root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    same = read_image_folder(root, "train", size=(8, 8), cache_dir=cache, progress=False)
    assert torch.equal(same.images, read_image_folder(root, "train", cache_dir=cache).images)
    small = read_image_folder(root, "train", size=(4, 6), cache_dir=cache, progress=False)
    assert small.images.shape == (12, 3, 4, 6)
    originals = read_image_folder(root, "train", cache_dir=cache, progress=False).images
    # independently: torchvision's antialiased bicubic resize of the decoded images (written to
    # match PIL's); the two round differently by at most one level
    expected = TF.resize(originals, [4, 6], interpolation=InterpolationMode.BICUBIC, antialias=True)
    assert (small.images.int() - expected.int()).abs().max() <= 1
    assert len(list(cache.glob("*.npz"))) == 3  # own size, 8x8 and 4x6: one file each
    monkeypatch.setattr(image_folder, "_decode", lambda *a: pytest.fail("decoded again"))
    again = read_image_folder(root, "train", size=(4, 6), cache_dir=cache, progress=False)
    assert torch.equal(again.images, small.images)  # from its cache


def test_missing_root(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(missing))} does not exist"):
        read_image_folder(missing, "train", cache_dir=cache, progress=False)
    assert not cache.exists()


def test_missing_split(root: Path, cache: Path) -> None:
    split = re.escape(str(root / "valid"))
    with pytest.raises(FileNotFoundError, match=f"split folder {split} does not exist"):
        read_image_folder(root, "valid", cache_dir=cache, progress=False)
    assert not cache.exists()


def test_no_class_folders(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "a.png").write_bytes(b"")
    split = re.escape(str(tmp_path / "data" / "train"))
    with pytest.raises(ImageFolderError, match=f"{split} has no class sub-folders"):
        read_image_folder(tmp_path / "data", "train", cache_dir=cache, progress=False)
    assert not cache.exists()


def test_class_folder_without_images(root: Path, cache: Path) -> None:
    empty = root / "train" / "eel"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ImageFolderError, match=f"class folder {re.escape(str(empty))} has no"):
        read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert not cache.exists()


@pytest.mark.parametrize("content", [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_undecodable_image(root: Path, cache: Path, content: bytes) -> None:
    bad = root / "train" / "dog" / "01.png"
    bad.write_bytes(content)
    with pytest.raises(ImageFolderError, match=f"cannot decode image {re.escape(str(bad))}"):
        read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert not cache.exists()


def test_truncated_jpeg(root: Path, cache: Path) -> None:
    bad = root / "train" / "frog" / "01.jpeg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(ImageFolderError, match=f"cannot decode image {re.escape(str(bad))}"):
        read_image_folder(root, "train", cache_dir=cache, progress=False)


def test_image_of_another_size_than_the_first(root: Path, cache: Path) -> None:
    odd = save(root / "train" / "dog" / "03.png", pixels(1, 3, size=(8, 9)))
    first = root / "train" / "cat" / "00.png"
    message = f"{re.escape(str(odd))} has size 8x9 .* first image {re.escape(str(first))} is 8x8"
    with pytest.raises(ImageFolderError, match=message) as error:
        read_image_folder(root, "train", cache_dir=cache, progress=False)
    assert "pass size=(H, W)" in str(error.value) and "--data.size=[8,8]" in str(error.value)
    assert not cache.exists()
    # mixed sizes work once a size is asked for: every image resized to it
    arrays = read_image_folder(root, "train", size=(8, 8), cache_dir=cache, progress=False)
    assert arrays.images.shape == (12, 3, 8, 8)


def test_grayscale(root: Path, cache: Path) -> None:
    arrays = read_image_folder(root, "train", channels=1, cache_dir=cache, progress=False)
    assert arrays.images.shape == (12, 1, 8, 8)
    expected = np.asarray(PIL.Image.open(root / "train" / "cat" / "00.png").convert("L"))
    np.testing.assert_array_equal(arrays.images[0, 0].numpy(), expected)


def test_error_in_a_decoding_thread_names_the_file(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_folder, "_CHUNK", 1)
    monkeypatch.setattr(image_folder, "_THREAD_MIN_PIXELS", 1)
    for index in range(6):
        save(tmp_path / "data" / "train" / "a" / f"{index}.png", pixels(0, index))
    bad = tmp_path / "data" / "train" / "a" / "4.png"
    bad.write_bytes(b"broken")
    with pytest.raises(ImageFolderError, match=re.escape(str(bad))):
        read_image_folder(tmp_path / "data", "train", cache_dir=cache, progress=False)
    assert not cache.exists()


@pytest.mark.slow
@pytest.mark.skipif(
    cifar10_jpeg_dir() is None,
    reason="real CIFAR-10 JPEGs: set LITFORGE_CIFAR10_JPEG=<folder with train/ and test/> or put "
    "the copy at ../shared/datasets/cifar10-jpeg beside the repository",
)
def test_real_cifar10_jpeg_test_split(tmp_path: Path) -> None:
    root = cifar10_jpeg_dir()
    assert root is not None
    arrays = read_image_folder(root, "test", cache_dir=tmp_path, progress=False)
    assert arrays.class_names == CIFAR10_CLASSES
    assert arrays.images.shape == (10000, 3, 32, 32)
    assert arrays.images.dtype == torch.uint8
    assert torch.bincount(arrays.labels).tolist() == [1000] * 10
    assert 80 < arrays.images.float().mean().item() < 160


def test_images_are_read_as_they_look(tmp_path: Path, cache: Path) -> None:
    """A 16-bit grayscale PNG (values 138..65480) is scaled to 8 bits by its depth (x / 257),
    not clipped to white; a JPEG whose EXIF orientation says "turn 90 degrees" is read turned,
    as a viewer shows it (``ImageOps.exif_transpose``); in the image-folder reader and in the
    streamed path's decoder."""
    from litforge.data.prepare import decode_image

    deep_png = tmp_path / "deep" / "train" / "a"
    turned_jpg = tmp_path / "turned" / "train" / "b"
    deep_png.mkdir(parents=True)
    turned_jpg.mkdir(parents=True)
    ramp = np.linspace(138, 65480, 12 * 10).reshape(10, 12).astype(np.uint16)
    PIL.Image.fromarray(ramp).save(deep_png / "a.png")
    assert PIL.Image.open(deep_png / "a.png").mode.startswith("I")  # 16 bits
    stored = np.zeros((10, 12, 3), np.uint8)
    stored[:, :6] = 255  # left half white as stored; turned, the top half
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to view
    PIL.Image.fromarray(stored).save(turned_jpg / "b.jpg", exif=exif, quality=95)

    deep = read_image_folder(tmp_path / "deep", "train", channels=1, cache_dir=cache)
    values = deep.images[0, 0].numpy().astype(float)
    assert np.abs(values - ramp / 257.0).max() <= 0.5 + 1e-9  # scaled and rounded
    assert values.mean() < 130  # clipped, it was 254.6
    streamed = decode_image((deep_png / "a.png").read_bytes(), "a.png", channels=1)
    assert np.array_equal(streamed[0], deep.images[0, 0].numpy())

    seen = PIL.ImageOps.exif_transpose(PIL.Image.open(turned_jpg / "b.jpg")).convert("RGB")
    assert seen.size == (10, 12)  # width, height: turned
    turned = read_image_folder(tmp_path / "turned", "train", cache_dir=cache).images[0]
    expected = np.ascontiguousarray(np.asarray(seen).transpose(2, 0, 1))
    assert turned.shape == (3, 12, 10)
    assert torch.equal(turned, torch.from_numpy(expected))
    assert turned[:, :5].float().mean() > 200 and turned[:, -5:].float().mean() < 50
    assert np.array_equal(decode_image((turned_jpg / "b.jpg").read_bytes(), "b.jpg"), expected)
