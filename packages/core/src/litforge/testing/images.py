"""A tiny image classification task: noisy 8 x 8 images whose class sets the mean colour and a
bright quadrant. ``python -m litforge.testing.images fit ...``"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from litforge.data import ImageArrays, ImageDataModule
from litforge.run.project import Project
from litforge.tasks.bases import Classifier
from litforge.tasks.structs import ClassificationExample, ClassificationPrediction


def synthetic_images(n: int, num_classes: int = 4, size: int = 8, seed: int = 0) -> ImageArrays:
    """Noisy images whose class sets the mean colour and a bright quadrant: learnable, not trivial."""
    labels = torch.arange(n) % num_classes
    palette = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(1234))
    palette = palette * 160 + 40
    g = torch.Generator().manual_seed(seed)
    images = palette[labels] + torch.randn(n, 3, size, size, generator=g) * 40
    half = size // 2
    for c in range(num_classes):
        r, q = divmod(c % 4, 2)
        images[labels == c, :, r * half : (r + 1) * half, q * half : (q + 1) * half] += 50
    return ImageArrays(
        images.clamp(0, 255).to(torch.uint8), labels, tuple(f"class{c}" for c in range(num_classes))
    )


class SyntheticData(ImageDataModule):
    """Synthetic images in memory: ``n_train`` / ``n_test`` of ``n_classes`` classes."""

    name = "synthetic"

    def __init__(
        self, n_train: int = 256, n_test: int = 64, n_classes: int = 4, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.n_classes = n_train, n_test, n_classes

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        return (
            synthetic_images(self.n_train, self.n_classes, seed=0),
            synthetic_images(self.n_test, self.n_classes, seed=1),
        )


class TinyClassifier(Classifier):
    """A small conv net; ``num_classes`` and ``in_channels`` come from the data. ``dropout``:
    the probability of dropping each pooled feature before the linear head (0: none)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width: int = 16,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * width, num_classes),
        )
        self.dropout = nn.Dropout(dropout)  # no weights: the state dict's keys stay the same

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        features = self.net[:-1](example.image)
        return ClassificationPrediction(logits=self.net[-1](self.dropout(features)))


CONFIG = Path(__file__).with_name("images.yaml")


project = Project("synthetic", TinyClassifier, SyntheticData, CONFIG)
main = project.main


if __name__ == "__main__":
    main()  # python -m litforge.testing runs it with litforge.run (the package's __main__)
