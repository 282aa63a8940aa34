import math

import pytest
import torch

from litforge.tasks.structs import ClassificationExample, ClassificationPrediction, Loss


def make_example(n: int = 4) -> ClassificationExample:
    return ClassificationExample(
        index=torch.arange(n), image=torch.randn(n, 3, 2, 2), label=torch.arange(n) % 2
    )


def test_collate_index_slice_to_detach():
    items = [make_example(1), make_example(3)]
    batch = ClassificationExample.collate(items)
    assert len(batch) == 4
    assert batch.index.tolist() == [0, 0, 1, 2]
    assert torch.equal(batch.image[1:], items[1].image)
    one = batch[2]
    assert len(one) == 1 and one.index.tolist() == [1]
    part = batch[1:3]
    assert part.index.tolist() == [0, 1]
    picked = batch[torch.tensor([3, 0])]
    assert picked.index.tolist() == [2, 0]
    assert batch.to(torch.float64).image.dtype == torch.float64
    grad = ClassificationExample(
        torch.arange(2), image=torch.randn(2, 3, requires_grad=True), label=torch.zeros(2)
    )
    assert not grad.detach().image.requires_grad
    with pytest.raises(ValueError, match="empty"):
        ClassificationExample.collate([])


def test_subclass_keeps_its_fields():
    import dataclasses

    @dataclasses.dataclass
    class Weighted(ClassificationExample):
        weight: torch.Tensor

    ex = Weighted(
        torch.arange(2), torch.zeros(2), torch.tensor([0.5, 2.0]), image=torch.zeros(2, 1)
    )
    both = Weighted.collate([ex, ex])
    assert isinstance(both, Weighted) and both.weight.tolist() == [0.5, 2.0, 0.5, 2.0]
    assert both[1:].weight.tolist() == [2.0, 0.5, 2.0]


def test_prediction_derived_fields():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    p = ClassificationPrediction(logits)
    assert torch.allclose(p.probs.sum(-1), torch.ones(3))
    assert p.pred.tolist() == [0, 0, 3]
    ent = p.entropy
    assert ent[0].item() == pytest.approx(1.0)  # uniform: log C / log C
    probs = torch.softmax(logits[2], -1)
    expected = float(-(probs * probs.log()).sum() / math.log(4))
    assert ent[2].item() == pytest.approx(expected, rel=1e-5)
    assert 0 <= ent[1].item() < 0.01
    assert p.p_true(torch.tensor([1, 0, 3])).tolist() == pytest.approx(
        [0.25, float(torch.softmax(logits[1], -1)[0]), float(probs[3])], rel=1e-5
    )


def test_loss_items_and_detach():
    a = torch.tensor(1.0, requires_grad=True)
    loss = Loss(total=a * 3, terms={"ce": a * 2, "reg": a})
    assert set(loss.items()) == {"ce", "reg", "total"}
    d = loss.detach()
    assert not d.total.requires_grad and not d.terms["ce"].requires_grad
    assert d.total.item() == 3.0
