"""The tiny image task of ``litforge.testing.images``, streamed from chunks on disk:
``python -m litforge.testing.streamed prepare|fit ...`` (DDP and resume tests run it).

The same synthetic images (``--data.root`` unset) or an image folder (``--data.root=PATH``
with ``train/<class>/*`` and ``test/<class>/*``), written into chunks under
``--data.cache_dir`` and read back by worker processes; ``--data.stream=false`` holds the same
data in memory instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litforge.command import run
from litforge.data.arrays import ImageArrays
from litforge.data.image_folder import read_image_folder
from litforge.data.prepare import ImageFolderSource
from litforge.data.stream import StreamedImageDataModule
from litforge.run.project import Project
from litforge.testing.images import TinyClassifier, synthetic_images


class StreamedSyntheticData(StreamedImageDataModule):
    """Synthetic images (``n_train`` / ``n_test`` of ``n_classes`` classes), or the image folder
    ``root``; the rest: StreamedImageDataModule."""

    name = "synthetic"

    def __init__(
        self,
        n_train: int = 256,
        n_test: int = 64,
        n_classes: int = 4,
        root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_train, self.n_test, self.n_classes, self.root = n_train, n_test, n_classes, root

    def load(self) -> tuple[ImageArrays, ImageArrays]:
        if self.root:
            return read_image_folder(self.root, "train"), read_image_folder(self.root, "test")
        return (
            synthetic_images(self.n_train, self.n_classes, seed=0),
            synthetic_images(self.n_test, self.n_classes, seed=1),
        )

    def sources(self) -> dict[str, Any]:
        if self.root:  # the files themselves, decoded by the loader's workers
            return {split: ImageFolderSource(self.root, split) for split in ("train", "test")}
        return super().sources()


CONFIG = Path(__file__).with_name("images.yaml")

project = Project("streamed", TinyClassifier, StreamedSyntheticData, CONFIG)
main = project.main


if __name__ == "__main__":
    run(project)
