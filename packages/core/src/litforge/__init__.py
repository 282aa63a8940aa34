"""litforge: the shared core of every task project. Everything a project uses is here, by name.

    from litforge import ClassificationExample, Classifier, ImageDataModule, cli_main

What a task is made of (``litforge.tasks``)
    Example, Prediction, Loss and each kind's subclasses; BaseModel and the kinds' bases
    Classifier, Regressor, Segmenter; their default metrics; TaskData, the data contract.
Data (``litforge.data``)
    Arrays held in memory and batched on the device, ArrayDataModule for any task,
    ImageDataModule for images, ImageFolderDataModule for a folder of them; readers of image
    folders and tables (read_table; TablePreprocessor for empty cells and categories, fitted on
    the training rows); token sequences (Vocabulary, pad_sequences). Data larger
    than memory: StreamedDataModule / StreamedImageDataModule read chunks that prepare_stream
    writes (from an ImageFolderSource, a CsvSource or a module's own arrays).
Diagnostics (``litforge.diagnostics``)
    Extremes, Uncertainty, ConfusionMatrix, Regression: optional callbacks that draw to every
    logger and to files in the run folder.
The run (``litforge.run``)
    cli_main / LitforgeCLI, the command line of a project; the time budget; safety callbacks;
    load, a trained model (checkpoint or run folder) as a Predictor of new inputs; export, an
    ONNX or torch.export file of it with its input normalisation inside.
Experiments (``litforge.experiments``)
    sweeps and seed groups, started as ``python -m <project> sweep|repeat``.
The test kit (``litforge.testing``)
    tiny data and one-call fit/test helpers for a project's tests.

Every name in ``__all__`` is public and stable. Modules inside the folders are internal: their
layout may change; import from ``litforge``.
"""

from litforge.command import run
from litforge.data.arrays import Arrays, ImageArrays
from litforge.data.augment import FlipMode, ImageTransform, flip, random_translate
from litforge.data.device import DeviceLoader
from litforge.data.image_folder import (
    ImageFolderError,
    MissingFolderError,
    check_same_classes,
    default_cache_dir,
    load_arrays_npz,
    read_image_folder,
    save_arrays_npz,
)
from litforge.data.images import ImageDataModule, ImageFolderDataModule
from litforge.data.module import ArrayDataModule
from litforge.data.prepare import (
    ArraysSource,
    CsvSource,
    ImageFolderSource,
    Prepared,
    PrepareError,
    default_stream_root,
    image_folder_sources,
    prepare_stream,
)
from litforge.data.recordings import RecordingsDataModule, read_recordings
from litforge.data.series import SeriesDataModule, TimeSeries, read_series
from litforge.data.split import split_pool
from litforge.data.stream import (
    StreamedDataModule,
    StreamedImageDataModule,
    StreamedImageFolderDataModule,
    StreamLoader,
)
from litforge.data.table import multi_hot, read_table, tag_sets
from litforge.data.tabular import TablePreprocessor, decode_cells, encode_cells
from litforge.data.tags import ImageTableDataModule, read_image_table
from litforge.data.text import (
    Vocabulary,
    decode_strings,
    encode_strings,
    pad_sequences,
    sequence_mask,
)
from litforge.diagnostics.base import EpochCallback
from litforge.diagnostics.confusion import ConfusionMatrix
from litforge.diagnostics.extremes import Extremes
from litforge.diagnostics.media import Images, Table, line_plots
from litforge.diagnostics.regression import Regression
from litforge.diagnostics.uncertainty import Uncertainty
from litforge.errors import (
    CheckpointError,
    CheckpointMismatchError,
    DataError,
    InputError,
    LitforgeError,
    MissingCheckpointError,
    SettingError,
)
from litforge.experiments.pruning import OptunaReport
from litforge.run.budget import BudgetError, choose_precision, process_age, time_train_steps
from litforge.run.cli import LitforgeCLI, cli_main
from litforge.run.export import Exported, ExportError, RawInputModel, export, export_model
from litforge.run.lookahead import Lookahead
from litforge.run.project import Project
from litforge.run.resume import RngState
from litforge.run.safety import NonFiniteLossError, SaveOnInterrupt, StopOnNonFinite
from litforge.run.use import Predictor, load
from litforge.tasks.bases import (
    Classifier,
    MultiLabelClassifier,
    PerExampleLossModel,
    Regressor,
    Segmenter,
)
from litforge.tasks.contracts import ContractError, TaskData, check_data
from litforge.tasks.forecast import (
    Forecaster,
    ForecastExample,
    ForecastPrediction,
    HorizonMAE,
    forecast_metrics,
    seasonal_naive,
)
from litforge.tasks.metrics import (
    StructMetric,
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    segmentation_metrics,
)
from litforge.tasks.model import BaseModel, lr_factor
from litforge.tasks.structs import (
    ClassificationExample,
    ClassificationPrediction,
    Example,
    Loss,
    MultiLabelExample,
    MultiLabelPrediction,
    Prediction,
    RegressionExample,
    RegressionPrediction,
    SegmentationExample,
    SegmentationPrediction,
    Struct,
)

__all__ = [  # noqa: RUF022 (grouped by concern, as the docs list them)
    # tasks: structs
    "Struct",
    "Example",
    "Prediction",
    "Loss",
    "ClassificationExample",
    "ClassificationPrediction",
    "RegressionExample",
    "RegressionPrediction",
    "SegmentationExample",
    "SegmentationPrediction",
    "MultiLabelExample",
    "MultiLabelPrediction",
    "ForecastExample",
    "ForecastPrediction",
    # tasks: models, metrics, the data contract
    "BaseModel",
    "lr_factor",
    "Classifier",
    "Regressor",
    "Segmenter",
    "MultiLabelClassifier",
    "PerExampleLossModel",
    "StructMetric",
    "classification_metrics",
    "regression_metrics",
    "segmentation_metrics",
    "multilabel_metrics",
    "Forecaster",
    "forecast_metrics",
    "HorizonMAE",
    "seasonal_naive",
    "TaskData",
    "ContractError",
    "check_data",
    # data
    "Arrays",
    "ImageArrays",
    "ArrayDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageTableDataModule",
    "RecordingsDataModule",
    "StreamedDataModule",
    "StreamedImageDataModule",
    "StreamedImageFolderDataModule",
    "SeriesDataModule",
    "read_series",
    "TimeSeries",
    "DeviceLoader",
    "StreamLoader",
    "ImageTransform",
    "FlipMode",
    "flip",
    "random_translate",
    "split_pool",
    "read_image_folder",
    "check_same_classes",
    "read_table",
    "read_image_table",
    "read_recordings",
    "multi_hot",
    "tag_sets",
    "TablePreprocessor",
    "encode_cells",
    "decode_cells",
    "Vocabulary",
    "pad_sequences",
    "sequence_mask",
    "encode_strings",
    "decode_strings",
    "default_cache_dir",
    "save_arrays_npz",
    "load_arrays_npz",
    "ImageFolderError",
    "MissingFolderError",
    "prepare_stream",
    "Prepared",
    "ImageFolderSource",
    "image_folder_sources",
    "CsvSource",
    "ArraysSource",
    "default_stream_root",
    "PrepareError",
    # diagnostics
    "Extremes",
    "Uncertainty",
    "ConfusionMatrix",
    "Regression",
    "EpochCallback",
    "Images",
    "Table",
    "line_plots",
    # the run
    "Project",
    "run",
    "cli_main",
    "LitforgeCLI",
    "Lookahead",
    "StopOnNonFinite",
    "SaveOnInterrupt",
    "RngState",
    "NonFiniteLossError",
    "BudgetError",
    "choose_precision",
    "time_train_steps",
    "process_age",
    # using a trained model
    "load",
    "Predictor",
    "export",
    "export_model",
    "Exported",
    "RawInputModel",
    "ExportError",
    # experiments
    "OptunaReport",
    # errors
    "LitforgeError",
    "DataError",
    "InputError",
    "SettingError",
    "CheckpointError",
    "CheckpointMismatchError",
    "MissingCheckpointError",
]
