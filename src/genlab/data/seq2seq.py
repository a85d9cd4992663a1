"""Sentence pairs for translation: a UTF-8 TSV file (`source<TAB>target`), or a built-in offline corpus.

The built-in corpus is human-written dates in many formats ("Tuesday, March 3, 1987", "3rd of March 1987",
"03.03.1987", "MAR 3 1987"...) translated to ISO dates ("1987-03-03"). Every source format puts day, month and
year in another order than the target, so the decoder must learn where to look (cross-attention) rather than
copy. It is generated from a seed, needs no download, and its test dates never occur in training.
Real corpora (the Anki/Tatoeba `english<TAB>french` files) plug in by path.

Tokens are characters; ids 0, 1, 2 are PAD, BOS, EOS on both sides (genlab.nets.seq2seq).
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from collections.abc import Iterable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from genlab.nets.seq2seq import BOS, EOS, N_SPECIAL, PAD


class Seq2SeqDataError(ValueError):
    """A TSV corpus that cannot be used, with the reason and the fix in one line."""


class TokenVocab:
    """Characters <-> ids, after the special ids; an unknown character is an error that lists it."""

    def __init__(self, chars: str, side: str = "source"):
        if not chars or len(set(chars)) != len(chars):
            raise ValueError(f"a {side} vocabulary needs distinct characters, got {chars!r}")
        self.chars, self.side = chars, side
        self.stoi = {c: i + N_SPECIAL for i, c in enumerate(chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], side: str = "source") -> TokenVocab:
        return cls("".join(sorted(set("".join(texts)))), side)

    @property
    def size(self) -> int:
        return len(self.chars) + N_SPECIAL

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


# ---------------------------------------------------------------------------------------------------------------
# The built-in corpus: dates

FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2099, 12, 31)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _formats(d: dt.date) -> list[str]:
    month, mon = calendar.month_name[d.month], calendar.month_abbr[d.month]
    day_name, dy = calendar.day_name[d.weekday()], calendar.day_abbr[d.weekday()]
    y, m, dd = d.year, d.month, d.day
    return [
        f"{dd} {month} {y}",
        f"{month} {dd}, {y}",
        f"{day_name}, {month} {dd}, {y}",
        f"{dy} {dd} {mon} {y}",
        f"{_ordinal(dd)} of {month} {y}",
        f"the {_ordinal(dd)} of {month}, {y}",
        f"{month} {_ordinal(dd)} {y}",
        f"{mon} {dd} {y}",
        f"{dd}-{mon}-{y}",
        f"{mon.upper()} {dd} {y}",
        f"{dd} {month.lower()} {y}",
        f"{m}/{dd}/{y}",          # US order, slashes
        f"{m:02d}/{dd:02d}/{y}",
        f"{dd:02d}.{m:02d}.{y}",  # European order, dots
        f"{dd}.{m}.{y}",
        f"{dd:02d}{m:02d}{y}",
        f"{month} {y}, day {dd}",
        f"{dy}, {dd} {month} {y}",
    ]


N_FORMATS = len(_formats(FIRST_DATE))


def date_pair(d: dt.date, fmt: int) -> tuple[str, str]:
    """(the date written in format `fmt`, its ISO form)."""
    return _formats(d)[fmt], d.isoformat()


def date_corpus(n_train: int, n_val: int, n_test: int, seed: int = 0):
    """Three lists of (source, target) pairs; validation and test dates never occur in training."""
    days = [FIRST_DATE + dt.timedelta(days=i) for i in range((LAST_DATE - FIRST_DATE).days + 1)]
    rng = random.Random(seed)
    rng.shuffle(days)
    if n_val + n_test >= len(days) // 2:
        raise ValueError(f"n_val + n_test must be under {len(days) // 2} (half the {len(days)} dates)")
    test_days, val_days, train_days = days[:n_test], days[n_test : n_test + n_val], days[n_test + n_val :]
    test = [date_pair(d, rng.randrange(N_FORMATS)) for d in test_days]
    val = [date_pair(d, rng.randrange(N_FORMATS)) for d in val_days]
    train = [date_pair(rng.choice(train_days), rng.randrange(N_FORMATS)) for _ in range(n_train)]
    return train, val, test


# ---------------------------------------------------------------------------------------------------------------
# TSV corpora


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """(source, target) pairs from a UTF-8 file of `source<TAB>target` lines; extra columns (Tatoeba's
    attribution) are ignored, blank lines skipped. Errors name the file, the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise Seq2SeqDataError(f"sentence-pair file not found: {path.resolve()}; pass a UTF-8 TSV file of "
                               "`source<TAB>target` lines as --data.init_args.path, or omit it for the built-in corpus")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise Seq2SeqDataError(f"{path} is not UTF-8 (byte {err.start}: {err.reason}); convert it first, e.g. "
                               f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.tsv`") from None
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise Seq2SeqDataError(f"{path}:{n}: no tab in {line[:60]!r}; each line must be source<TAB>target")
        src, tgt = (s.strip() for s in line.split("\t")[:2])
        if not src or not tgt:
            side = "source" if not src else "target"
            raise Seq2SeqDataError(f"{path}:{n}: the {side} side is empty; each line needs text on both "
                                   "sides of the tab (delete or fix that line)")
        pairs.append((src, tgt))
    if not pairs:
        raise Seq2SeqDataError(f"{path} holds no sentence pairs; each line must be source<TAB>target")
    return pairs


def split_pairs(pairs, val_fraction: float, test_fraction: float, seed: int = 0):
    """Split by distinct source sentence, so a test source never occurs in training (nor in validation)."""
    by_source: dict[str, list[tuple[str, str]]] = {}
    for p in pairs:
        by_source.setdefault(p[0], []).append(p)
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    n_test, n_val = round(len(sources) * test_fraction), round(len(sources) * val_fraction)
    if len(sources) - n_test - n_val < 1 or n_test < 1 or n_val < 1:
        raise Seq2SeqDataError(f"{len(sources)} distinct source sentences are too few to split into training, "
                               f"validation ({val_fraction:g}) and test ({test_fraction:g}); use a larger file")
    groups = [sources[:n_test], sources[n_test : n_test + n_val], sources[n_test + n_val :]]
    test, val, train = ([p for s in g for p in by_source[s]] for g in groups)
    return train, val, test


# ---------------------------------------------------------------------------------------------------------------
# Datasets and the DataModule


class PairDataset(Dataset):
    """Encoded pairs: source ids, and target ids with BOS first and EOS last."""

    def __init__(self, pairs, src_vocab: TokenVocab, tgt_vocab: TokenVocab):
        self.pairs = pairs
        self.items = [(torch.tensor(src_vocab.encode(s)), torch.tensor([BOS, *tgt_vocab.encode(t), EOS]))
                      for s, t in pairs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate_pairs(batch):
    """PAD-padded [B, S] source and [B, T] target tensors."""
    pad = torch.nn.utils.rnn.pad_sequence
    return pad([s for s, _ in batch], batch_first=True, padding_value=PAD), \
        pad([t for _, t in batch], batch_first=True, padding_value=PAD)


class Seq2SeqDataModule(pl.LightningDataModule):
    """Sentence pairs for a translation model.

    Args:
        path: a UTF-8 TSV of `source<TAB>target` lines (Anki/Tatoeba format), split here; or a folder holding
            train.tsv, val.tsv and test.tsv, used as they are split; None: the built-in dates corpus.
        batch_size: pairs per batch.
        n_train, n_val, n_test: sizes of the built-in corpus's splits (pairs).
        val_fraction, test_fraction: shares of a TSV file's distinct source sentences held out.
        seed: the corpus generation and the split.
        num_workers: DataLoader workers.
    The vocabularies (one per side) are the characters of all pairs; the model stores them in its checkpoint.
    """

    def __init__(self, path: str | None = None, batch_size: int = 128, n_train: int = 50_000, n_val: int = 500,
                 n_test: int = 1000, val_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0,
                 num_workers: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.save_hyperparameters()
        self.path, self.batch_size, self.num_workers = path, batch_size, num_workers
        self.src_vocab: TokenVocab | None = None
        self.tgt_vocab: TokenVocab | None = None
        self.train_pairs = self.val_pairs = self.test_pairs = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_pairs is not None:
            return
        hp = self.hparams
        if self.path is None:
            train, val, test = date_corpus(hp.n_train, hp.n_val, hp.n_test, hp.seed)
        elif Path(self.path).is_dir():  # split beforehand, e.g. by book (genlab data bible-eng-spa)
            train, val, test = (read_tsv(Path(self.path) / f"{split}.tsv") for split in ("train", "val", "test"))
        else:
            train, val, test = split_pairs(read_tsv(self.path), hp.val_fraction, hp.test_fraction, hp.seed)
        everything = train + val + test
        self.src_vocab = TokenVocab.from_texts((s for s, _ in everything), "source")
        self.tgt_vocab = TokenVocab.from_texts((t for _, t in everything), "target")
        self.train_pairs, self.val_pairs, self.test_pairs = train, val, test
        self._sets = {name: PairDataset(p, self.src_vocab, self.tgt_vocab)
                      for name, p in (("train", train), ("val", val), ("test", test))}

    @property
    def max_src_len(self) -> int:
        return max(len(s) for s, _ in self.train_pairs + self.val_pairs + self.test_pairs)

    @property
    def max_tgt_len(self) -> int:  # with BOS and EOS
        return max(len(t) for _, t in self.train_pairs + self.val_pairs + self.test_pairs) + 2

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(self._sets[name], batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate_pairs,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          drop_last=shuffle and len(self._sets[name]) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


__all__ = ["Seq2SeqDataModule", "Seq2SeqDataError", "TokenVocab", "date_corpus", "date_pair", "read_tsv",
           "split_pairs"]
