"""The demo's recipe held to values: the ``flip_translate`` test-time augmentation equals its
formula, written out here view by view, and a run of the whole recipe (the GPU's with Lookahead
and the LambdaLR warm-up, the CPU's with Muon; the decay, the whitening fitted on the first
batch, the whitening-bias freeze keyed on the global step) resumed at an epoch boundary ends
with the very weights of an uninterrupted run. A tiny generated image folder stands in for CIFAR-10: no data set is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image
from pytorch_lightning.callbacks import Callback

from cifar10_demo.cli import CPU, DEFAULT, MUON, SGD, main
from cifar10_demo.model import Cifar10Model, MuonSGD
from litforge import Lookahead, testing
from litforge.run.budget import MARGIN_FRACTION, MARGIN_S, BudgetGuard
from litforge.run.handoff import HANDOFF_ENV
from litforge.tasks.structs import ClassificationExample

CLASSES = 10
TRAIN_PER_CLASS, TEST_PER_CLASS = 20, 5  # 200 training images: 6 steps of 32 an epoch
STEPS_PER_EPOCH = 200 // 32


def write_image_folder(root: Path) -> Path:
    """``train/<class>/*.png`` and ``test/<class>/*.png``, 32 x 32 RGB: noise around a colour
    that the class sets, so that the network has something to learn."""
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, size=(CLASSES, 3))
    for split, n in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for c in range(CLASSES):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = colours[c] + rng.normal(0, 40, size=(32, 32, 3))
                image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
                image.save(folder / f"{i:03d}.png")
    return root


# ---------------------------------------------------------------------- test-time augmentation
def shifted(x: torch.Tensor, d: int) -> torch.Tensor:
    """x moved by one pixel: pixel (i, j) of the view is pixel (i + d, j + d) of x, indices
    reflected at the border (-1 -> 1, H -> H - 2), as reflect padding gives."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h) + d).abs()
    rows = torch.where(rows > h - 1, 2 * (h - 1) - rows, rows)
    cols = (torch.arange(w) + d).abs()
    cols = torch.where(cols > w - 1, 2 * (w - 1) - cols, cols)
    return x[..., rows, :][..., cols]


def test_flip_translate_tta_is_the_mean_of_its_six_views() -> None:
    torch.manual_seed(0)
    model = Cifar10Model(widths=(8, 16, 16), tta="flip_translate")
    x = torch.randn(6, 3, 32, 32)
    model.net.init_whitening(x)
    model.eval()
    example = ClassificationExample(torch.arange(6), image=x, label=torch.arange(6))
    with torch.no_grad():
        tta = model(example).logits

        def both(v: torch.Tensor) -> torch.Tensor:  # a view and its mirror image
            return (model.logits(v) + model.logits(v.flip(-1))) / 2

        up_left, down_right = shifted(x, -1), shifted(x, +1)
        expected = 0.5 * both(x) + 0.5 * (both(up_left) + both(down_right)) / 2
        plain = model.logits(x)
    # the shifted views are the ones meant: x's pixel (0, 0) moves to (1, 1), and back
    assert torch.equal(up_left[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(down_right[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.allclose(tta, expected, atol=1e-6, rtol=1e-5), (tta - expected).abs().max()
    assert (tta - plain).abs().max() > 1e-3  # the augmentation changes the logits: not vacuous


# ---------------------------------------------------------------------- resume of the recipe
class StopAfterEpochs(Callback):
    """Ends fit (as an interruption would) after ``epochs`` epochs of a longer run: its
    schedule, Lookahead and bias freeze are those of the full run, unlike a run with fewer
    max_epochs, whose LambdaLR and Lookahead would span fewer steps."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


@pytest.fixture
def isolated() -> Iterator[None]:
    """No run folder inherited from an earlier run in this process; torch's determinism flag
    (``--trainer.deterministic=true`` sets it) switched back afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(HANDOFF_ENV, raising=False)
        yield
    torch.use_deterministic_algorithms(before)


def fit(folder: Path, run: Path, *args: str, **kwargs: Any) -> Any:
    return main(
        [
            "fit",
            f"--run.dir={run}",
            "--run.loggers=[csv]",
            *testing.QUIET,
            f"--data.root={folder}",
            "--data.batch_size=32",
            "--model.widths=[8,16,16]",
            "--trainer.precision=32-true",
            "--trainer.accelerator=cpu",
            "--trainer.deterministic=true",
            "--trainer.max_epochs=2",
            # the whitening bias learns for 1.5 epochs: it freezes at step 9, after the resume
            "--model.whiten_bias_epochs=1.5",
            # the recipe as configured (default.yaml), not fitted to this machine's speed: a
            # time budget would plan another step count for each run
            "--size=null",
            "--run.time_budget=null",
            "--run.precision=null",
            "--run.test_after_fit=false",
            *args,
        ],
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["gpu", "cpu"])
def test_recipe_resumes_bit_exact_at_an_epoch_boundary(
    tmp_path: Path, isolated: None, recipe: str
) -> None:
    """Both recipes: the GPU's (Nesterov SGD, Lookahead, warm-up) and the CPU's (Muon for the
    filters, their momentum buffers in the checkpoint)."""
    configs: list[str | Path] = [DEFAULT] if recipe == "gpu" else [DEFAULT, MUON, CPU]
    folder = write_image_folder(tmp_path / "images")
    whole = fit(folder, tmp_path / "whole", default_config=configs)
    assert whole.trainer.global_step == 2 * STEPS_PER_EPOCH
    has_lookahead = any(isinstance(c, Lookahead) for c in whole.trainer.callbacks)
    assert has_lookahead == (recipe == "gpu")
    assert isinstance(whole.trainer.optimizers[0], MuonSGD) == (recipe == "cpu")
    assert not whole.model.net.whiten.bias.requires_grad  # the freeze happened

    run = tmp_path / "run"
    first = fit(
        folder, run, default_config=configs, trainer_defaults={"callbacks": [StopAfterEpochs(1)]}
    )
    assert first.trainer.global_step == STEPS_PER_EPOCH
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS_PER_EPOCH
    assert bool(ckpt["state_dict"]["whitened"])  # fitted on the first batch: not again
    assert any(k.startswith("Lookahead") for k in ckpt["callbacks"]) == has_lookahead
    (optimizer_state,) = ckpt["optimizer_states"]
    buffers = [s["momentum_buffer"] for s in optimizer_state["state"].values()]
    assert len(buffers) == sum(len(g["params"]) for g in optimizer_state["param_groups"])
    (scheduler,) = ckpt["lr_schedulers"]
    assert scheduler["last_epoch"] == STEPS_PER_EPOCH  # the LambdaLR went on from step 6

    resumed = fit(folder, run, f"--ckpt_path={last}", default_config=configs)
    assert resumed.trainer.global_step == 2 * STEPS_PER_EPOCH
    a, b = resumed.model.state_dict(), whole.model.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


# ---------------------------------------------------------------------- the recipe on a budget
@pytest.mark.slow
def test_the_schedule_ends_on_the_last_step_the_budget_allowed(
    tmp_path: Path, isolated: None
) -> None:
    """A budgeted run whose machine slows down half-way: the guard cuts the planned steps, and
    the learning rate still ends at its final value on the last step trained (the LambdaLR
    reads the step count the guard set)."""
    folder = write_image_folder(tmp_path / "images")
    left = 8.0  # seconds to measure, train and test after the margins
    given = (left + MARGIN_S) / (1 - MARGIN_FRACTION)  # counted from the command's start
    run = fit(
        folder,
        tmp_path / "run",
        f"--run.time_budget={given:.1f}",
        "--run.test_after_fit=true",
        trainer_defaults={"callbacks": [testing.SlowDown(after=12, seconds=0.05)]},
    )
    guard = next(c for c in run.trainer.callbacks if isinstance(c, BudgetGuard))
    assert guard.plan is not None
    trained = run.trainer.global_step
    assert 12 < trained == run.trainer.max_steps < guard.plan.max_steps
    scheduler = run.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == trained
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        assert group["lr"] == pytest.approx(base * run.model.lr_end, rel=1e-9)
    assert (run.run_dir / "results.json").exists()


# ---------------------------------------------------------------------- the recipes' files
def printed_config(capsys: pytest.CaptureFixture[str], *args: str, **kwargs: Any) -> Any:
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"], **kwargs)
    return yaml.safe_load(capsys.readouterr().out)


def test_sgd_yaml_on_a_cpu_gives_back_the_gpu_recipes_optimizer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """configs/sgd.yaml over the CPU's files: the model and callbacks of default.yaml alone
    (airbench94's), everything else the CPU's."""
    gpu = printed_config(capsys, default_config=[DEFAULT])
    cpu = printed_config(capsys, default_config=[DEFAULT, MUON, CPU])
    cpu_sgd = printed_config(capsys, f"--config={SGD}", default_config=[DEFAULT, MUON, CPU])
    assert cpu["model"]["optimizer"] == "muon" and gpu["model"]["optimizer"] == "sgd"
    # unused by SGD, muon.yaml's stay; the GPU's CUDA-graph compile is off on a CPU (cpu.yaml)
    muon_keys = {"muon_lr", "muon_momentum", "compile"}
    assert gpu["model"]["compile"] and not cpu_sgd["model"]["compile"]
    drop = lambda model: {k: v for k, v in model.items() if k not in muon_keys}  # noqa: E731
    assert drop(cpu_sgd["model"]) == drop(gpu["model"])
    assert cpu_sgd["trainer"]["callbacks"] == gpu["trainer"]["callbacks"]
    for key in ("size", "run"):
        assert cpu_sgd[key] == cpu[key]
