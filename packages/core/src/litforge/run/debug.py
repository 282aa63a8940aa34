"""Debug presets: ``--run.debug=<name>`` sets a few trainer keys for a quick check of a project.

    fast              one batch of train, val and test (Lightning's fast_dev_run): does it run?
    overfit           the same 2 training batches (unshuffled) for 50 epochs, validating (2
                      batches) every 25: does the training loss go to about 0?
    limit             a few batches of each stage for 2 epochs: the whole run, checkpoints and
                      results.json included, in seconds
    profile-simple    Lightning's SimpleProfiler (time per hook)
    profile-advanced  Lightning's AdvancedProfiler (cProfile per hook)
    profile-torch     Lightning's PyTorchProfiler (operators; a Chrome trace to open in
                      chrome://tracing or Perfetto)

The preset is applied to the trainer's config before the trainer is built, over what the
config files and flags set for those keys, and the keys it set are printed. A profiler writes
its report to ``<run dir>/profiler/<stage>-profile.txt`` (the torch one its traces beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser

DebugPreset = Literal[
    "fast", "overfit", "limit", "profile-simple", "profile-advanced", "profile-torch"
]
PROFILE_DIR = "profiler"
PROFILE_FILENAME = "profile"

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"fast_dev_run": True},
    "overfit": {"overfit_batches": 2, "max_epochs": 50, "check_val_every_n_epoch": 25},
    "limit": {
        "limit_train_batches": 4,
        "limit_val_batches": 2,
        "limit_test_batches": 2,
        "max_epochs": 2,
    },
    "profile-simple": {"profiler": "pytorch_lightning.profilers.SimpleProfiler"},
    "profile-advanced": {"profiler": "pytorch_lightning.profilers.AdvancedProfiler"},
    "profile-torch": {"profiler": "pytorch_lightning.profilers.PyTorchProfiler"},
}


def add_debug_argument(parser: LightningArgumentParser) -> None:
    parser.add_argument(
        "--run.debug",
        type=DebugPreset | None,
        default=None,
        help="a debug preset: fast (one batch of each stage), overfit (2 batches, 50 epochs), "
        "limit (a few batches, 2 epochs), profile-simple, profile-advanced, profile-torch "
        "(report in <run dir>/profiler/)",
    )


def apply_debug_preset(name: str, trainer: Namespace, run_dir: Path) -> dict[str, Any]:
    """Sets the preset's keys on the trainer's config namespace; returns what it set."""
    if name not in PRESETS:
        raise ValueError(f"no debug preset {name!r}; presets: {', '.join(PRESETS)}")
    applied: dict[str, Any] = {}
    for key, value in PRESETS[name].items():
        if key == "profiler":
            value = Namespace(
                class_path=value,
                init_args=Namespace(dirpath=str(run_dir / PROFILE_DIR), filename=PROFILE_FILENAME),
            )
        trainer[key] = value
        applied[key] = value
    return applied


def describe_preset(name: str, applied: dict[str, Any]) -> str:
    """One line that says what the preset set."""
    shown = []
    for key, value in applied.items():
        if isinstance(value, Namespace):
            value = f"{value.class_path.rsplit('.', 1)[-1]}(dirpath={value.init_args.dirpath})"
        shown.append(f"trainer.{key}={value}")
    return f"debug preset {name}: {', '.join(shown)}"
