"""The data: rows of 8 float features and one float target, a known nonlinear function of them
plus noise, made in memory (no download).

Real task: replace ``load()`` with your own rows; everything else (validation and test split,
standardisation, batching on the device, the rows as tables in the diagnostics) comes from
``ArrayDataModule``. ``num_features`` reaches the model by itself.
"""

from typing import Any

import torch

from litforge import ArrayDataModule, Arrays, RegressionExample


def make_rows(n: int, n_features: int, noise: float, seed: int) -> Arrays:
    """``n`` rows of features ~ N(0, 1) and target = sin(2 x0) + x1^2 / 2 - x2 x3 + (the rest
    summed) / 4 + N(0, noise^2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=g)
    y = torch.sin(2 * x[:, 0]) + x[:, 1] ** 2 / 2 - x[:, 2] * x[:, 3] + x[:, 4:].sum(1) / 4
    return Arrays(features=x, target=y + noise * torch.randn(n, generator=g))


class RowsData(ArrayDataModule):
    """Args: ``n`` rows of ``n_features`` features, target noise ``noise``; the rest:
    ArrayDataModule (val_size, test_size, standardize, ...)."""

    name = "rows"  # Real task: your data set's name; metrics are logged as <stage>/<name>/<metric>
    example_type = RegressionExample  # a batch: features (N x F) and target (N)

    def __init__(self, n: int = 600, n_features: int = 8, noise: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.n, self.n_features, self.noise = n, n_features, noise

    def load(self) -> Arrays:
        # Real task: return your rows as Arrays(features=..., target=...), float tensors; one
        # pool, split by val_size / test_size, or (train, test).
        return make_rows(self.n, self.n_features, self.noise, seed=0)


ShapesData = RowsData  # the name cli.py imports
