"""The Muon rule of the demo's optimizer, held to its definition: the Newton-Schulz iteration
against the exact polar factor from an SVD, MuonSGD's steps against torch's SGD (its SGD groups)
and against the rule written out (its Muon groups), and the model's split of its parameters."""

from __future__ import annotations

import pytest
import torch

from cifar10_demo.model import Cifar10Model, MuonSGD, orthogonalize


def polar(g: torch.Tensor) -> torch.Tensor:
    """U V^T of the SVD g = U S V^T: the orthogonal matrix nearest to g."""
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    return u @ vh


@pytest.mark.parametrize("shape", [(64, 216), (256, 1152), (300, 40)])
def test_orthogonalize_approximates_the_polar_factor(shape: tuple[int, int]) -> None:
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    o = orthogonalize(g, steps=5, dtype=torch.float32)
    assert o.shape == g.shape
    # the coefficients trade convergence for speed: singular values land near 1, not on it
    s = torch.linalg.svdvals(o)
    assert float(s.min()) > 0.6 and float(s.max()) < 1.25
    exact = polar(g)
    cosine = (o * exact).sum() / (o.norm() * exact.norm())
    assert float(cosine) > 0.97
    # the same singular vectors: in g's own basis the result is (nearly) diagonal
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    inner = u.T @ o @ vh.T
    off = inner - torch.diag(torch.diagonal(inner))
    assert float(off.norm() / inner.norm()) < 0.02


def test_orthogonalize_of_a_transpose_is_the_transpose() -> None:
    g = torch.randn(40, 300, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(
        orthogonalize(g.T, 3, torch.float32), orthogonalize(g, 3, torch.float32).T
    )


def test_muon_sgd_steps_as_its_two_rules() -> None:
    gen = torch.Generator().manual_seed(2)
    filters = torch.nn.Parameter(torch.randn(8, 4, 3, 3, generator=gen))
    bias = torch.nn.Parameter(torch.randn(8, generator=gen))
    grads = [
        (torch.randn(8, 4, 3, 3, generator=gen), torch.randn(8, generator=gen)) for _ in range(4)
    ]

    optimizer = MuonSGD(
        [
            {"params": [bias], "lr": 0.1, "weight_decay": 0.01},
            {"params": [filters], "lr": 0.05, "momentum": 0.6, "muon": True},
        ],
        lr=1.0,
        momentum=0.85,
        ns_steps=3,
        ns_dtype=torch.float32,
    )
    # the SGD group against torch's Nesterov SGD
    bias_ref = torch.nn.Parameter(bias.detach().clone())
    sgd = torch.optim.SGD([bias_ref], lr=0.1, momentum=0.85, nesterov=True, weight_decay=0.01)
    # the Muon group written out: rescale, Nesterov momentum, orthogonalized step
    w, buf = filters.detach().clone(), torch.zeros_like(filters)
    for g_filters, g_bias in grads:
        filters.grad, bias.grad, bias_ref.grad = g_filters, g_bias, g_bias.clone()
        optimizer.step()
        sgd.step()
        buf = 0.6 * buf + g_filters
        w = w * (8**0.5 / w.norm())
        w = w - 0.05 * orthogonalize((g_filters + 0.6 * buf).reshape(8, -1), 3, torch.float32).view(
            8, 4, 3, 3
        )
        assert torch.allclose(filters, w, atol=1e-6)
        assert torch.allclose(bias, bias_ref, atol=1e-6)
    # the filters' norm is held: the step is (nearly) orthogonal to a rescaled tensor's size
    assert float(filters.detach().norm()) == pytest.approx(8**0.5, rel=0.05)


def test_the_model_gives_the_filters_to_muon_and_the_rest_to_sgd() -> None:
    model = Cifar10Model(widths=(8, 16, 16), batch_size=64, optimizer="muon", muon_lr=0.1)
    optimizer, _ = model.build_optimizer(10)
    assert isinstance(optimizer, MuonSGD)
    biases, others, filters = optimizer.param_groups
    named = {id(p): n for n, p in model.net.named_parameters()}
    assert {named[id(p)] for p in filters["params"]} == {
        n for n, p in model.net.named_parameters() if n.startswith("blocks") and p.ndim == 4
    }
    assert filters["muon"] and not biases["muon"] and not others["muon"]
    assert filters["initial_lr"] == pytest.approx(0.1 / 1024 * 64)  # per 1024 examples, scaled
    assert {named[id(p)] for p in others["params"]} == {"head.weight"}
    assert "whiten.bias" in {named[id(p)] for p in biases["params"]}
    trainable = [p for p in model.net.parameters() if p.requires_grad]
    grouped = [p for group in optimizer.param_groups for p in group["params"]]
    assert sorted(map(id, grouped)) == sorted(map(id, trainable))  # each exactly once
    # SGD keeps every parameter in its two groups
    sgd, _ = Cifar10Model(widths=(8, 16, 16), batch_size=64).build_optimizer(10)
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 2
