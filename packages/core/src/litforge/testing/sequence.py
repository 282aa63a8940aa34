"""A tiny sequence classification task: which of the tokens a, b, c occurs most often in a
sequence of letters. Core's ``ClassificationExample`` with ``tokens`` as its input (no image);
tables of examples show the tokens decoded into text.
``python -m litforge.testing.sequence fit ...``"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from litforge.command import run
from litforge.data import ArrayDataModule, Arrays
from litforge.run.project import Project
from litforge.tasks.bases import Classifier
from litforge.tasks.structs import ClassificationExample, ClassificationPrediction, Example

# A batch: ClassificationExample(tokens=int64 N x L, label=int64 N): which of the tokens 0, 1, 2
# (a, b, c) occurs most; the others are filler.
NUM_CLASSES = 3


def letters(vocab_size: int) -> tuple[str, ...]:
    """The text of each token id: a, b, c, ..."""
    if not NUM_CLASSES < vocab_size <= 26:
        raise ValueError(f"vocab_size must lie in ({NUM_CLASSES}, 26], got {vocab_size}")
    return tuple(string.ascii_lowercase[:vocab_size])


def decode(tokens: Tensor, vocab_size: int) -> str:
    """One sequence of token ids as text, e.g. ``"a k c a ..."``."""
    alphabet = letters(vocab_size)
    return " ".join(alphabet[t] for t in tokens.tolist())


def token_sequences(n: int, length: int = 10, vocab_size: int = 12, seed: int = 0) -> Arrays:
    """``n`` sequences of ``length`` token ids in [0, vocab_size). The label (0, 1 or 2) is drawn
    first and occurs 2 to 4 times; each of the other two of tokens 0..2 occurs fewer times; the
    rest are filler tokens (>= 3). No ties: the label is the one token that occurs most."""
    letters(vocab_size)  # fails on a bad vocab_size
    if length < 4:
        raise ValueError(f"length must be >= 4, got {length}")
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    tokens = torch.randint(NUM_CLASSES, vocab_size, (n, length), generator=g)
    for i in range(n):
        winner, top = int(label[i]), int(torch.randint(2, 5, (), generator=g))
        counts = [int(torch.randint(0, top, (), generator=g)) for _ in range(NUM_CLASSES)]
        counts[winner] = top
        while sum(counts) > length:  # short sequences: trim the others, never the winner
            j = max((c for c in range(NUM_CLASSES) if c != winner), key=lambda c: counts[c])
            counts[j] -= 1
        placed = torch.randperm(length, generator=g)
        start = 0
        for token, count in enumerate(counts):
            tokens[i, placed[start : start + count]] = token
            start += count
    return Arrays(class_names=letters(vocab_size)[:NUM_CLASSES], tokens=tokens, label=label)


class TokenSequences(ArrayDataModule):
    """One seeded pool of sequences, split by ``val_size`` / ``test_size``; ``describe``
    decodes the tokens into text, so tables of examples are readable.

    Args:
        n: sequences in the pool.
        length: tokens per sequence.
        vocab_size: distinct tokens (4 to 26), shown as the letters a, b, c, ...
        data_seed: the sequences drawn (the split, the order: ``seed``).
        **kwargs: as ArrayDataModule's.
    """

    name = "sequences"
    example_type: ClassVar[type[Example]] = ClassificationExample

    def __init__(
        self,
        n: int = 360,
        length: int = 10,
        vocab_size: int = 12,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n, self.length, self.letters, self.data_seed = n, length, vocab_size, data_seed
        letters(vocab_size)

    @property
    def vocab_size(self) -> int:  # the letters, ids 0..vocab_size-1 (no padding here)
        return self.letters

    def load(self) -> Arrays:
        return token_sequences(self.n, self.length, self.vocab_size, self.data_seed)

    def describe(self, field: str, value: Tensor) -> str | float | int:
        if field == "tokens":
            return decode(value, self.letters)
        return super().describe(field, value)


class TinySequenceClassifier(Classifier):
    """Token embeddings, mean-pooled, then a small MLP: enough to count tokens.

    Args:
        num_classes: the number of classes (linked from the data module).
        vocab_size: distinct tokens (linked from the data module).
        width: of the embedding and the hidden layer.
        **kwargs: as Classifier's.
    """

    def __init__(
        self, num_classes: int, vocab_size: int = 12, width: int = 16, **kwargs: Any
    ) -> None:
        super().__init__(num_classes, **kwargs)
        self.embed = nn.Embedding(vocab_size, width)
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        pooled = self.embed(example.tokens).mean(dim=1)
        return ClassificationPrediction(logits=self.head(pooled))


CONFIG = Path(__file__).with_name("sequence.yaml")


project = Project("sequences", TinySequenceClassifier, TokenSequences, CONFIG)
main = project.main


if __name__ == "__main__":
    run(project)
