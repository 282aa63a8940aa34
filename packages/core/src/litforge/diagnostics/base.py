"""What the diagnostic callbacks share: per-epoch collection, exact gathering, the contract
check at the start of a run, the cadence of validation pictures (and the time they may cost),
and a guard that turns a diagnostic's failure into a warning."""

from __future__ import annotations

import dataclasses
import time
import weakref
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from litforge.diagnostics.media import Scored, scored
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


Cadence = int | Literal["auto", "end"]
DRAW_PRIOR_S = 0.5  # the expected cost of one drawing before any was timed (seconds)


@dataclasses.dataclass
class _Ledger:
    """The time the diagnostics of one fit spent in validation, against the fit's time."""

    start: float
    spent: float = 0.0

    def allows(self, cost: float, share: float) -> bool:
        return self.spent + cost <= share * (time.perf_counter() - self.start)


_LEDGERS: weakref.WeakKeyDictionary[pl.Trainer, _Ledger] = weakref.WeakKeyDictionary()


class EpochCallback(Callback):
    """Calls ``collect`` at every validation / test batch end of the chosen stages, ``finish``
    once per dataset at the epoch end (on every rank; skipped in sanity checks), and ``draw``
    with what ``finish`` returned when the pictures are due (rank 0).

    A subclass writes (a worked, tested example: docs/kind-of-your-own.md):

    - ``check(pl_module, example, prediction)``: optional; raise a ``ContractError`` when the
      structs lack a field it reads.
    - ``collect(trainer, pl_module, key, example, prediction)``: at every batch end; ``key`` is
      ``(stage, dataloader_idx)``. The structs are the step's, in the user's units
      (``BaseModel.in_user_units``: a standardised target in its own units), the prediction
      detached. Keep what the epoch needs in ``self.state[key]`` (``append`` adds rows of
      tensors, ``concat`` joins them), on the device: reading a value on the host here stalls
      the GPU at every batch.
    - ``finish(trainer, pl_module, stage, dataset, state)``: once per dataset at the epoch's
      end, on every rank, with ``state = self.state[key]`` (then cleared): gather across ranks
      (``gather_dedup``: every example once, the sampler's padding dropped), log numbers
      (``pl_module.log``), return what ``draw`` needs (None: nothing to draw).
    - ``draw(trainer, stage, dataset, summary, shown)``: rank 0, when the pictures are due;
      ``shown.step`` names the files, ``self.title(stage, dataset, what, shown)`` is the line
      at a picture's top. Send pictures through ``litforge.diagnostics.media`` (``emit_view``
      of ``line_plots`` / ``Images`` / ``Table``, ``emit_figure``) with ``facts`` (the JSON
      beside the picture: the numbers it shows) and ``keep=self.keep_files``.

    State kept between calls: ``state`` (per ``(stage, dataloader_idx)``, this epoch's, cleared
    at each epoch's start and end), ``drawn`` (``(stage, dataset, step)`` of every drawing);
    a subclass adds its own (Extremes: ``last_selection``, what it last showed).

    ``finish`` gathers across ranks and logs the epoch's numbers (every epoch: they are
    cheap); ``draw`` makes the pictures (what costs time). Test and stand-alone validation
    pictures are drawn every time. Validation pictures during fit are drawn at the cadence set
    by ``val_every`` / ``val_every_seconds``; the last validation of fit not drawn at its epoch
    is drawn when training ends, where the cadence asks for it.

    At the start of fit or test, ``check(example, prediction)`` sees a probe batch (two
    examples and the model's prediction for them): a subclass raises a ContractError there when
    the structs lack what it reads, so the run stops before its first step. Later, a failure
    in ``collect``, ``finish`` or ``draw`` is a warning that names the callback: the run goes
    on, without that diagnostic for the rest of the epoch, and still writes its results.

    Args:
        stages: 'val' and/or 'test'.
        val_every: when validation pictures are drawn during fit. 'auto': whenever the
            diagnostics' time so far (collecting, gathering, drawing: all of them together)
            stays within ``max_time_share`` of the fit's time, the last validation included;
            'end': only the last validation of fit; N: every N epochs (N, 2N, ...) and the last.
        val_every_seconds: instead of ``val_every``: at the first validation at least this
            many seconds after the last one drawn, and the last.
        max_time_share: the bound of 'auto' (0.05: at most 5% of the fit's time).
        keep_files: the run folder keeps the files of the last ``keep_files`` drawings of each
            picture; the loggers keep every one.
    """

    def __init__(
        self,
        stages: tuple[str, ...] | list[str] = ("val", "test"),
        val_every: Cadence = "auto",
        val_every_seconds: float | None = None,
        max_time_share: float = 0.05,
        keep_files: int = 5,
    ) -> None:
        bad = set(stages) - {"val", "test"}
        if bad:
            raise ValueError(f"stages must be 'val' and/or 'test', got {sorted(bad)}")
        if not (val_every in ("auto", "end") or (isinstance(val_every, int) and val_every >= 1)):
            raise ValueError(
                f"val_every must be 'auto', 'end' or an epoch count >= 1, got {val_every!r}"
            )
        if val_every_seconds is not None and val_every_seconds <= 0:
            raise ValueError(f"val_every_seconds must be > 0, got {val_every_seconds}")
        if not 0 < max_time_share <= 1:
            raise ValueError(f"max_time_share must be in (0, 1], got {max_time_share}")
        if keep_files < 1:
            raise ValueError(f"keep_files must be >= 1, got {keep_files}")
        self.stages = tuple(stages)
        self.val_every, self.val_every_seconds = val_every, val_every_seconds
        self.max_time_share, self.keep_files = max_time_share, keep_files
        self.state: dict[tuple[str, int], Any] = {}
        self._broken: set[tuple[str, int]] = set()
        # validation summaries not drawn at their epoch, by dataset: drawn at the end of fit
        self._pending: dict[str, tuple[Any, Scored]] = {}
        self._draw_cost: float | None = None  # seconds of the last drawing (all datasets)
        self._last_drawn = 0.0  # perf_counter of the last validation drawn (or fit start)
        self.drawn: list[tuple[str, str, int]] = []  # (stage, dataset, step) of every drawing

    # ------------------------------------------------------------------ what a subclass writes
    def check(
        self, pl_module: pl.LightningModule, example: Example, prediction: Prediction
    ) -> None:
        """Raise a ContractError when the structs lack what this callback reads."""

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
    ) -> Any:
        """Gathers the epoch's state across ranks (on every rank), logs its numbers and returns
        what ``draw`` needs (None: nothing to draw)."""
        raise NotImplementedError

    def draw(
        self, trainer: pl.Trainer, stage: str, dataset: str, summary: Any, shown: Scored
    ) -> None:
        """Draws and emits the pictures of ``summary`` (rank 0 only); ``shown`` says which model
        they show (its step names the files)."""

    # ------------------------------------------------------------------ the contract check
    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        probed = probe(trainer, pl_module, self.stages)
        if probed is not None:
            self.check(pl_module, *probed)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        ledger = _LEDGERS.setdefault(trainer, _Ledger(start))
        self._last_drawn = ledger.start
        self._pending.clear()
        self._check(trainer, pl_module)
        ledger.spent += time.perf_counter() - start

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _LEDGERS.pop(trainer, None)

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

    # ------------------------------------------------------------------ the cadence
    def _ledger(self, trainer: pl.Trainer, stage: str) -> _Ledger | None:
        """The fit's ledger while validating inside fit; None elsewhere (nothing counted)."""
        return _LEDGERS.get(trainer) if stage == "val" and trainer.state.fn == "fit" else None

    def _due(self, trainer: pl.Trainer, stage: str, last: bool = False) -> bool:
        """Whether this epoch's pictures are drawn now (``last``: the end of fit)."""
        ledger = self._ledger(trainer, stage)
        if ledger is None:  # test, or validation outside fit: every time
            return True
        if self.val_every_seconds is not None:
            return last or time.perf_counter() - self._last_drawn >= self.val_every_seconds
        if self.val_every == "auto":
            cost = self._draw_cost if self._draw_cost is not None else DRAW_PRIOR_S
            return ledger.allows(cost, self.max_time_share)
        if self.val_every == "end":
            return last
        return last or (trainer.current_epoch + 1) % int(self.val_every) == 0

    def _draw_all(
        self, trainer: pl.Trainer, stage: str, summaries: dict[str, tuple[Any, Scored]]
    ) -> None:
        start = time.perf_counter()
        for dataset, (summary, shown) in summaries.items():
            try:
                if trainer.is_global_zero:
                    self.draw(trainer, stage, dataset, summary, shown)
                self.drawn.append((stage, dataset, shown.step))
            except Exception as err:
                rank_zero_warn(
                    f"{type(self).__name__} failed to draw {stage}/{dataset}: "
                    f"{type(err).__name__}: {err}. The run goes on.",
                    category=UserWarning,
                )
        self._draw_cost = time.perf_counter() - start
        self._last_drawn = time.perf_counter()

    # ------------------------------------------------------------------ the hooks
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
        start = time.perf_counter()
        try:
            # the step's structs in the user's units (BaseModel.in_user_units), else the batch
            example = outputs.get("example", batch)
            self.collect(trainer, pl_module, key, example, outputs["prediction"])
        except Exception as err:
            self._failed("collect", key, err)
        ledger = self._ledger(trainer, stage)
        if ledger is not None:
            ledger.spent += time.perf_counter() - start

    def _on_epoch_end(self, stage: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if stage not in self.stages or trainer.sanity_checking:
            self.state.clear()
            return
        start = time.perf_counter()
        shown = scored(trainer, stage)
        summaries: dict[str, tuple[Any, Scored]] = {}
        for idx, name in enumerate(dataset_names(trainer, stage)):
            state = self.state.pop((stage, idx), None)
            if state is None:
                continue
            try:
                summary = self.finish(trainer, pl_module, stage, name, state)
            except Exception as err:
                self._failed(f"finish for {stage}/{name}", (stage, idx), err)
                continue
            if summary is not None:
                summaries[name] = (summary, shown)
        self.state.clear()
        self._broken.clear()
        if summaries:
            if self._due(trainer, stage):
                self._draw_all(trainer, stage, summaries)
                self._pending.clear()
            elif self._ledger(trainer, stage) is not None:
                self._pending = summaries  # the latest validation, for the end of fit
        ledger = self._ledger(trainer, stage)
        if ledger is not None:
            ledger.spent += time.perf_counter() - start

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The last validation of fit, when it was not drawn at its epoch and the cadence asks
        for it."""
        ledger = _LEDGERS.get(trainer)
        if self._pending and ledger is not None and self._due(trainer, "val", last=True):
            start = time.perf_counter()
            self._draw_all(trainer, "val", self._pending)
            ledger.spent += time.perf_counter() - start
        self._pending.clear()

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

    # ------------------------------------------------------------------ for subclasses
    def title(self, stage: str, dataset: str, what: str, shown: Scored) -> str:
        """The line at the top of a picture: what it is, of which data, of which model."""
        return f"{what} · {dataset} · {shown.line()}"


def append(state: dict[str, list[Tensor]] | None, **rows: Tensor) -> dict[str, list[Tensor]]:
    """Appends rows to a dict of lists of tensors (created on first use)."""
    state = state if state is not None else {k: [] for k in rows}
    for k, v in rows.items():
        state[k].append(v)
    return state


def concat(state: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat(v) for k, v in state.items()}
