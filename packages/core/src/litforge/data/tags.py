"""Image files named in a table beside their folder, each with a set of labels (tags), for
multi-label classification (``read_image_table``, ``ImageTableDataModule``). Tags in a table of
features: ``read_table(path, tags=...)``; both turn the cells into a multi-hot ``target`` with
``multi_hot`` (``litforge.data.table``).

    file,tags                      read_image_table("photos/tags.csv", size=48)
    0001.png,cat dog                 -> ImageArrays(image=uint8 N x C x H x W,
    0002.png,                                       target=int64 N x K), class_names (the tags)
    0003.png,dog

A cell of tags is split by ``separator`` (a space by default; any run of spaces counts as one);
an empty cell is the empty set. The label names are the tags found, sorted, unless given. A row
that cannot be used (too few or too many cells, a missing image, a tag not among the given
names) stops the read with one ``error:`` line naming the file and its line.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from litforge.data.arrays import ImageArrays
from litforge.data.image_folder import (
    _cache_path,
    _decode_listing,
    _Listing,
    _load_cache,
    _save_cache,
)
from litforge.data.images import ImageDataModule
from litforge.data.table import _list, multi_hot
from litforge.data.text import encode_strings
from litforge.errors import DataError
from litforge.tasks.structs import MultiLabelExample


def read_image_table(
    path: str | Path,
    *,
    images: str | Path | None = None,
    file: str = "file",
    tags: str = "tags",
    separator: str = " ",
    label_names: Sequence[str] | None = None,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    delimiter: str = ",",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ImageArrays:
    """Image files named in a table, with their tags: ``ImageArrays`` with ``image`` (uint8
    N x C x H x W), ``target`` (multi-hot int64 N x K), ``id`` (each file's name as given) and
    the label names as ``class_names``.

    Args:
        path: the table (a header line first), with a column of image files and one of tags.
        images: the folder the file names are relative to (default: the table's own folder).
        file: the name of the column of image files.
        tags: the name of the column of tags (other columns are not read).
        separator: what separates the tags of a cell (a space: any white space).
        label_names: the labels, in target order (default: the tags found, sorted).
        size: (height, width) every image is resized to, antialiased; one number for a square;
            None: the images' own size, which must then be the same for all.
        channels: 3 (RGB) or 1 (grayscale).
        delimiter: the cell separator of the table.
        cache_dir: where the decoded images are cached, as ``read_image_folder``'s: keyed by
            every file's size and time and the size and channels asked for.
        progress: a progress bar while decoding.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"no table at {path}: give a CSV of image files and their tags ({file},{tags})"
        )
    folder = Path(images).expanduser() if images is not None else path.parent
    if not folder.is_dir():
        raise DataError(f"no image folder at {folder} (the folder of the files named in {path})")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        for name, role in ((file, "file"), (tags, "tags")):
            if name not in header:
                raise DataError(
                    f"{path}: no column {name!r} (given as {role}); its columns are {_list(header)}"
                )
        j_file, j_tags = header.index(file), header.index(tags)
        files: list[str] = []
        cells: list[str] = []
        where: list[str] = []
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            at = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                raise DataError(
                    f"{at}: {len(row)} cells, but the header has {len(header)} "
                    f"({_list(header)}); check the separator ({delimiter!r}) and quoting"
                )
            name = row[j_file].strip()
            if not name:
                raise DataError(f"{at}: column {file!r} is empty: name an image file")
            if not (folder / name).is_file():
                raise DataError(f"{at}: no image {name!r} in {folder}")
            files.append(name)
            cells.append(row[j_tags])
            where.append(at)
    if not files:
        raise DataError(f"{path} has a header but no rows")
    target, names = multi_hot(cells, separator, label_names, where)
    pixels = _read_images(path, folder, files, size, channels, cache_dir, progress)
    return ImageArrays(pixels, class_names=names, target=target, id=encode_strings(files))


def _read_images(
    table: Path,
    folder: Path,
    files: list[str],
    size: int | tuple[int, int] | None,
    channels: int,
    cache_dir: str | Path | None,
    progress: bool,
) -> Tensor:
    """The files decoded (and resized) as uint8 N x C x H x W, through the image folder cache."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    hw = (size, size) if isinstance(size, int) else (None if size is None else tuple(size))
    signature = []
    for name in files:
        stat = (folder / name).stat()
        signature.append(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}")
    listing = _Listing(
        folder,
        table,  # the cache is named after the table
        hw,  # type: ignore[arg-type]
        channels,
        ("",),
        tuple(str(folder / name) for name in files),
        (0,) * len(files),
        tuple(signature),
    )
    cache = _cache_path(listing, cache_dir)
    cached = _load_cache(cache, len(files), ("",))
    if cached is not None and (hw is None or tuple(cached.images.shape[2:]) == hw):
        return cached.images
    arrays = _decode_listing(listing, progress)
    _save_cache(arrays, cache)
    return arrays.images


class ImageTableDataModule(ImageDataModule):
    """Images of any sizes named in a table, each with a set of labels (tags): multi-label
    classification (``MultiLabelExample``: ``image``, multi-hot ``target``, the file name as
    ``id``). One pool, split by ``val_size`` / ``test_size``; read by ``read_image_table``.

    Args:
        root: the table, a CSV with a header (``make train-<project> DATA=...`` sets it).
        images: the folder its file names are relative to (default: the table's folder).
        file: the column of image files.
        tags: the column of tags.
        separator: what separates the tags of a cell (a space: any white space).
        size: (height, width) every image is resized to, antialiased; one number for a square;
            null: the images' own size, which must then be the same for all of them.
        channels: 3 (RGB) or 1 (grayscale).
        **kwargs: ImageDataModule's (batch_size, val_size, translate, flip, ...).
    """

    name = "images"
    example_type = MultiLabelExample

    def __init__(
        self,
        root: str = "data/images/tags.csv",
        images: str | None = None,
        file: str = "file",
        tags: str = "tags",
        separator: str = " ",
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.root, self.images, self.file, self.tags = root, images, file, tags
        self.separator, self.channels = separator, channels
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)

    def load(self) -> ImageArrays:
        if not Path(self.root).expanduser().is_file():
            raise DataError(
                f"no table at {self.root}: give one with --data.root=PATH (make train-<project> "
                f"DATA=PATH), a CSV of image files and their tags ({self.file},{self.tags})"
            )
        return read_image_table(
            self.root,
            images=self.images,
            file=self.file,
            tags=self.tags,
            separator=self.separator,
            size=self.size,  # type: ignore[arg-type]
            channels=self.channels,
        )

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        """``tags.csv`` and 48 PNGs of 12 to 28 pixels a side (each its own size), tagged with a
        subset of red, green and blue (the colours they hold; some none); read at 16 x 16, a
        fifth held out for validation and a fifth for testing, in batches of 8."""
        write_tagged_images(folder, 48)
        return {
            "root": str(folder / "tags.csv"),
            "size": [16, 16],
            "val_size": 0.2,
            "test_size": 0.2,
            "batch_size": 8,
            "eval_batch_size": 16,
        }


COLOURS = ("red", "green", "blue")


def write_tagged_images(
    folder: Path, n: int, sizes: tuple[int, int] = (12, 28), seed: int = 0
) -> dict[str, list[str]]:
    """``<folder>/tags.csv`` (``file,tags``) and ``<folder>/images/NNNN.png``: each image noise
    with a bright square of each of its colours (a random subset of red, green, blue, maybe
    none); each image its own size in ``sizes``. Returns the tags of each file."""
    g = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines, truth = ["file,tags"], {}
    for i in range(n):
        h, w = (int(v) for v in g.integers(sizes[0], sizes[1] + 1, size=2))
        pixels = g.normal(60, 20, size=(h, w, 3))
        tags = [c for c in COLOURS if g.random() < 0.45]
        for c in tags:
            y, x = int(g.integers(0, h // 2)), int(g.integers(0, w // 2))
            pixels[y : y + h // 2, x : x + w // 2, COLOURS.index(c)] = 230
        name = f"images/{i:04d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / name)
        lines.append(f"{name},{' '.join(tags)}")
        truth[name] = tags
    (folder / "tags.csv").write_text("\n".join(lines) + "\n")
    return truth
