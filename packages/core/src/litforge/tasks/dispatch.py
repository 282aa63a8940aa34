"""Per-step hooks that no callback implements, taken out of the Trainer's dispatch.

Lightning calls each of about ten per-step hooks (``on_train_batch_start``,
``on_before_backward``, ...) on every callback of a run, whether or not its class implements
it: each call enters the profiler's context, names the hook on the module and calls an empty
method, some two microseconds. A run of core has a dozen callbacks (checkpoints, budget guard,
RNG state, progress bar, the diagnostics, ...), most with no per-step work: some 70 empty calls
a training step, a quarter of a millisecond of host time on a small CPU, as long as a small
network's GPU step.

Lightning's dispatch skips an attribute that is not callable (``getattr(callback, hook)`` then
``callable``); ``skip_unused_hooks`` sets each per-step hook a callback's class inherits
unchanged from ``Callback`` (an empty method) to None on that instance, so Lightning skips it.
Hooks a class (or the instance) defines are left as they are, and so is everything else of the
callback: its state, its epoch hooks, its checkpoint keys.
``packages/core/tests/test_step_cost.py::test_callbacks_are_called_only_for_the_per_step_hooks_they_implement``
checks that Lightning still skips a hook set to None (the test fails at an upgrade that drops
the check, before any run would).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytorch_lightning import Callback

# The hooks Lightning calls once per batch or per optimisation step.
PER_STEP_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)


def skip_unused_hooks(callbacks: Iterable[Any]) -> list[str]:
    """Sets to None, on each callback instance, the per-step hooks its class inherits from
    ``Callback`` unchanged; returns ``"<Class>.<hook>"`` for each one set."""
    skipped = []
    for callback in callbacks:
        if not isinstance(callback, Callback):
            continue
        own = vars(callback)
        for hook in PER_STEP_HOOKS:
            if hook in own:  # set on the instance: its own, or already skipped
                continue
            if getattr(type(callback), hook, None) is getattr(Callback, hook):
                setattr(callback, hook, None)
                skipped.append(f"{type(callback).__name__}.{hook}")
    return skipped
