"""ImageDataModule: the image layer on ArrayDataModule; ImageFolderDataModule reads a folder.

Images are stored as uint8 pixels or floats (N x C x H x W) and turned into normalised floats
per batch on the device, with the per-channel mean and std of the training part; training
batches are shifted and flipped there (``ImageTransform``); dense targets (``dense``: masks of
N x H x W, float images of N x C x H x W) move with their images. ``show`` draws pictures: the
image with its caption; for a mask, the image | true mask | predicted mask; for a float image
target, the input | prediction | target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from litforge.data.arrays import Arrays, ImageArrays
from litforge.data.augment import FlipMode, ImageTransform, to_pixels
from litforge.data.image_folder import (
    RESAMPLE,
    ImageFolderError,
    MissingFolderError,
    _decode,
    read_image_folder,
)
from litforge.data.module import ArrayDataModule
from litforge.data.text import encode_strings
from litforge.diagnostics.media import Images, fmt_prob, overlay, side_by_side
from litforge.errors import DataError, InputError
from litforge.tasks.contracts import Split
from litforge.tasks.structs import ClassificationExample, Example, Prediction

PROGRESS_FROM = 200  # read_inputs shows a progress bar from this many images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageDataModule(ArrayDataModule):
    """Images held on the device (uint8 pixels or floats), normalised and augmented per batch.

    The other arguments are ArrayDataModule's (``--help`` shows their help too).

    Args:
        translate: random shift of training images in pixels, reflect padding (0: off).
        flip: left-right flips of training images: 'random', 'alternate' or 'none' (the safe
            default: a mirrored digit or letter is another symbol).
    """

    example_type: ClassVar[type[Example]] = ClassificationExample
    provides: ClassVar[tuple[str, ...]] = (
        "num_classes",
        "in_channels",
        "image_size",
        "out_channels",
        "target_shape",
    )
    image_field: ClassVar[str] = "image"
    # Fields that move with the image: masks (N x H x W, integer) or float images (N x C x H x W).
    dense: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: float = 0,
        test_size: float = 0,
        stratify: str | None = None,
        translate: int = 0,
        flip: FlipMode = "none",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_size, test_size, stratify, (), seed)
        self.translate = translate
        self.flip: FlipMode = flip
        ImageTransform(torch.zeros(1), torch.ones(1), translate, flip)  # fail now on bad values
        self._display: ImageTransform | None = None

    @property
    def in_channels(self) -> int:
        """Channels of the images (1 for grayscale, 3 for RGB)."""
        if self._learned("in_channels") is not None:
            return int(self._learned("in_channels"))
        return int(self._images("train").shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        if self._learned("image_size") is not None:
            return tuple(self._learned("image_size"))  # type: ignore[return-value]
        return tuple(self._images("train").shape[2:])  # type: ignore[return-value]

    @property
    def out_channels(self) -> int:
        """What a network's last layer gives per pixel for the first dense field: the channels
        of a float target (N x C x H x W), the classes of a mask (N x H x W)."""
        if self._learned("out_channels") is not None:
            return int(self._learned("out_channels"))
        if not self.dense:
            raise DataError(
                f"{type(self).__name__}.out_channels is the channels of a dense target, but "
                "the module names none (dense = (...,)): remove out_channels from the model"
            )
        values = self._field(self.dense[0], "out_channels")
        return int(values.shape[1]) if values.is_floating_point() else self.num_classes

    def _images(self, split: str) -> Tensor:
        arrays = self.splits[split]
        if arrays is None:
            raise ValueError(f"{type(self).__name__} has no {split} set")
        images = arrays[self.image_field]
        if not (images.dtype == torch.uint8 or images.is_floating_point()) or images.dim() != 4:
            raise ValueError(
                f"{type(self).__name__}: the {self.image_field!r} field must be N x C x H x W, "
                f"uint8 or float, got {images.dtype} {tuple(images.shape)}"
            )
        return images

    def _statistics(self) -> ImageTransform:
        """Per-channel mean and std of the training images, in [0, 1] pixel units (float
        images: in their own units)."""
        if self._display is None and self._learned("mean") is not None:
            mean, std = self._learned("mean"), self._learned("std")
            self._display = ImageTransform(mean, std, field=self.image_field)
        if self._display is None:
            images = self._images("train")
            pixels = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
            mean = pixels.mean(dim=(0, 2, 3))
            std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
            self._display = ImageTransform(mean, std, field=self.image_field)
        return self._display

    @property
    def mean(self) -> Tensor:
        return self._statistics().mean.view(-1)

    @property
    def std(self) -> Tensor:
        return self._statistics().std.view(-1)

    def transform(self, split: Split) -> ImageTransform:
        train = split == "train"
        return ImageTransform(
            self.mean,
            self.std,
            translate=self.translate if train else 0,
            flip=self.flip if train else "none",
            field=self.image_field,
            dense=self.dense,
        )

    # ------------------------------------------------------------------ what the data taught
    def state_dict(self) -> dict[str, Any]:
        """ArrayDataModule's, and the normalisation: per-channel ``mean`` and ``std``."""
        return {**super().state_dict(), "mean": self.mean.cpu(), "std": self.std.cpu()}

    # ------------------------------------------------------------------ new inputs
    def read_inputs(self, source: Any) -> ImageArrays:
        """Images without labels: a folder of image files (flat, PNG / JPEG / ...), a file,
        a list of files, or arrays (H x W, H x W x C or C x H x W, uint8 pixels or floats in
        [0, 1]; a PIL image). Each is converted to the training's channels as the training
        images were read (RGB or grayscale files; arrays must have them) and resized
        (antialiased) to the training images' size; ``id`` is the file name (or position),
        ``size`` each image's own (height, width)."""
        if isinstance(source, ImageArrays):
            return source
        channels, (height, width) = self.in_channels, self.image_size
        if isinstance(source, str | Path) and Path(source).is_dir():
            folder = Path(source)
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                suffixes = ", ".join(IMAGE_SUFFIXES)
                raise InputError(f"{folder} holds no image file ({suffixes})")
            source = files
        elif isinstance(source, str | Path) or not isinstance(source, list | tuple):
            source = [source]
        pixels, names, sizes = [], [], []
        bar = tqdm(source, desc="reading images", unit="img", disable=len(source) < PROGRESS_FROM)
        for i, item in enumerate(bar):
            if isinstance(item, str | Path):
                if not Path(item).is_file():
                    raise InputError(f"no image file at {item}")
                try:
                    array = _decode(str(item), channels)
                except ImageFolderError as err:
                    why = type(err.__cause__).__name__
                    raise InputError(
                        f"{item}: cannot be read as an image ({why}); give PNG or JPEG files"
                    ) from None
                names.append(Path(item).name)
            else:
                array = self._pixels_of(item, i, channels)
                names.append(str(i))
            sizes.append(array.shape[:2])
            image = Image.fromarray(array[:, :, 0] if channels == 1 else array)
            if image.size != (width, height):
                image = image.resize((width, height), RESAMPLE)
            resized = np.asarray(image)
            pixels.append(resized[:, :, None] if resized.ndim == 2 else resized)
        images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
        return ImageArrays(
            images, id=encode_strings(names), size=torch.tensor(sizes, dtype=torch.int64)
        )

    @staticmethod
    def _pixels_of(item: Any, i: int, channels: int) -> np.ndarray:
        """One image given as an array or a PIL image, as uint8 H x W x C of ``channels``."""
        if isinstance(item, Image.Image):
            item = item.convert("RGB" if channels == 3 else "L")
        array = np.asarray(item.cpu() if isinstance(item, Tensor) else item)
        if array.dtype == object or array.dtype.kind not in "uifb" or array.ndim < 2:
            raise InputError(
                f"image {i} is a {type(item).__name__}, not an image: give a file, an array "
                "(H x W x C) or a PIL image"
            )
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # C x H x W -> H x W x C
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] != channels:
            raise InputError(
                f"image {i} is {'x'.join(map(str, array.shape))}: the model reads images of "
                f"{channels} channel{'s' if channels > 1 else ''} (H x W x {channels})"
            )
        if array.dtype != np.uint8:
            array = np.clip(np.asarray(array, dtype=np.float64) * 255 + 0.5, 0, 255)
        return array.astype(np.uint8)

    def readable(self, inputs: Arrays, prediction: Prediction) -> list[dict[str, Any]]:
        """As ArrayDataModule's, and for a class per pixel (N x K x H x W): ``mask``, the
        predicted class of each pixel as uint8 H x W at the image's own size (nearest), with
        the share of the pixels of each class; for float images (N x C x H x W), ``image``: the
        prediction in the target's units, C x H x W at the image's own size."""
        probs = getattr(prediction, "probs", None)
        value = getattr(prediction, "value", None)
        dense = probs if isinstance(probs, Tensor) and probs.dim() == 4 else None
        if dense is None and not (isinstance(value, Tensor) and value.dim() == 4):
            return super().readable(inputs, prediction)
        rows: list[dict[str, Any]] = [{"id": name} for name in self.item_names(inputs)]
        sizes = inputs.get("size")
        for i, row in enumerate(rows):
            size = tuple(sizes[i].tolist()) if sizes is not None else None
            if dense is not None:
                mask = dense[i].argmax(0).to(torch.uint8)
                if size is not None and tuple(mask.shape) != size:
                    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")
                    mask = mask[0, 0].to(torch.uint8)
                names = list(self.class_names or map(str, range(dense.shape[1])))
                row["mask"] = mask.cpu().numpy()
                counts = torch.bincount(mask.flatten().long(), minlength=len(names))
                share = (counts.float() / mask.numel()).tolist()
                row.update({f"share({n})": round(s, 6) for n, s in zip(names, share)})
            else:
                assert isinstance(value, Tensor)
                image = self.in_target_units(value[i].detach().float().cpu()[None])
                if size is not None and tuple(image.shape[-2:]) != size:
                    image = F.interpolate(image, size=size, mode="bilinear", antialias=True)
                row["image"] = image[0].numpy()
        return rows

    def to_display(self, images: Tensor) -> Tensor:
        """Normalised images back to uint8 pixels."""
        return self._statistics().denormalize(images)

    def show(self, example: Example, prediction: Prediction) -> Images:
        """The images with captions: #index, or for classification true -> predicted class and
        p(true); with a mask, image | true mask | predicted mask, the masks coloured over the
        image; with a float image target, input | prediction | target."""
        pixels = self.to_display(getattr(example, self.image_field))
        captions = [f"#{i}" for i in example.index.tolist()]  # Extremes adds the id, if any
        label, probs = getattr(example, "label", None), getattr(prediction, "probs", None)
        if isinstance(label, Tensor) and label.dim() == 1 and isinstance(probs, Tensor):
            p_true = probs.gather(-1, label.long()[:, None])[:, 0]
            pred = probs.argmax(-1)
            captions = [
                f"{self.describe('label', t)} -> {self.describe('pred', p)}\np(true)={fmt_prob(float(q))}"
                for t, p, q in zip(label, pred, p_true)
            ]
        for name in self.dense:
            true = getattr(example, name, None)
            if not isinstance(true, Tensor):
                continue
            if true.is_floating_point():  # a float image: input | prediction | target
                guess = getattr(prediction, "value", None)
                if isinstance(guess, Tensor) and guess.shape == true.shape:
                    panels = [rgb(pixels, true.shape[-2:]), rgb(to_pixels(guess.detach()))]
                    pixels = side_by_side(*panels, rgb(to_pixels(true)))
                    captions = [f"{c}\ninput | predicted | true" for c in captions]
                continue
            guess = getattr(prediction, "pred", None)
            if isinstance(guess, Tensor) and guess.shape == true.shape:
                k = max(len(self.class_names or ()), int(true.max()) + 1, int(guess.max()) + 1)
                image = overlay(pixels, true, k, alpha=0.0)  # the image itself, as RGB
                pixels = side_by_side(image, overlay(pixels, true, k), overlay(pixels, guess, k))
                captions = [f"{c}\nimage | true | predicted" for c in captions]
        return Images(pixels, captions)


def rgb(pixels: Tensor, size: Any = None) -> Tensor:
    """uint8 N x C x H x W as N x 3 x H x W (fewer than 3 channels: the first, as gray; more:
    the first three), resized (nearest) to ``size`` when given and different."""
    out = pixels[:, :1].expand(-1, 3, -1, -1) if pixels.shape[1] < 3 else pixels[:, :3]
    if size is not None and tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out.float(), size=tuple(size), mode="nearest").to(torch.uint8)
    return out


class ImageFolderDataModule(ImageDataModule):
    """Images in class folders, of any sizes, resized to one: ``<root>/<class>/*.jpg`` (one pool,
    split by ``val_size`` / ``test_size``) or ``<root>/train/<class>/*`` and
    ``<root>/test/<class>/*`` (its own test set). PNG and JPEG; decoded once, then cached
    (``read_image_folder``).

    Args:
        root: the folder (``make train-<project> DATA=...`` sets it).
        size: (height, width) every image is resized to, antialiased; one number for a square;
            null: the images' own size, which must then be the same for all of them.
        channels: 3 (RGB) or 1 (grayscale).
        **kwargs: ImageDataModule's (batch_size, val_size, translate, flip, ...).
    """

    name = "images"

    def __init__(
        self,
        root: str = "data/images",
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.root, self.channels = root, channels
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)

    def load(self) -> ImageArrays | tuple[ImageArrays, ImageArrays | None]:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise MissingFolderError(
                f"no image folder at {root}: give one with --data.root=PATH (make train-<project> "
                "DATA=PATH), holding <class>/*.jpg, or train/<class>/* and test/<class>/*"
            )
        read = {"size": self.size, "channels": self.channels}
        if not (root / "train").is_dir():
            return read_image_folder(root.parent, root.name, **read)  # type: ignore[arg-type]
        train = read_image_folder(root, "train", **read)  # type: ignore[arg-type]
        if not (root / "test").is_dir():
            return train, None
        test = read_image_folder(root, "test", **read)  # type: ignore[arg-type]
        if test.class_names != train.class_names:
            raise ImageFolderError(
                f"{root / 'test'} has the classes {list(test.class_names or ())}, but "
                f"{root / 'train'} has {list(train.class_names or ())}: give both the same "
                "class folders"
            )
        return train, test

    @classmethod
    def write_test_data(cls, folder: Path) -> dict[str, Any]:
        """Three classes of 12 JPEGs each, 12 to 28 pixels a side (each its own size), in
        ``<folder>/<class>/``; read at 16 x 16, a fifth held out for validation and a fifth for
        testing, in batches of 8."""
        g = np.random.default_rng(0)
        for c, name in enumerate(("a", "b", "c")):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i in range(12):
                h, w = g.integers(12, 29, size=2)
                colour = np.array([200 if j == c else 40 for j in range(3)], dtype=float)
                noise = g.normal(0, 25, size=(h, w, 3))
                pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / name / f"{i:02d}.jpg", quality=95)
        return {
            "root": str(folder),
            "size": [16, 16],
            "val_size": 0.2,
            "test_size": 0.2,
            "batch_size": 8,
            "eval_batch_size": 16,
        }
