"""The compiled training step (``--model.compile=true --model.compile_mode=reduce-overhead``,
the GPU recipe's setting) trains the weights the plain step trains. On a GPU that mode captures
the forward and backward in CUDA graphs; here, on the CPU, the same torch.compile (TorchInductor's
fused kernels) runs, through real Trainer fits of the recipe. Compiling takes tens of seconds:
slow tier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cifar10_demo.cli import main
from litforge import testing
from litforge.run.handoff import HANDOFF_ENV

STEPS = 6


def fit_weights(folder: Path, run: Path, *args: str, fit: bool = True) -> dict[str, torch.Tensor]:
    """The weights after a fit of ``STEPS`` steps; ``fit=False``: as built, from the same seed."""
    cli = main(
        [
            *(["fit"] if fit else []),
            f"--run.dir={run}",
            "--run.loggers=[]",
            *testing.QUIET,
            f"--data.root={folder}",
            "--data.batch_size=32",
            "--model.widths=[8,16,16]",
            "--trainer.precision=32-true",
            "--trainer.accelerator=cpu",
            f"--trainer.max_steps={STEPS}",
            "--size=null",
            "--run.time_budget=null",
            "--run.precision=null",
            "--run.test_after_fit=false",
            "--model.optimizer=sgd",  # the GPU recipe's (configs/default.yaml)
            "--model.lr=1.15",
            *args,
        ],
        **({} if fit else {"run": False}),
    )
    assert not fit or cli.trainer.global_step == cli.trainer.max_steps
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items()}


@pytest.mark.slow
def test_the_compiled_step_trains_the_plain_steps_weights(
    tiny_image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six steps of the GPU recipe (Nesterov SGD, Lookahead, the schedule; its rate a tenth of
    the recipe's, whose steps amplify float rounding many times over) from the same seed and
    batches: every weight and BatchNorm statistic of the compiled run equals the plain run's
    within 1e-3 absolute + 1% of the tensor's largest value (float32; the fused kernels sum in
    another order), while the steps moved the weights far more than that."""
    monkeypatch.delenv(HANDOFF_ENV, raising=False)
    start = fit_weights(tiny_image_folder, tmp_path / "start", fit=False)
    plain = fit_weights(tiny_image_folder, tmp_path / "plain")
    compiled = fit_weights(
        tiny_image_folder,
        tmp_path / "compiled",
        "--model.compile=true",
        "--model.compile_mode=reduce-overhead",
    )
    assert plain.keys() == compiled.keys()  # compiled in place: the checkpoint's keys unchanged
    floats = [k for k, v in plain.items() if v.is_floating_point()]
    moved = max(float((plain[k] - start[k]).abs().max()) for k in floats)
    assert moved > 0.05  # the steps moved the weights: not vacuous
    report = {
        k: (float((compiled[k] - plain[k]).abs().max()), float(plain[k].abs().max()))
        for k in floats
    }
    wrong = {k: v for k, v in report.items() if v[0] > 1e-3 + 0.01 * v[1]}
    assert not wrong, (wrong, report)
    for key in plain.keys() - set(floats):  # counters: equal
        assert torch.equal(compiled[key], plain[key]), key
