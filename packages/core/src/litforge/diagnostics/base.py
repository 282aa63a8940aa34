"""What the diagnostic callbacks share: per-epoch collection, exact gathering, the contract
check at the start of a run, and a guard that turns a diagnostic's failure into a warning."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from litforge.tasks.contracts import ContractError, dataset_names, probe
from litforge.tasks.structs import Example, Prediction


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


class EpochCallback(Callback):
    """Calls ``collect`` at every validation / test batch end of the chosen stages and
    ``finish`` once per dataset at the epoch end (on every rank; skipped in sanity checks).

    At the start of fit or test, ``check(example, prediction)`` sees a probe batch (two
    examples and the model's prediction for them): a subclass raises a ContractError there when
    the structs lack what it reads, so the run stops before its first step. Later, a failure
    in ``collect`` or ``finish`` is a warning that names the callback: the run goes on, without
    that diagnostic for the rest of the epoch, and still writes its results.
    """

    def __init__(self, stages: tuple[str, ...] | list[str] = ("val", "test")) -> None:
        bad = set(stages) - {"val", "test"}
        if bad:
            raise ValueError(f"stages must be 'val' and/or 'test', got {sorted(bad)}")
        self.stages = tuple(stages)
        self.state: dict[tuple[str, int], Any] = {}
        self._broken: set[tuple[str, int]] = set()

    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        """Raise a ContractError when the structs lack what this callback reads."""

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        probed = probe(trainer, pl_module, self.stages)
        if probed is not None:
            self.check(pl_module, *probed)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "test":  # a test after fit was checked at fit start
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._check(trainer, pl_module)

    def _failed(self, what: str, key: tuple[str, int], err: Exception) -> None:
        if isinstance(err, ContractError):
            raise err
        self._broken.add(key)
        self.state.pop(key, None)
        rank_zero_warn(
            f"{type(self).__name__} failed in {what} ({key[0]}, dataloader {key[1]}): "
            f"{type(err).__name__}: {err}. The run goes on without this diagnostic for the rest "
            "of the epoch.",
            category=UserWarning,
        )

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
            raise ContractError(
                f"{type(self).__name__} needs the step to return {{'prediction': ...}} "
                "(BaseModel does)"
            )
        key = (stage, dataloader_idx)
        if key in self._broken:
            return
        try:
            self.collect(trainer, pl_module, key, batch, outputs["prediction"])
        except Exception as err:
            self._failed("collect", key, err)

    def _on_epoch_end(self, stage: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if stage not in self.stages or trainer.sanity_checking:
            self.state.clear()
            return
        names = dataset_names(trainer, stage)
        for idx, name in enumerate(names):
            state = self.state.pop((stage, idx), None)
            if state is not None:
                try:
                    self.finish(trainer, pl_module, stage, name, state)
                except Exception as err:
                    self._failed(f"finish for {stage}/{name}", (stage, idx), err)
        self.state.clear()
        self._broken.clear()

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
        self._broken.clear()

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state.clear()
        self._broken.clear()


def append(state: dict[str, list[Tensor]] | None, **rows: Tensor) -> dict[str, list[Tensor]]:
    """Appends rows to a dict of lists of tensors (created on first use)."""
    state = state if state is not None else {k: [] for k in rows}
    for k, v in rows.items():
        state[k].append(v)
    return state


def concat(state: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat(v) for k, v in state.items()}
