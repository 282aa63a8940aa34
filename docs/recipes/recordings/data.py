"""The data: one CSV of numbers per recording (sensor readings over time: a row per reading, a
column per channel), named in a table with each recording's class (``file,label``). Give the
table with ``make train-mytask DATA=path/to/labels.csv``."""

from litforge import RecordingsDataModule


class ShapesData(RecordingsDataModule):
    name = "recordings"  # Real task: your data set's name; metrics are <stage>/<name>/<metric>
