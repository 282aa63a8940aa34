"""A tiny image folder on disk, for tests of a project that reads ``<root>/<split>/<class>/*``
(CIFAR-10's layout): no download, no shared data set, a second to write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from litforge.testing.images import synthetic_images


def write_image_folder(
    root: str | Path,
    *,
    classes: int | Sequence[str] = 10,
    per_class: Mapping[str, int] | None = None,
    size: int = 32,
    seed: int = 0,
    sizes: tuple[int, int] | None = None,
    suffix: str = ".png",
) -> Path:
    """Writes ``root/<split>/<class>/<i><suffix>`` and returns ``root``.

    ``classes``: a number (folders ``class0``, ``class1``, ...) or the folder names.
    ``per_class``: images per class of each split (default 20 in train, 5 in test); a split
    named ``""`` writes ``root/<class>/`` (one pool). The images are RGB, ``size`` x ``size``,
    noisy with a colour and a bright quadrant set by the class
    (`litforge.testing.synthetic_images`): a model learns them in a few epochs.
    ``sizes=(lo, hi)``: each image then gets its own height and width in [lo, hi] (the same
    picture, stretched). ``suffix``: ``.png`` or ``.jpg`` (quality 95).
    """
    names = [f"class{c}" for c in range(classes)] if isinstance(classes, int) else list(classes)
    splits = dict(per_class) if per_class is not None else {"train": 20, "test": 5}
    root = Path(root)
    for offset, (split, n) in enumerate(splits.items()):
        arrays = synthetic_images(n * len(names), len(names), size=size, seed=seed + offset)
        for folder in names:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(seed + 1000 + offset)
        for i, (image, label) in enumerate(zip(arrays.images, arrays.labels.tolist())):
            if sizes is not None:
                hw = torch.randint(sizes[0], sizes[1] + 1, (2,), generator=g).tolist()
                image = F.interpolate(image[None].float(), size=hw, mode="bilinear")[0]
                image = image.round().clamp(0, 255).to(torch.uint8)
            pixels = image.permute(1, 2, 0).contiguous().numpy()
            path = root / split / names[label] / f"{i:05d}{suffix}"
            if suffix == ".png":
                Image.fromarray(pixels).save(path)
            else:
                Image.fromarray(pixels).save(path, quality=95)
    return root
