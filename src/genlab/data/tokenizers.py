"""Text <-> token ids for the translator: characters, or subword pieces learned with sentencepiece.

Both kinds share one small interface: `encode(text) -> ids`, `decode(ids) -> text` (up to the first EOS),
`pieces(ids)` (a label per id, for attention pictures), `size` (ids in use, specials included) and `state`, a dict of
plain values (str, bytes) that `tokenizer_from_state` turns back into the tokenizer. The state is what a checkpoint
stores, so it loads with torch.load(weights_only=True).

Ids 0, 1, 2 are PAD, BOS, EOS on both kinds (genlab.nets.seq2seq); characters start at 3, and sentencepiece's
unknown id is 3 (never produced: byte fallback spells any character it has not learned as its UTF-8 bytes).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from genlab.nets.seq2seq import EOS, N_SPECIAL

UNK = 3  # sentencepiece's unknown piece; with byte_fallback it never comes out of encode


class CharTokenizer:
    """Characters <-> ids, after the special ids; an unknown character is an error that lists it."""

    kind = "char"

    def __init__(self, chars: str, side: str = "source"):
        if not chars or len(set(chars)) != len(chars):
            raise ValueError(f"a {side} vocabulary needs distinct characters, got {chars!r}")
        self.chars, self.side = chars, side
        self.stoi = {c: i + N_SPECIAL for i, c in enumerate(chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], side: str = "source") -> CharTokenizer:
        return cls("".join(sorted(set("".join(texts)))), side)

    @property
    def size(self) -> int:
        return len(self.chars) + N_SPECIAL

    @property
    def state(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"{len(unknown)} character(s) not in the model's {self.side} vocabulary: "
                             f"{', '.join(repr(c) for c in unknown)}; it knows {self.chars!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Characters up to the first EOS; PAD and BOS are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= N_SPECIAL:
                out.append(self.chars[i - N_SPECIAL])
        return "".join(out)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.chars[i - N_SPECIAL] if i >= N_SPECIAL else "<s>" if i == 1 else "</s>" if i == EOS else "<pad>"
                for i in map(int, ids)]

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars


TokenVocab = CharTokenizer  # the name before subword tokens existed


class SubwordTokenizer:
    """sentencepiece BPE pieces with byte fallback: any text encodes, and decode(encode(text)) == text for text
    without leading, trailing or tab/newline whitespace (identity normalisation, spaces kept as they are)."""

    kind = "subword"

    def __init__(self, model: bytes, side: str = "source"):
        import sentencepiece as spm

        self.model, self.side = bytes(model), side
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)
        specials = (self.sp.pad_id(), self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id())
        if specials != (0, 1, 2, UNK):
            raise ValueError(f"a sentencepiece model with pad/bos/eos/unk ids {specials}; genlab needs (0, 1, 2, 3)")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, side: str = "source") -> SubwordTokenizer:
        """BPE pieces learned from `texts` (deterministic). A vocab_size larger than the texts support is capped at
        what they support (sentencepiece's hard_vocab_limit=False): compare `.size` with what was asked."""
        import sentencepiece as spm

        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(list(texts)), model_writer=out, vocab_size=vocab_size, model_type="bpe",
                byte_fallback=True, pad_id=0, bos_id=1, eos_id=2, unk_id=UNK, hard_vocab_limit=False,
                normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2)
        except RuntimeError as err:  # e.g. a vocab_size below the 256 byte pieces + specials + characters
            raise ValueError(f"sentencepiece cannot learn {vocab_size} {side} pieces: "
                             f"{str(err).splitlines()[0].rpartition('] ')[2]}") from None
        return cls(out.getvalue(), side)

    @property
    def size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def state(self) -> dict:
        return {"kind": self.kind, "model": self.model}

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Text up to the first EOS; PAD and BOS are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= N_SPECIAL:
                out.append(i)
        return self.sp.decode(out)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def __eq__(self, other) -> bool:
        return isinstance(other, SubwordTokenizer) and other.model == self.model


KINDS = ("char", "subword")


def tokenizer_from_state(state: dict, side: str = "source"):
    """The tokenizer a `.state` dict describes."""
    kind = state.get("kind")
    if kind == "char":
        return CharTokenizer(state["chars"], side)
    if kind == "subword":
        return SubwordTokenizer(state["model"], side)
    raise ValueError(f"unknown tokenizer kind {kind!r} (known: {', '.join(KINDS)})")


__all__ = ["KINDS", "UNK", "CharTokenizer", "SubwordTokenizer", "TokenVocab", "tokenizer_from_state"]
