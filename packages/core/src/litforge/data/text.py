"""Text as tensors: token sequences of any length, padded, with their vocabulary; short strings
(ids, names) carried in a batch as bytes.

    Vocabulary.build(texts)          tokens (characters or words) <-> ids; 0 is padding
    vocabulary.encode_batch(texts)   int64 N x L ids, right-padded with 0, and the N lengths
    vocabulary.decode(ids)           ids back to text (padding dropped): for tables and captions
    pad_sequences(seqs)              any id sequences -> (N x L, lengths)
    sequence_mask(lengths, L)        True at real tokens, False at padding: N x L
    encode_strings / decode_strings  strings <-> uint8 N x L (UTF-8, zero-padded): text that
                                     travels in an Example like any field (``id``)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

Tokenize = Literal["chars", "words"]
PAD, UNKNOWN = "<pad>", "<unk>"


class Vocabulary:
    """The tokens of a text task and their ids: id 0 is padding, id 1 an unknown token, the
    tokens follow from id 2 in the order given.

    Args:
        tokens: the known tokens (without padding and unknown).
        tokenize: 'chars' (every character is a token: ``"(()"`` -> ``( ( )``) or 'words'
            (split at whitespace).
    """

    pad_id = 0
    unknown_id = 1

    def __init__(self, tokens: Sequence[str], tokenize: Tokenize = "chars") -> None:
        if tokenize not in ("chars", "words"):
            raise ValueError(f"tokenize must be 'chars' or 'words', got {tokenize!r}")
        if len(set(tokens)) != len(tokens) or {PAD, UNKNOWN} & set(tokens):
            raise ValueError(f"tokens must be distinct and not {PAD} or {UNKNOWN}")
        self.tokenize_mode: Tokenize = tokenize
        self.tokens: tuple[str, ...] = (PAD, UNKNOWN, *tokens)
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], tokenize: Tokenize = "chars") -> Vocabulary:
        """Every distinct token of ``texts``, sorted: the same texts give the same ids."""
        vocabulary = cls((), tokenize)
        found = {token for text in texts for token in vocabulary.split(text)}
        return cls(sorted(found), tokenize)

    def __len__(self) -> int:
        """The number of ids, padding and unknown included: an embedding's size."""
        return len(self.tokens)

    def __repr__(self) -> str:
        shown = " ".join(self.tokens[2:12]) + (" ..." if len(self) > 12 else "")
        return f"Vocabulary({len(self)} ids, {self.tokenize_mode}: {shown})"

    def split(self, text: str) -> list[str]:
        """The tokens of ``text``."""
        return list(text) if self.tokenize_mode == "chars" else text.split()

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens; unknown tokens get ``unknown_id``."""
        return [self.ids.get(token, self.unknown_id) for token in self.split(text)]

    def encode_batch(
        self, texts: Sequence[str], length: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """(tokens, lengths): int64 N x L ids right-padded with 0 (L: the longest, or ``length``,
        longer texts cut) and the int64 N lengths of the texts (as cut)."""
        return pad_sequences([self.encode(text) for text in texts], length)

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """Text from ids, padding dropped; unknown tokens show as ``<unk>``."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        words = [self.tokens[i] if 0 <= i < len(self) else UNKNOWN for i in values if i != 0]
        return ("" if self.tokenize_mode == "chars" else " ").join(words)


def pad_sequences(
    sequences: Sequence[Sequence[int] | Tensor], length: int | None = None, pad: int = 0
) -> tuple[Tensor, Tensor]:
    """(tokens, lengths): the sequences right-padded with ``pad`` into int64 N x L (L: the
    longest, or ``length``: longer ones cut), and their int64 N lengths (as cut)."""
    if not sequences:
        raise ValueError("pad_sequences needs at least one sequence")
    rows = [torch.as_tensor(s, dtype=torch.int64).reshape(-1) for s in sequences]
    if length is not None:
        rows = [row[:length] for row in rows]
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
    tokens = pad_sequence(rows, batch_first=True, padding_value=pad)
    width = length if length is not None else tokens.shape[1]
    if tokens.shape[1] < width:  # every row shorter than ``length``
        tokens = torch.nn.functional.pad(tokens, (0, width - tokens.shape[1]), value=pad)
    return tokens, lengths


def sequence_mask(lengths: Tensor, length: int | None = None) -> Tensor:
    """bool N x L: True at the first ``lengths[n]`` positions of row n (real tokens), False at
    padding. ``length``: L (default: the longest)."""
    width = int(lengths.max()) if length is None else length
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def encode_strings(strings: Sequence[str]) -> Tensor:
    """Strings as uint8 N x L (UTF-8 bytes, zero-padded to the longest): text that is indexed,
    split and moved with the other fields of a batch."""
    encoded = [s.encode("utf-8") for s in strings]
    width = max((len(b) for b in encoded), default=0)
    out = torch.zeros(len(encoded), max(width, 1), dtype=torch.uint8)
    for i, b in enumerate(encoded):
        if b:
            out[i, : len(b)] = torch.frombuffer(bytearray(b), dtype=torch.uint8)
    return out


def decode_strings(encoded: Tensor) -> list[str]:
    """The strings of ``encode_strings`` back, one per row (a single row: a list of one)."""
    rows = encoded.reshape(-1, encoded.shape[-1]).cpu().tolist()
    return [bytes(b for b in row if b).decode("utf-8", errors="replace") for row in rows]
