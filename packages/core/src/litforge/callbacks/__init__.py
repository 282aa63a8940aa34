"""Optional callbacks: removing any of them changes nothing else.

Diagnostics: Extremes (any task), Uncertainty and ConfusionMatrix (class probabilities),
Regression (predicted against true). Training: Lookahead. Safety: StopOnNonFinite,
SaveOnInterrupt, RngState (the last two are added by the CLI to every fit).
Sweeps: OptunaReport (added by the CLI to a sweep's trials).
"""

from litforge.callbacks.confusion import ConfusionMatrix
from litforge.callbacks.extremes import Extremes
from litforge.callbacks.lookahead import Lookahead
from litforge.callbacks.regression import Regression
from litforge.callbacks.resume import RngState
from litforge.callbacks.safety import NonFiniteLossError, SaveOnInterrupt, StopOnNonFinite
from litforge.callbacks.sweep import OptunaReport
from litforge.callbacks.uncertainty import Uncertainty

__all__ = [
    "ConfusionMatrix",
    "Extremes",
    "Lookahead",
    "NonFiniteLossError",
    "OptunaReport",
    "Regression",
    "RngState",
    "SaveOnInterrupt",
    "StopOnNonFinite",
    "Uncertainty",
]
