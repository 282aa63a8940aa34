"""A tiny regression task: rows of float features whose target is a known smooth function plus
noise. ``python -m litforge.testing.regression fit ...``"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from litforge.command import run
from litforge.data import ArrayDataModule, Arrays
from litforge.run.project import Project
from litforge.tasks.bases import Regressor
from litforge.tasks.structs import Example, RegressionExample, RegressionPrediction


def known_function(features: Tensor) -> Tensor:
    """The noise-free target of ``feature_rows``: mostly linear (learnt in a few steps), with a
    non-linear part; every feature used."""
    x = features.double()
    y = 1.5 * x[:, 0] - x[:, 1] + 0.5 * torch.sin(2 * x[:, 2]) + 0.3 * x[:, 3] ** 2
    if x.shape[1] > 4:
        y = y + 0.3 * x[:, 4:].sum(dim=1)
    return y.float()


def feature_rows(n: int, n_features: int = 4, noise: float = 0.1, seed: int = 0) -> Arrays:
    """``n`` rows: features ~ N(0, 1) (float32, n x n_features) and target = known_function +
    N(0, noise^2) (float32, n), all from ``seed``."""
    if n_features < 4:
        raise ValueError(f"n_features must be >= 4, got {n_features}")
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, n_features, generator=g)
    target = known_function(features) + noise * torch.randn(n, generator=g)
    return Arrays(features=features, target=target)


class FeatureRows(ArrayDataModule):
    """One seeded pool of rows, split by ``val_size`` / ``test_size``; ``num_features`` (a
    property of ArrayDataModule) is linked to the model by the CLI.

    Args:
        n: rows in the pool.
        n_features: features per row (at least 4).
        noise: standard deviation of the noise added to the target.
        data_seed: the rows drawn (the split, the order: ``seed``).
        **kwargs: as ArrayDataModule's.
    """

    name = "rows"
    example_type: ClassVar[type[Example]] = RegressionExample

    def __init__(
        self,
        n: int = 320,
        n_features: int = 4,
        noise: float = 0.1,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n, self.n_features, self.noise, self.data_seed = n, n_features, noise, data_seed

    def load(self) -> Arrays:
        return feature_rows(self.n, self.n_features, self.noise, self.data_seed)


class MLPRegressor(Regressor):
    """A small MLP returning one value per row.

    Args:
        num_features: the width of a row (linked from the data module).
        hidden: the width of the two hidden layers.
        **kwargs: as BaseModel's (optimizer, lr_scheduler, ...).
    """

    def __init__(self, num_features: int, hidden: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, example: RegressionExample) -> RegressionPrediction:  # type: ignore[override]
        return RegressionPrediction(value=self.head(self.net(example.features))[:, 0])


CONFIG = Path(__file__).with_name("regression.yaml")


project = Project("rows", MLPRegressor, FeatureRows, CONFIG)
main = project.main


if __name__ == "__main__":
    run(project)
