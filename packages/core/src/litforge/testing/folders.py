"""A tiny image folder on disk, for tests of a project that reads ``<root>/<split>/<class>/*``
(CIFAR-10's layout): no download, no shared data set, a second to write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from litforge.testing.images import synthetic_images


def write_image_folder(
    root: str | Path,
    *,
    classes: int | Sequence[str] = 10,
    per_class: Mapping[str, int] | None = None,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Writes ``root/<split>/<class>/<i>.png`` and returns ``root``.

    ``classes``: a number (folders ``class0``, ``class1``, ...) or the folder names.
    ``per_class``: images per class of each split (default 20 in train, 5 in test). The images
    are RGB, ``size`` x ``size``, noisy with a colour and a bright quadrant set by the class
    (:func:`litforge.testing.synthetic_images`): a model learns them in a few epochs.
    """
    names = [f"class{c}" for c in range(classes)] if isinstance(classes, int) else list(classes)
    splits = dict(per_class) if per_class is not None else {"train": 20, "test": 5}
    root = Path(root)
    for offset, (split, n) in enumerate(splits.items()):
        arrays = synthetic_images(n * len(names), len(names), size=size, seed=seed + offset)
        for folder in names:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(arrays.images, arrays.labels.tolist())):
            pixels = image.permute(1, 2, 0).contiguous().numpy()
            Image.fromarray(pixels).save(root / split / names[label] / f"{i:05d}.png")
    return root
