"""The k highest-error and k lowest-error examples of an epoch, shown as the data module draws
them: a captioned image grid for images (with masks for dense targets), a table of fields for
feature rows, decoded text when the task gives a decoder.

The error is the model's ``example_error`` (default: the per-example loss; a task may define
its own). Exact over the whole epoch and every rank: each rank keeps its own running top-k
(free of repeated indices) of the examples and predictions themselves, the candidates are
gathered and ranked once more, and only the final k on each side are drawn. Ties are broken by
dataset index, so the choice is deterministic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from litforge.diagnostics.base import EpochCallback, dedup, gather_dedup
from litforge.diagnostics.media import Images, Scored, Table, View, emit_view, fmt
from litforge.tasks.contracts import ContractError, per_example, task_data
from litforge.tasks.model import BaseModel
from litforge.tasks.structs import Example, Prediction


def select(data: dict[str, Tensor], k: int, highest: bool) -> dict[str, Tensor]:
    """The k rows with the highest (or lowest) ``error``, ties broken by ascending ``index``."""
    order = torch.argsort(data["index"], stable=True)
    order = order[torch.argsort(data["error"][order], descending=highest, stable=True)][:k]
    return {key: v[order] for key, v in data.items()}


def flatten(example: Example, prediction: Prediction, error: Tensor) -> dict[str, Tensor]:
    """One dict of batched tensors: ``index``, ``error``, ``x.<field>`` and ``y.<field>``."""
    rows = {"index": example.index, "error": error.float()}
    rows |= {
        f"x.{k}": v for k, v in example._tensor_fields().items() if k != "index" and v.dim() > 0
    }
    rows |= {f"y.{k}": v for k, v in prediction._tensor_fields().items() if v.dim() > 0}
    return rows


def rebuild(
    rows: dict[str, Tensor], example: Example, prediction: Prediction
) -> tuple[Example, Prediction]:
    """The structs back from ``flatten``'s rows (non-tensor fields from the given templates)."""
    ex = dataclasses.replace(
        example,
        index=rows["index"],
        **{k[2:]: v for k, v in rows.items() if k.startswith("x.")},
    )
    pred = dataclasses.replace(
        prediction, **{k[2:]: v for k, v in rows.items() if k.startswith("y.")}
    )
    return ex, pred


class Extremes(EpochCallback):
    """The k highest- and lowest-error examples, drawn by the data module's ``show``.

    Args:
        k: how many examples on each side.
        fields: for a table, the columns to keep besides index and error (example fields by
            name, prediction fields as ``pred.<name>``); null: every column.
        stages: 'val' and/or 'test'.
        **kwargs: the cadence of validation pictures and the files kept (EpochCallback).

    Beside each picture, ``<step>.json`` holds the model shown and one record per example:
    index, error, id, every one-value field (class names for labels), for classification the
    probabilities of the true and the predicted class and, for pictures, the caption drawn and
    every fact ``show`` gave for it (``Images.facts``).
    """

    def __init__(
        self,
        k: int = 16,
        fields: list[str] | None = None,
        stages: tuple[str, ...] | list[str] = ("val", "test"),
        **kwargs: Any,
    ) -> None:
        super().__init__(stages, **kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.fields = k, fields
        self._templates: tuple[Example, Prediction] | None = None
        # What was last shown, per (stage, dataset, side): index, error and the view drawn.
        self.last_selection: dict[tuple[str, str, str], dict[str, Any]] = {}

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        if not isinstance(pl_module, BaseModel):
            raise ContractError(
                f"Extremes ranks by BaseModel.example_error; {type(pl_module).__name__} is not a "
                "litforge BaseModel"
            )
        error = per_example("Extremes", pl_module.example_error(example, prediction), example)
        data = task_data(pl_module.trainer)
        if data is not None and self.fields is not None:  # a misspelled column fails now
            try:
                with_error(data.show(example, prediction), error, self.fields)
            except ValueError as err:
                raise ContractError(str(err)) from err

    def collect(self, trainer, pl_module, key, example, prediction) -> None:  # type: ignore[no-untyped-def]
        error = per_example("Extremes", pl_module.example_error(example, prediction), example)
        self._templates = (example[:1], prediction[:1])
        batch = dedup(flatten(example, prediction.detach(), error.detach()))
        # Only this batch's own k highest and k lowest can reach the epoch's extremes.
        state = self.state.get(key)
        new_state = {}
        for side, highest in (("high", True), ("low", False)):
            mine = select(batch, self.k, highest)
            merged = (
                mine
                if state is None
                else {k: torch.cat([state[side][k], v]) for k, v in mine.items()}
            )
            new_state[side] = select(dedup(merged), self.k, highest)
        self.state[key] = new_state

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> dict[str, dict[str, Tensor]]:
        return {
            side: select(gather_dedup(pl_module, state[side]), self.k, side == "high")
            for side in ("high", "low")
        }  # gathered on every rank; drawn on rank 0

    def draw(
        self, trainer: pl.Trainer, stage: str, dataset: str, summary: Any, shown: Scored
    ) -> None:
        data = task_data(trainer)
        if data is None or self._templates is None:
            return
        for side, name in (("high", "highest_error"), ("low", "lowest_error")):
            rows = summary[side]
            example, prediction = rebuild(rows, *self._templates)
            records = example_facts(data, example, prediction, rows["error"])
            view = with_error(data.show(example, prediction), rows["error"], self.fields, records)
            if isinstance(view, Images):  # the caption and its facts join each record
                for record, extra in zip(records, view.facts or ()):
                    for fact, value in extra.items():
                        record.setdefault(fact, value)
                for record, caption in zip(records, view.captions):
                    record["caption"] = caption
                view = dataclasses.replace(view, facts=None)
            self.last_selection[(stage, dataset, name)] = {
                "index": rows["index"].cpu(),
                "error": rows["error"].cpu(),
                "view": view,
                "facts": records,
            }
            what = f"{name.replace('_', ' ')}: {len(records)} examples"
            # a table shows the values the model saw: say which fields are not the source's
            shown_fields = set(view.columns) if isinstance(view, Table) else set()
            standardised = [  # of the fields shown: a table's cells are as the file has them
                f for f in standardised_fields(trainer) if shown_fields & {f, f"pred.{f}"}
            ]
            if standardised:
                what += f" · standardised: {', '.join(standardised)}"
            emit_view(
                trainer,
                f"{stage}/{dataset}/extremes/{name}",
                view,
                step=shown.step,
                title=self.title(stage, dataset, what, shown),
                facts={
                    "model": shown.facts(),
                    # what was shown, as data: each example's index in the dataset, its error
                    # and every fact of its caption
                    "index": rows["index"].tolist(),
                    "error": rows["error"].tolist(),
                    "examples": records,
                    "standardised": standardised,
                },
                keep=self.keep_files,
            )


ID_NAMES = ("id", "ids", "uid")


def standardised_fields(trainer: pl.Trainer) -> tuple[str, ...]:
    """The fields the trainer's data module standardises (its ``standardize``) that the
    diagnostics see standardised: their values are not the source's numbers. A field the model
    gives back in the user's units (the Regressor's ``target``: ``restored_fields``) is not."""
    fields = getattr(getattr(trainer, "datamodule", None), "standardize", None) or ()
    restored = getattr(trainer.lightning_module, "restored_fields", ()) if trainer else ()
    if not isinstance(fields, list | tuple):
        return ()
    return tuple(str(f) for f in fields if f not in restored)


def example_facts(
    data: Any, example: Example, prediction: Prediction, error: Tensor
) -> list[dict[str, Any]]:
    """One record per example: its index, error, every one-value field of the example and the
    prediction (class names through the data's ``describe``), a table's cells by column name
    (the data's ``source_cells``), for classification the probability of the true class and of
    the predicted one, and for multi-label the true and the predicted sets (``target``,
    ``pred``: lists of label names)."""
    describe = getattr(data, "describe", None)

    def value(field: str, v: Tensor) -> Any:
        return describe(field, v) if describe is not None else v.item()

    records: list[dict[str, Any]] = [
        {"index": int(i), "error": float(e)} for i, e in zip(example.index.tolist(), error.tolist())
    ]
    for prefix, struct in (("", example), ("pred.", prediction)):
        for name, values in struct.tensors().items():
            text_id = name == "id" and values.dim() == 2 and values.dtype == torch.uint8
            if name == "index" or len(values) != len(records) or not (values.dim() == 1 or text_id):
                continue
            for record, v in zip(records, values.cpu()):
                record[prefix + name] = value(name, v)
    source_cells = getattr(data, "source_cells", None)  # a table's cells, as the file has them
    for name, cells in (source_cells(example) if source_cells is not None else {}).items():
        for record, cell in zip(records, cells):
            record.setdefault(name, cell)
    probs, label = getattr(prediction, "probs", None), getattr(example, "label", None)
    if (
        isinstance(probs, Tensor)
        and isinstance(label, Tensor)
        and probs.dim() == 2
        and label.shape == (len(records),)
    ):
        p_true = probs.float().gather(-1, label.long()[:, None])[:, 0]
        p_top = probs.float().max(-1).values
        for record, t, q in zip(records, p_true.tolist(), p_top.tolist()):
            record["p(true)"], record["p(predicted)"] = t, q
    target, pred = getattr(example, "target", None), getattr(prediction, "pred", None)
    if (
        isinstance(target, Tensor)
        and isinstance(pred, Tensor)
        and target.dim() == 2
        and pred.shape == target.shape
        and not target.is_floating_point()
    ):  # multi-label: the true and the predicted sets, by name
        given = getattr(data, "class_names", None)
        names = list(given) if given and len(given) == target.shape[1] else None
        names = names or [str(k) for k in range(target.shape[1])]
        for record, t, p in zip(records, target.cpu().tolist(), pred.cpu().tolist()):
            record["target"] = [n for n, on in zip(names, t) if on]
            record["pred"] = [n for n, on in zip(names, p) if on]
    return records


def with_error(
    view: View,
    error: Tensor,
    fields: list[str] | None = None,
    records: list[dict[str, Any]] | None = None,
) -> View:
    """The view with each example's error added: to its caption (with its id, or its index
    when the caption lacks it), or as a table column (the table cut to ``fields`` when
    given)."""
    values = error.tolist()
    if isinstance(view, Images):
        captions = []
        for i, (caption, e) in enumerate(zip(view.captions, values)):
            record = records[i] if records else {}
            name = next((k for k in record if k in ID_NAMES or k.endswith("_id")), None)
            parts = [f"id {record[name]}"] if name else []
            if not name and "index" in record and f"#{record['index']}" not in caption.split():
                parts.append(f"#{record['index']}")
            parts.append(f"error {fmt(e)}")
            extra = " · ".join(parts)
            captions.append(f"{caption}\n{extra}" if caption else extra)
        return dataclasses.replace(view, captions=captions)
    if isinstance(view, Table):
        columns = view.columns
        if fields is not None:
            unknown = sorted(set(fields) - set(columns))
            if unknown:
                raise ValueError(
                    f"Extremes: no column {unknown} in the table; it has {list(columns)}"
                )
            columns = {k: v for k, v in columns.items() if k == "index" or k in fields}
        return Table({"error": values, **columns})
    raise TypeError(f"show() must return media.Images or media.Table, got {type(view).__name__}")
