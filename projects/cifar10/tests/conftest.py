import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def cifar10_jpeg_dir() -> Path | None:
    """The real CIFAR-10 JPEG copy: $LITFORGE_CIFAR10_JPEG or <repo>/../shared/datasets/..."""
    env = os.environ.get("LITFORGE_CIFAR10_JPEG")
    path = Path(env) if env else REPO.parent / "shared" / "datasets" / "cifar10-jpeg"
    return path if (path / "train").is_dir() else None


REAL_DATA_SKIP = (
    "real CIFAR-10 JPEGs: set LITFORGE_CIFAR10_JPEG=<folder with train/ and test/> or put the copy "
    "at ../shared/datasets/cifar10-jpeg beside the repository"
)


@pytest.fixture(scope="session")
def jpeg_subset(tmp_path_factory) -> Path:
    """A small copy of the real JPEG images: 200 train and 50 test images per class."""
    source = cifar10_jpeg_dir()
    if source is None:
        pytest.skip(REAL_DATA_SKIP)
    root = tmp_path_factory.mktemp("cifar10-jpeg-subset")
    for split, n in (("train", 200), ("test", 50)):
        for class_dir in sorted((source / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:n]:
                shutil.copyfile(image, target / image.name)
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LITFORGE_CACHE", str(tmp_path / "cache"))
