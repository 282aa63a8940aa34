"""The demo's GPU recipe (configs/default.yaml: Lookahead, StopOnNonFinite, the diagnostics),
tiny, through a real fit on the CPU: a training step that neither logs nor checks the loss makes
no call that would wait for a GPU (counted by ``litforge.testing.syncs``: on the CPU nothing
waits, the same calls are made). test_recipe.py holds the recipe to its values."""

from __future__ import annotations

from pathlib import Path

from cifar10_demo.cli import main
from litforge import StopOnNonFinite
from litforge.testing.syncs import StepWindow, host_syncs, quiet_steps

LOG_EVERY = 4


def test_the_recipe_trains_without_host_syncs(tiny_image_folder: Path, tmp_path: Path) -> None:
    cli = main(
        [f"--data.root={tiny_image_folder}", "--data.batch_size=16", "--model.widths=[8,16,16]",
         "--size=null", "--run.time_budget=null", "--run.precision=null",
         "--trainer.precision=32-true", "--trainer.max_epochs=2",
         f"--trainer.log_every_n_steps={LOG_EVERY}", "--trainer.enable_progress_bar=false",
         f"--run.root={tmp_path}", "--run.loggers=[csv]"],
        run=False,
    )  # fmt: skip
    check = next(c for c in cli.trainer.callbacks if isinstance(c, StopOnNonFinite))
    window, calls = StepWindow(), list[tuple[int, str]]()
    cli.trainer.callbacks.insert(0, window)
    with host_syncs(calls, lambda: window.step):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    steps = cli.trainer.global_step
    quiet = quiet_steps(steps, window, LOG_EVERY, check.every_n_steps)
    assert len(quiet) >= 4, (steps, window.epoch_ends)
    made = [(s, where) for s, where in calls if s in quiet]
    assert not made, f"training steps that neither log nor check synced: {made}"
    assert bool(cli.model.whitened)  # fitted once, on the first batch (the first step syncs)
