"""Mean, sample standard deviation and the Student-t 95% interval of a few numbers (seeds),
without scipy: the t quantile by bisection on its distribution function, integrated with
Simpson's rule (exact to ~1e-9 for the few degrees of freedom seed groups have)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def _t_pdf(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(x: float, df: int) -> float:
    if x < 0:
        return 1.0 - t_cdf(-x, df)
    if df == 1:
        return 0.5 + math.atan(x) / math.pi
    n = 2000  # Simpson panels on [0, x] (even)
    h = x / n
    total = _t_pdf(0.0, df) + _t_pdf(x, df)
    total += sum((4 if i % 2 else 2) * _t_pdf(i * h, df) for i in range(1, n))
    return 0.5 + total * h / 3


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    low, high = 0.0, 50.0
    for _ in range(60):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass
class Spread:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); nan for one value
    low: float  # 95% interval of the mean, Student t
    high: float


def spread(values: list[float], level: float = 0.95) -> Spread:
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Spread(n, mean, math.nan, math.nan, math.nan)
    std = statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half)
