"""The data: your image files, of any sizes, named in a CSV with their tags (``file,tags``: a
space-separated set of labels per image, maybe empty), resized to one size on the first read
and cached (``ImageTableDataModule``). Give the CSV with ``make train-mytask DATA=path``.
"""

from litforge import ImageTableDataModule


class ShapesData(ImageTableDataModule):
    name = (
        "images"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    )
