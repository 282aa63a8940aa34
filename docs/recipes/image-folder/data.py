"""The data: your images in class folders, of any sizes, resized to one size on the first read
and cached (``ImageFolderDataModule``): ``<root>/<class>/*.jpg``, or ``<root>/train/<class>/``
and ``<root>/test/<class>/``. Give the folder with ``make train-mytask DATA=path``.
"""

from litforge import ImageFolderDataModule


class ShapesData(ImageFolderDataModule):
    name = (
        "images"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    )
