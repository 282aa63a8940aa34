"""What the diagnostic callbacks share: per-epoch collection, exact gathering, names."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor

from litforge.media import to_uint8
from litforge.structs import Example, Prediction


def gather_dedup(pl_module: pl.LightningModule, data: dict[str, Tensor]) -> dict[str, Tensor]:
    """Concatenates ``data`` from every rank (any length per rank) and drops repeated
    ``data["index"]`` values (the padding a distributed sampler adds), keeping the first.
    Runs on every rank; all ranks get the same result."""
    world = pl_module.trainer.world_size if pl_module._trainer else 1
    if world > 1:
        n = data["index"].shape[0]
        sizes: Tensor = pl_module.all_gather(torch.tensor(n, device=data["index"].device))  # type: ignore[assignment]
        sizes = sizes.view(-1)
        m = int(sizes.max())
        padded = {
            k: torch.cat([v, v.new_zeros((m - n, *v.shape[1:]))]) if m > n else v
            for k, v in data.items()
        }
        gathered: dict[str, Tensor] = pl_module.all_gather(padded)  # type: ignore[assignment]
        data = {
            k: torch.cat([g[r, : int(sizes[r])] for r in range(world)]) for k, g in gathered.items()
        }
    return dedup(data)


def dedup(data: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keeps the first row for each distinct ``index``, in their original order."""
    index = data["index"]
    if index.numel() == 0:
        return data
    unique, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(len(index), device=index.device)
    first = torch.full((len(unique),), len(index), device=index.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin").sort().values
    return {k: v[first] for k, v in data.items()}


def class_names(trainer: pl.Trainer, num_classes: int) -> list[str]:
    """Class names from the data module (``class_names``), else '0', '1', ..."""
    names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
    if names is not None and len(names) == num_classes:
        return list(names)
    return [str(i) for i in range(num_classes)]


def display_images(trainer: pl.Trainer, images: Tensor) -> Tensor:
    """uint8 pixels for showing a batch: the data module's ``to_display`` if it has one."""
    to_display = getattr(getattr(trainer, "datamodule", None), "to_display", None)
    return to_display(images) if callable(to_display) else to_uint8(images)


class EpochCallback(Callback):
    """Calls ``collect`` at every validation / test batch end of the chosen stages and
    ``finish`` once per dataset at the epoch end (on every rank; skipped in sanity checks)."""

    def __init__(self, stages: tuple[str, ...] | list[str] = ("val", "test")) -> None:
        bad = set(stages) - {"val", "test"}
        if bad:
            raise ValueError(f"stages must be 'val' and/or 'test', got {sorted(bad)}")
        self.stages = tuple(stages)
        self.state: dict[tuple[str, int], Any] = {}

    def collect(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        key: tuple[str, int],
        example: Example,
        prediction: Prediction,
    ) -> None:
        raise NotImplementedError

    def finish(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        stage: str,
        dataset: str,
        state: Any,
    ) -> None:
        raise NotImplementedError

    def _on_batch_end(
        self,
        stage: str,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        dataloader_idx: int,
    ) -> None:
        if stage not in self.stages or trainer.sanity_checking:
            return
        if not isinstance(outputs, dict) or "prediction" not in outputs:
            raise TypeError(
                f"{type(self).__name__} needs the step to return {{'prediction': ...}} "
                "(BaseModel does)"
            )
        self.collect(trainer, pl_module, (stage, dataloader_idx), batch, outputs["prediction"])

    def _on_epoch_end(self, stage: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if stage not in self.stages or trainer.sanity_checking:
            self.state.clear()
            return
        names = _dataset_names(pl_module, stage)
        for idx, name in enumerate(names):
            state = self.state.pop((stage, idx), None)
            if state is not None:
                self.finish(trainer, pl_module, stage, name, state)
        self.state.clear()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):  # type: ignore[no-untyped-def]
        self._on_batch_end("val", trainer, pl_module, outputs, batch, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        self._on_batch_end("test", trainer, pl_module, outputs, batch, dataloader_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._on_epoch_end("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._on_epoch_end("test", trainer, pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state.clear()

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state.clear()


def _dataset_names(pl_module: pl.LightningModule, stage: str) -> list[str]:
    names = getattr(pl_module, "dataset_names", None)
    return list(names(stage)) if callable(names) else ["data"]


def append(state: dict[str, list[Tensor]] | None, **rows: Tensor) -> dict[str, list[Tensor]]:
    """Appends rows to a dict of lists of tensors (created on first use)."""
    state = state if state is not None else {k: [] for k in rows}
    for k, v in rows.items():
        state[k].append(v)
    return state


def concat(state: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat(v) for k, v in state.items()}
