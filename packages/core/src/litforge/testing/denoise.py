"""A tiny image-to-image regression task: blurred blobs with noise in, the clean blobs out (1 x
16 x 16 floats), some images far noisier than others. Its own Example (``image``, ``target``)
and a small convolutional network trained on the per-example mean squared error, so that the
Regression diagnostic judges each image as a whole. ``python -m litforge.testing.denoise fit``"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from litforge.command import run
from litforge.data import ArrayDataModule, Arrays
from litforge.run.project import Project
from litforge.tasks.bases import PerExampleLossModel
from litforge.tasks.structs import Example, Prediction


@dataclasses.dataclass
class NoisyImage(Example):
    """A noisy image (float N x 1 x H x W) and the clean one it was made from (the target)."""

    image: Tensor
    target: Tensor


@dataclasses.dataclass
class Denoised(Prediction):
    """The model's clean image, shaped like the target."""

    value: Tensor


def blobs(n: int, size: int = 16, seed: int = 0) -> Arrays:
    """``n`` clean images of one to three Gaussian blobs (the target) and the same plus Gaussian
    noise of a standard deviation drawn per image in [0.05, 0.6] (the input)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    clean = torch.zeros(n, 1, size, size)
    for k in range(3):
        centre = torch.rand(n, 2, 1, 1, generator=g) * size
        width = (0.08 + 0.12 * torch.rand(n, 1, 1, 1, generator=g)) * size
        present = (torch.rand(n, 1, 1, 1, generator=g) < 0.6) | (k == 0)
        blob = torch.exp(-((yy - centre[:, :1]) ** 2 + (xx - centre[:, 1:]) ** 2) / width**2)
        clean = torch.maximum(clean, blob * present)
    noise = 0.05 + 0.55 * torch.rand(n, 1, 1, 1, generator=g)
    noisy = clean + noise * torch.randn(n, 1, size, size, generator=g)
    return Arrays(image=noisy.float(), target=clean.float())


class Blobs(ArrayDataModule):
    """One seeded pool of ``n`` images of ``size`` pixels, split by val_size / test_size.

    Args:
        n: images in the pool.
        size: their height and width.
        **kwargs: as ArrayDataModule's.
    """

    name = "blobs"
    example_type: ClassVar[type[Example]] = NoisyImage

    def __init__(self, n: int = 600, size: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n, self.size = n, size

    def load(self) -> Arrays:
        return blobs(self.n, self.size)


class Denoiser(PerExampleLossModel):
    """Three 3 x 3 convolutions, the input added back (it learns the noise to remove).

    Args:
        width: channels of the hidden convolutions.
        **kwargs: as BaseModel's (optimizer, lr_scheduler, ...).
    """

    loss_name = "mse"

    def __init__(self, width: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, example: NoisyImage) -> Denoised:  # type: ignore[override]
        return Denoised(example.image + self.net(example.image))

    def per_example_loss(self, example: NoisyImage, prediction: Denoised) -> Tensor:  # type: ignore[override]
        return ((prediction.value - example.target) ** 2).flatten(1).mean(1)


CONFIG = Path(__file__).with_name("denoise.yaml")

project = Project("blobs", Denoiser, Blobs, CONFIG)
main = project.main


if __name__ == "__main__":
    run(project)
