"""Optional callbacks: removing any of them changes nothing else."""

from litforge.callbacks.confusion import ConfusionMatrix
from litforge.callbacks.extremes import Extremes
from litforge.callbacks.lookahead import Lookahead
from litforge.callbacks.safety import NonFiniteLossError, SaveOnInterrupt, StopOnNonFinite
from litforge.callbacks.uncertainty import Uncertainty

__all__ = [
    "ConfusionMatrix",
    "Extremes",
    "Lookahead",
    "NonFiniteLossError",
    "SaveOnInterrupt",
    "StopOnNonFinite",
    "Uncertainty",
]
