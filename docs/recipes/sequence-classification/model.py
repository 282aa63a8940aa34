"""The model: token embeddings, a GRU up to each sequence's last token, a linear head.
``Classifier`` does the loss (cross-entropy), the metrics (accuracy, macro accuracy, top-5) and
the per-example error the diagnostics rank by; ``BaseModel`` under it does the steps, logging
and optimizer."""

from typing import Any

from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from litforge import ClassificationExample, ClassificationPrediction, Classifier


class SequenceModel(Classifier):
    """Args: ``num_classes`` and ``vocab_size`` (both linked from the data: not in the config),
    ``width`` of the embedding and the GRU; the rest: Classifier and BaseModel (optimizer, ...)."""

    def __init__(self, num_classes: int, vocab_size: int, width: int = 64, **kwargs: Any):
        super().__init__(num_classes, **kwargs)
        # Real task: your network; it only has to map an Example to a Prediction.
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.rnn = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, num_classes)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:  # type: ignore[override]
        lengths = example.lengths.clamp_min(1).cpu()  # padding is never read
        packed = pack_padded_sequence(
            self.embed(example.tokens), lengths, batch_first=True, enforce_sorted=False
        )
        _, last = self.rnn(packed)  # the state after each sequence's last token
        return ClassificationPrediction(self.head(last[-1]))


ShapeModel = SequenceModel  # the name cli.py imports
