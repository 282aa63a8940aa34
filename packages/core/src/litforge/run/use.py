"""Use a trained model: ``load(checkpoint or run folder)`` gives a ``Predictor`` that takes raw
inputs (image files or arrays, table rows, text lines) and returns readable rows.

    predictor = litforge.load("runs/template/20260101-120000-ab12cd")   # its best checkpoint
    predictor.predict("new_images/")   # [{"id": "cat.jpg", "prediction": "disk", ...}, ...]

Everything comes from the checkpoint: the model from its hyperparameters
(``Model.load_from_checkpoint``), the data module from its own (``data_class.load_from_checkpoint``)
with what the data taught restored by its ``load_state_dict`` (class names, statistics,
vocabulary, image size and normalisation): no training data is read. The data module's hooks
``read_inputs`` / ``input_loader`` / ``readable`` (``litforge.data.module``) do the kind's part.

``python -m <project> predict --ckpt_path=<checkpoint or run folder> --data.predict=<path>``
runs the same through the trainer and writes ``predictions.csv`` (``write_predictions``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from litforge.data.arrays import Arrays
from litforge.data.module import restoring
from litforge.errors import CheckpointError, MissingCheckpointError, SettingError
from litforge.tasks.structs import Prediction

MODEL_CLASS_KEY = "model_class_path"  # BaseModel.on_save_checkpoint writes it


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint a path means: a file as it is; a run folder, the checkpoint its test
    scored (``results.json``), else its newest ``checkpoints/best-*.ckpt``, else
    ``checkpoints/last.ckpt``."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise MissingCheckpointError(f"no checkpoint or run folder at {path}")
    results = path / "results.json"
    if results.is_file():
        with contextlib.suppress(ValueError, OSError):
            tested = json.loads(results.read_text()).get("checkpoint")
            if isinstance(tested, str) and (path / tested).is_file():
                return path / tested
    folder = path / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    raise MissingCheckpointError(
        f"{path} holds no checkpoint (checkpoints/best-*.ckpt or checkpoints/last.ckpt): give "
        "a run folder of a fit, or a .ckpt file"
    )


def _import(class_path: str, what: str, ckpt: Path) -> type[Any]:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as err:
        raise CheckpointError(
            f"{ckpt}: its {what} {class_path} cannot be imported ({err}); install its project"
        ) from err


def data_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """What the data taught, as the data module's ``state_dict`` saved it in ``checkpoint``
    (Lightning stores it under the module's class name), or None."""
    for value in checkpoint.values():
        if (
            isinstance(value, dict)
            and isinstance(value.get("class_path"), str)
            and {"class_names", "stats"} <= set(value)
        ):
            return value
    return None


class Predictor:
    """A trained model and what its data taught, for new inputs (``litforge.load`` makes one).

    Attributes:
        model: the LightningModule, in eval mode, on ``device``.
        data: its data module, restored from the checkpoint without reading any data.
        checkpoint: the file both came from.
        device: where the model runs.
    """

    def __init__(
        self, model: pl.LightningModule, data: Any, checkpoint: Path, device: str = "cpu"
    ) -> None:
        self.model, self.data, self.checkpoint = model.eval(), data, checkpoint
        self.device = torch.device(device)
        self.model.to(self.device)

    def __repr__(self) -> str:
        return (
            f"Predictor({type(self.model).__name__}, {type(self.data).__name__}, {self.checkpoint})"
        )

    def inputs(self, source: Any) -> Arrays:
        """Raw inputs as the model's input fields and their ids (the data module's
        ``read_inputs``): a file, a folder, rows, arrays."""
        return self.data.read_inputs(source)  # type: ignore[no-any-return]

    @torch.no_grad()
    def outputs(self, inputs: Arrays) -> Prediction:
        """The model's ``Prediction`` for every item of ``inputs`` (``inputs(...)``'s), joined
        over the batches, on the CPU, in the inputs' order."""
        batches = [self.model(example) for example in self.data.input_loader(inputs, self.device)]
        return type(batches[0]).collate(batches).to("cpu")  # type: ignore[no-any-return]

    def predict(self, source: Any) -> list[dict[str, Any]]:
        """Readable predictions for raw inputs, one dict per item: its ``id`` (file name, id
        column or position), then the kind's values (``prediction`` and ``probability`` and
        each class's ``p(<name>)``; values in the target's units; ``mask`` arrays)."""
        inputs = self.inputs(source)
        return self.data.readable(inputs, self.outputs(inputs))  # type: ignore[no-any-return]


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """A trained model ready for new inputs, from a checkpoint or a run folder (its best
    checkpoint: the one its test scored, else last.ckpt), in a fresh process: the model and
    what its data taught (class names, statistics, vocabulary, image size and normalisation)
    come from the checkpoint alone, loaded with torch's ``weights_only=True``."""
    ckpt = find_checkpoint(path)
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many kinds for a bad file
        raise CheckpointError(f"cannot load the checkpoint {ckpt}: {err}") from err
    state = data_state(checkpoint)
    model_path = checkpoint.get(MODEL_CLASS_KEY) or checkpoint.get("hyper_parameters", {}).get(
        "_class_path"
    )
    if state is None or not isinstance(model_path, str):
        raise CheckpointError(
            f"{ckpt} holds no {'data state' if state is None else 'model class'}: it was "
            "written before checkpoints carried them; train again to use it"
        )
    model_class = _import(model_path, "model", ckpt)
    data_class = _import(state["class_path"], "data module", ckpt)
    model = model_class.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    with restoring(state):  # every data module built here restores what the data taught
        try:  # with its training arguments, if they still hold here (a data folder may not)
            data = data_class.load_from_checkpoint(ckpt, weights_only=True)
        except Exception:
            try:
                data = data_class()
            except Exception as err:
                raise CheckpointError(
                    f"{ckpt}: its data module {state['class_path']} cannot be rebuilt: {err}"
                ) from err
    return Predictor(model, data, ckpt, device)


# ---------------------------------------------------------------------- the predict command
PREDICT_HELP = (
    "new inputs without labels to predict (a folder of images, a CSV without the label or "
    "target column, a text file of one sequence a line): predictions.csv in a run folder of "
    "its own; needs --ckpt_path (a checkpoint or a run folder: its best checkpoint). "
    "Without it, predict scores the test set into predictions.pt"
)


def add_predict_argument(parser: Any) -> None:
    """``--data.predict`` (``python -m <project> predict``), taken out of the data's
    arguments before the data module is built (``take_new_inputs``)."""
    parser.add_argument("--data.predict", type=str | None, default=None, help=PREDICT_HELP)


def take_new_inputs(config: Any) -> str | None:
    """``data.predict`` of a predict command's config (``drop_new_inputs`` removes it before
    the data module is built); resolves a run folder given as ``ckpt_path`` to its best
    checkpoint (``find_checkpoint``)."""
    source = config.data.get("predict")
    ckpt = config.get("ckpt_path")
    if ckpt and Path(ckpt).is_dir():
        config.ckpt_path = str(find_checkpoint(ckpt))
    if source is not None and not config.get("ckpt_path"):
        raise SettingError(
            f"--data.predict={source} needs the trained model: --ckpt_path=<checkpoint or run "
            "folder>"
        )
    return source  # type: ignore[no-any-return]


def drop_new_inputs(config: Any) -> None:
    """Removes ``data.predict`` from the config: it is not an argument of the data module."""
    if "predict" in config.data:
        del config.data["predict"]


def checkpoint_data_state(ckpt_path: str | Path) -> dict[str, Any] | None:
    """``data_state`` of the checkpoint file at ``ckpt_path``."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return data_state(checkpoint)


# ---------------------------------------------------------------------- predictions.csv
def write_predictions(rows: list[dict[str, Any]], folder: Path) -> Path:
    """``rows`` (``readable``'s) as ``<folder>/predictions.csv``: one line per item, a column
    per key; an array value (a mask, an image) is written as a PNG under ``<folder>/<key>s/``
    (masks hold each pixel's class id) and its cell is that file's path. The CSV is written to a
    temporary name and renamed when complete: a ``predictions.csv`` is always whole."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = []
    for i, row in enumerate(rows):
        line = {}
        for key, value in row.items():
            if isinstance(value, np.ndarray):
                name = re.sub(r"[^\w.-]+", "_", Path(str(row.get("id", i))).stem) or str(i)
                file = folder / f"{key}s" / f"{i:05d}-{name}.png"
                file.parent.mkdir(exist_ok=True)
                _save_png(value, file)
                value = str(file.relative_to(folder))
            elif isinstance(value, float):
                value = f"{value:.6g}"
            line[key] = value
        table.append(line)
    path = folder / "predictions.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(table)
    tmp.replace(path)
    return path


def _save_png(array: np.ndarray, path: Path) -> None:
    """A mask (H x W integers) as-is in 8 bits; a float image (C x H x W, [0, 1]) as pixels."""
    if array.ndim == 3:
        pixels = np.clip(array.transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels[:, :, :3])
    else:
        image = Image.fromarray(array.astype(np.uint8))
    image.save(path)


def predict_new_inputs(
    trainer: pl.Trainer, data: Any, predict: Callable[[], Any], source: str, run_dir: Path
) -> Path | None:
    """``python -m <project> predict --data.predict=<source>``: reads the new inputs with the
    data module's ``read_inputs``, predicts them with ``predict()`` (the CLI's
    ``trainer.predict``: its progress bar, its checkpoint), and writes them readable to
    ``<run dir>/predictions.csv``."""
    data.new_inputs = data.read_inputs(source)
    data.prepare_data = lambda: None  # the training data is neither fetched nor prepared
    batches = predict() or []
    if not trainer.is_global_zero or not batches:
        return None
    joined = type(batches[0]).collate(batches).to("cpu")
    return write_predictions(data.readable(data.new_inputs, joined), run_dir)
