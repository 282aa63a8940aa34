"""What a resume needs beyond Lightning's own restore.

- ``RngState``: the global random generators travel in every checkpoint, so that a resumed run
  draws what an uninterrupted one draws (dropout masks, ``torch.rand`` in a model, numpy or
  ``random`` in a callback). Lightning's checkpoints hold no generator state of their own, and a
  resumed run would otherwise start from the seed's state of step 0.
- ``OptimizerSettings``: optimizer settings given on the resume command (a lower learning rate
  after a NaN) replace the checkpoint's.
- ``requeued_checkpoint``: what a SLURM job requeued by Lightning resumes from.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info


def collect_rng_state() -> dict[str, Any]:
    """The state of torch's CPU generator, the current CUDA device's (when CUDA is in use),
    numpy's and Python's global generators, as tensors and plain values: a checkpoint holding
    it loads with ``torch.load(weights_only=True)``."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device (its rank's)
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Sets the generators back to a state from ``collect_rng_state``."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    numpy = state["numpy"]
    keys = numpy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    )
    python = state["python"]
    internal = tuple(int(v) for v in python["state"].tolist())
    random.setstate((python["version"], internal, python["gauss_next"]))


class RngState(Callback):
    """Saves the global generators' state in every checkpoint; a fit resumed from one sets them
    back at the start of training (``on_train_start``: after the set-up, whose own draws, e.g.
    a model's initialisation, are thereby overwritten, and before the first batch).

    Under DDP rank 0's state is saved and every rank gets it back: as with
    ``seed_everything``, the ranks draw alike. The LitforgeCLI adds it to every fit."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None:
            restore_rng_state(self._loaded)
            self._loaded = None


# ---------------------------------------------------------------------- optimizer settings
# Set by a scheduler on the param groups it drives, from the configured values: not settings.
SCHEDULED_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")
Settings = list[list[dict[str, Any]]]  # per optimizer, per param group: setting -> value


def _plain(value: Any) -> bool:
    """A value torch's safe loader reads back: a number, bool, str, None or a tuple of them."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def configured_settings(optimizers: list[torch.optim.Optimizer]) -> Settings:
    """Every plain setting of every param group, as configured: a scheduled lr is read from
    ``initial_lr`` (the value the scheduler started from), not from the lr of this step."""
    settings = []
    for optimizer in optimizers:
        groups = []
        for group in optimizer.param_groups:
            values = {
                k: v
                for k, v in group.items()
                if k != "params" and k not in SCHEDULED_KEYS and _plain(v)
            }
            if _plain(group.get("initial_lr")) and group.get("initial_lr") is not None:
                values["lr"] = group["initial_lr"]
            groups.append(values)
        settings.append(groups)
    return settings


def _scale_lr(trainer: pl.Trainer, optimizer: Any, index: int, old: Any, new: Any) -> None:
    """Moves group ``index`` of ``optimizer`` from the configured lr ``old`` to ``new``: the lr
    of this step and every value a scheduler keeps for it are scaled by new / old, so that the
    schedule goes on from where it was, at the new height."""
    group = optimizer.param_groups[index]
    ratio = new / old if isinstance(old, int | float) and old else None
    for key in ("lr", *SCHEDULED_KEYS[:3]):
        if key in group and isinstance(group[key], int | float):
            group[key] = group[key] * ratio if ratio is not None else new
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if getattr(scheduler, "optimizer", None) is not optimizer:
            continue
        base = getattr(scheduler, "base_lrs", None)
        if isinstance(base, list) and index < len(base):
            base[index] = base[index] * ratio if ratio is not None else new
        last = getattr(scheduler, "_last_lr", None)
        if isinstance(last, list) and index < len(last):
            last[index] = group["lr"]


class OptimizerSettings(Callback):
    """A resumed fit trains with the optimizer settings of its own config: a setting given on
    the resume command (``--model.optimizer.init_args.lr=0.0001``, a weight decay, momentum)
    replaces the one restored from the checkpoint.

    Lightning restores the optimizer's state from the checkpoint, its param groups' settings
    included, so a new learning rate would otherwise change nothing while the run's config
    recorded it. Each checkpoint holds the settings its run was configured with; a resume
    compares them with its own, as configured (``on_fit_start``: before the restore), and
    applies those that differ after the restore (``on_train_start``), printing them. A changed
    lr scales the lr of the step reached and the scheduler's values by new / old: the schedule
    goes on where it was, at the new height. Nothing changes when the settings are the same
    (the printed resume command), nor for a checkpoint written before this callback existed.
    The LitforgeCLI adds it to every fit."""

    def __init__(self) -> None:
        self._configured: Settings = []
        self._saved: Settings | None = None  # from the checkpoint being resumed

    def state_dict(self) -> dict[str, Any]:
        return {"configured": self._configured}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = state_dict.get("configured")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._configured = configured_settings(trainer.optimizers)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saved, self._saved = self._saved, None
        if not saved:
            return
        changed: dict[str, str] = {}
        for optimizer, old_groups, new_groups in zip(
            trainer.optimizers, saved, self._configured, strict=False
        ):
            if not len(old_groups) == len(new_groups) == len(optimizer.param_groups):
                continue  # other groups: nothing to match them by
            for index, (old, new) in enumerate(zip(old_groups, new_groups, strict=True)):
                for key, value in new.items():
                    if key not in old or old[key] == value:
                        continue
                    if key == "lr":
                        _scale_lr(trainer, optimizer, index, old[key], value)
                    else:
                        optimizer.param_groups[index][key] = value
                    changed.setdefault(key, f"{key} {old[key]} -> {value}")
        if changed:
            rank_zero_info(
                "resume: the optimizer settings of this command replace the checkpoint's: "
                + ", ".join(changed.values())
            )


# ---------------------------------------------------------------------- status.json
class ResumedStatus(Callback):
    """Writes a resumed fit's ``status.json`` (``running``, attempts + 1) when training starts,
    not when the command starts: a resume that fails before (a checkpoint of another width,
    data that cannot be read) leaves the run's record as it was (docs/runs.md). ``status``: the
    record written, for the end of the command. The LitforgeCLI adds it to a resumed fit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.status: dict[str, Any] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from litforge.run.runs import start_status

        if trainer.is_global_zero and self.status is None:
            self.status = start_status(self.run_dir, "fit", resuming=True)


# ---------------------------------------------------------------------- SLURM's requeue
def requeued_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a requeued SLURM job resumes from, or None (not under SLURM, or nothing
    to resume in ``run_dir``).

    Lightning's requeue (``#SBATCH --signal=SIGUSR1@90``): on SIGUSR1 it saves
    ``<run dir>/hpc_ckpt_<n>.ckpt`` and requeues the job, which runs the same command in the
    same run folder. SLURM then stops the first job with SIGTERM, which saves
    ``checkpoints/last.ckpt`` a few steps later (``SaveOnInterrupt``). The requeued command
    resumes from the one with more steps (last.ckpt when equal), as a resume the user typed:
    the same run folder, CSV history, W&B run and status."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    hpc = [p for p in run_dir.glob("hpc_ckpt_*.ckpt") if p.stem.rsplit("_", 1)[-1].isdigit()]
    candidates = sorted(hpc, key=lambda p: int(p.stem.rsplit("_", 1)[-1]))[-1:]
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        candidates.append(last)
    if not candidates:
        return None
    steps = {}
    for path in candidates:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            steps[path] = int(ckpt["global_step"])
        except Exception:  # a file cut short: the other one, if any
            continue
    return max(steps, key=lambda p: (steps[p], p == last)) if steps else None
