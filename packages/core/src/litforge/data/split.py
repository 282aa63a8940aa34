"""Train / validation / test from one pool of items: random or stratified, seeded."""

from __future__ import annotations

import torch

from litforge.data.arrays import Arrays


def size_problem(size: float, name: str) -> str | None:
    """Why ``size`` (a val_size or test_size) cannot be used, or None. A fraction is below 1 and
    a count is a whole number; 1 is neither: the command line reads ``1`` and ``1.0`` alike, and
    neither "the whole pool" (nothing left to train on) nor "one item" (one example choosing
    the best checkpoint) is what anyone means."""
    if size == 1:
        return (
            f"{name}={size:g} is neither a fraction (below 1: 0.2 holds out a fifth of the pool) "
            "nor a useful count (one item): give a fraction below 1 or a count of 2 or more"
        )
    if size < 0 or (size > 1 and size != int(size)):
        return f"{name}={size} must be a fraction in [0, 1) or a whole count of items"
    return None


def count(size: float, n: int, name: str) -> int:
    """``size`` as a number of items: a fraction of ``n`` (the whole pool) when below 1, else a
    count; 1 is refused (``size_problem``)."""
    problem = size_problem(size, name)
    if problem:
        raise ValueError(problem)
    return round(size * n) if size < 1 else int(size)


def split_pool(
    pool: Arrays,
    val_size: float = 0,
    test_size: float = 0,
    stratify: str | None = None,
    seed: int = 0,
) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """(train, val, test) from one pool; each size is a fraction (0.1) or a count (500); a size
    of 0 gives None. ``stratify`` names an integer field (e.g. ``"label"``): every part then
    holds the classes in the pool's proportions (to within one item per class). The same seed
    gives the same split."""
    n = len(pool)
    n_val, n_test = count(val_size, n, "val_size"), count(test_size, n, "test_size")
    if n_val + n_test >= n:
        raise ValueError(
            f"val_size={val_size:g} and test_size={test_size:g} leave no training items of {n}"
        )
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    if stratify is not None:
        labels = pool[stratify]
        if labels.dim() != 1 or labels.dtype.is_floating_point:
            raise ValueError(f"stratify={stratify!r} must name an integer field of shape (N,)")
        # Each item's rank within its class, as a fraction of the class size, spreads every
        # class evenly over [0, 1); taking the items in that order cuts every class alike.
        labels = labels[order].cpu()
        _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        rank = torch.zeros(n)
        for c in range(len(counts)):
            members = (inverse == c).nonzero()[:, 0]
            rank[members] = (torch.arange(len(members)) + 0.5) / len(members)
        order = order[torch.argsort(rank, stable=True)]
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return (
        pool.subset(train.sort().values),
        pool.subset(val.sort().values) if n_val else None,
        pool.subset(test.sort().values) if n_test else None,
    )
