"""The CPU preset's choice of network (``size: auto``, ``cifar10_demo.cli.SIZES``): the largest
network that still trains the epochs it needs within the budget, and what the run saves.

The step timer is replaced in the choice tests (a real timing is this machine's to decide): a
step costs its batch times a per-image cost of each network, as three machines would time it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cifar10_demo import cli
from cifar10_demo.cli import SIZES, choose_size, main
from litforge import testing
from litforge.run import budget

N_TRAIN = 50_000


def widths_of(model: Any) -> tuple[int, ...]:
    return tuple(block[0].out_channels for block in model.net.blocks)


def timer(images_per_s: dict[str, float]) -> Any:
    """A step timer for networks that process ``images_per_s[size]`` training images a
    second."""
    by_widths = {SIZES[name][0]: rate for name, rate in images_per_s.items()}

    def time_train_steps(model: Any, batch: Any, device: Any, precision: str, steps: int = 3):
        return len(batch) / by_widths[widths_of(model)]

    return time_train_steps


# Per size: training images a second. Epochs that fit 600 s (20 s start-up, the test's six
# views at a third of a step's cost per image: 20,000 image-steps), worked out by hand:
MACHINES = {
    # full: (600 - 20 - 20000/1000) / (50000/1000) = 11.2 epochs >= 5: full
    "fast": ({"tiny": 4000, "small": 1700, "full": 1000}, "full"),
    # full: (580 - 38.5) / 96.3 = 5.6 >= 5: full
    "this Zen 4 in bf16": ({"tiny": 2170, "small": 866, "full": 519}, "full"),
    # full: (580 - 50) / 125 = 4.2 < 5; small: (580 - 30.8) / 76.9 = 7.1 >= 5: small
    "slower, bf16": ({"tiny": 1600, "small": 650, "full": 400}, "small"),
    # small: (580 - 50) / 125 = 4.2 < 5: tiny (tiny: 21.2 epochs)
    "AVX2-only in fp32": ({"tiny": 1000, "small": 400, "full": 200}, "tiny"),
}


@pytest.mark.parametrize("machine", list(MACHINES))
def test_the_largest_network_that_gets_its_epochs_is_chosen(
    machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates, expected = MACHINES[machine]
    monkeypatch.setattr(cli, "time_train_steps", timer(rates))
    chosen, why = choose_size(600.0, N_TRAIN, "bf16-mixed")
    assert chosen == expected
    # every size is reported with what it measured and the epochs that fit
    for name, (widths, _, _) in SIZES.items():
        rate = rates[name]
        epoch_s = N_TRAIN / rate
        epochs = (600 - cli.STARTUP_S - 20_000 / rate) / epoch_s
        assert f"{name} {widths}: {epoch_s:.0f} s an epoch, {epochs:.1f} epochs fit" in why


def test_the_sizes_grow_and_need_more_epochs() -> None:
    """The table's order: a larger network (more channels) needs at least the epochs of a
    smaller one."""
    names = list(SIZES)
    assert names == ["tiny", "small", "full"]
    needed = [SIZES[n][2] for n in names]
    assert needed == sorted(needed)
    params = [sum(SIZES[n][0]) for n in names]
    assert params == sorted(params)


@pytest.mark.slow
def test_size_auto_saves_the_network_it_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI: the choice (here: a slower machine's rates, so ``small``) sets the
    widths, the batch and the linked model batch, and config.yaml says which size it was."""
    monkeypatch.setattr(cli, "time_train_steps", timer(MACHINES["slower, bf16"][0]))
    # The budget counts from process start, and a test worker may be minutes old: the plan
    # sees a process started 5 s ago, as `python -m cifar10_demo fit` would be.
    monkeypatch.setattr(budget, "process_age", lambda: 5.0)
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)
    widths, batch, _ = SIZES["small"]
    folder = testing.write_image_folder(
        tmp_path / "images", per_class={"train": batch // 10 + 2, "test": 3}
    )
    run = testing.train(
        main,
        tmp_path / "runs",
        "fit",
        f"--data.root={folder}",
        "--size=auto",
        "--run.precision=auto",
        "--run.time_budget=600",
        "--trainer.fast_dev_run=true",
        "--data.eval_batch_size=30",
    )
    config = run.config["fit"]  # as the run's config.yaml saves it
    assert config["size"] == "small"
    assert tuple(config["model"]["widths"]) == widths
    assert config["data"]["batch_size"] == config["model"]["batch_size"] == batch
    assert config["trainer"]["precision"] in ("bf16-mixed", "32-true")
    assert widths_of(run.model) == widths
