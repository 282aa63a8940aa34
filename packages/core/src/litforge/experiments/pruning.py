"""OptunaReport: a sweep trial's link to its study. The sweep gives it to each trial's run on
its command line, ``--trainer.callbacks+={"class_path": "litforge.OptunaReport", ...}``
(``trial_callback``), so the trial's config.yaml lists it.

At each validation end it reports the sweep's metric to the trial (step = the validation's
index: 0, 1, ...), asks the study's pruner, and stops a trial that should be pruned by raising
``TrialPruned`` (the command exits with ``PRUNED_EXIT``; the sweep records it as pruned).
Written here rather than taken from optuna-integration, whose callback subclasses the
``lightning.pytorch`` classes: this project uses ``pytorch_lightning`` only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from litforge.errors import LitforgeError, TrialPruned


def trial_callback(storage: str, study: str, trial: int, metric: str, pruner: Any) -> str:
    """The command-line argument that adds a trial's OptunaReport to its run's callbacks."""
    init_args = {
        "storage": storage,
        "study": study,
        "trial": trial,
        "metric": metric,
        "pruner": pruner,
    }
    spec = {"class_path": "litforge.OptunaReport", "init_args": init_args}
    return f"--trainer.callbacks+={json.dumps(spec)}"


class OptunaReport(Callback):
    """A sweep trial's link to its Optuna study: reports the sweep's metric at each validation
    end and stops the trial when the study's pruner says so (the sweep adds it to each trial).

    Args: ``storage`` (URL or journal file), ``study``, ``trial`` (number), ``metric``,
    ``pruner`` (``{type: median, ...}``, as in the sweep file)."""

    def __init__(
        self,
        storage: str,
        study: str,
        trial: int,
        metric: str,
        pruner: dict[str, Any] | None = None,
    ) -> None:
        self.storage, self.study_name, self.number = storage, study, trial
        self.metric, self.pruner = metric, pruner or {"type": "nop"}
        self.reported = 0
        self._trial: Any = None

    def _optuna_trial(self) -> Any:
        if self._trial is None:
            import optuna

            from litforge.experiments.space import make_pruner
            from litforge.experiments.study import open_storage

            storage = open_storage(self.storage)
            study = optuna.load_study(
                study_name=self.study_name, storage=storage, pruner=make_pruner(self.pruner)
            )
            study_id = storage.get_study_id_from_name(self.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
            self._trial = optuna.Trial(study, trial_id)
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune = False
        if trainer.is_global_zero:
            logged = trainer.callback_metrics.get(self.metric)
            if logged is None:
                keys = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
                raise LitforgeError(
                    f"the sweep's metric {self.metric} was not logged at validation; "
                    f"logged: {', '.join(keys) or 'nothing'}"
                )
            value = float(logged)
            trial = self._optuna_trial()
            trial.report(value, self.reported)
            prune = math.isnan(value) or trial.should_prune()
        step = self.reported
        self.reported += 1
        if trainer.strategy.broadcast(prune, src=0):
            raise TrialPruned(
                f"trial {self.number} pruned after validation {step}: {self.metric} not promising"
            )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reported == 0 and self.metric.startswith("val/"):
            raise LitforgeError(
                f"the sweep's metric {self.metric} needs a validation set, and this run had "
                "none: give the data module a val_size (fixed: {data.val_size: ...} in the "
                "sweep file)"
            )
