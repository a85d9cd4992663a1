"""Sentence pairs for translation: a UTF-8 TSV file (`source<TAB>target`), or a built-in offline corpus.

The built-in corpus is human-written dates in many formats ("Tuesday, March 3, 1987", "3rd of March 1987",
"03.03.1987", "MAR 3 1987"...) translated to ISO dates ("1987-03-03"). Every source format puts day, month and
year in another order than the target, so the decoder must learn where to look (cross-attention) rather than
copy. It is generated from a seed, needs no download, and its test dates never occur in training.
Real corpora (the Anki/Tatoeba `english<TAB>french` files) plug in by path.

Tokens are characters (the default; the dates corpus) or subword pieces learned with sentencepiece on the training
split (genlab.data.tokenizers); ids 0, 1, 2 are PAD, BOS, EOS on both sides (genlab.nets.seq2seq).
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from genlab.data.paths import DataError, data_root
from genlab.data.tokenizers import KINDS, CharTokenizer, SubwordTokenizer, TokenVocab
from genlab.nets.seq2seq import BOS, EOS, PAD


class Seq2SeqDataError(DataError):
    """A TSV corpus that cannot be used, with the reason and the fix in one line."""


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

    def __init__(self, pairs, src_ids: list[list[int]], tgt_ids: list[list[int]]):
        self.pairs = pairs
        self.items = [(torch.tensor(s), torch.tensor([BOS, *t, EOS])) for s, t in zip(src_ids, tgt_ids, strict=True)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate_pairs(batch):
    """PAD-padded [B, S] source and [B, T] target tensors."""
    pad = torch.nn.utils.rnn.pad_sequence
    return pad([s for s, _ in batch], batch_first=True, padding_value=PAD), \
        pad([t for _, t in batch], batch_first=True, padding_value=PAD)


class BucketBatchSampler(BatchSampler):
    """Batches of similar lengths, so that little of a batch is padding: the sampler's (shuffled) order is cut into
    chunks of `chunk_batches` batches, each chunk is sorted by length and cut into batches, and all batches are
    shuffled. `lengths[i]`: the size of example i (source plus target tokens). Lightning can swap `sampler` (e.g. for
    a DistributedSampler), as for any BatchSampler."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, lengths: list[int], chunk_batches: int = 50):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.chunk_batches = lengths, chunk_batches

    def __iter__(self):
        order, size = list(self.sampler), self.batch_size * self.chunk_batches
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        # a fresh seed from torch's generator, as RandomSampler draws its own: seed_everything fixes both
        gen = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        for i in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[i]

    def __len__(self) -> int:
        n, size = len(self.sampler), self.batch_size * self.chunk_batches
        full, rest = divmod(n, size)
        if self.drop_last:
            return full * self.chunk_batches + rest // self.batch_size
        return full * self.chunk_batches + -(-rest // self.batch_size)


def resolve_path(path: str) -> Path:
    """`path` as given, else the same relative path under the data root ($GENLAB_DATA_DIR), where `genlab data`
    writes (so `path: bible_eng_spa` finds $GENLAB_DATA_DIR/bible_eng_spa)."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    under_root = data_root() / given
    return under_root if under_root.exists() else given


class Seq2SeqDataModule(pl.LightningDataModule):
    """Sentence pairs for a translation model.

    Args:
        path: a UTF-8 TSV of `source<TAB>target` lines (Anki/Tatoeba format), split here; or a folder holding
            train.tsv, val.tsv and test.tsv, used as they are split (`genlab data bible-eng-spa` writes
            $GENLAB_DATA_DIR/bible_eng_spa); a relative path that does not exist is looked up under the data root
            ($GENLAB_DATA_DIR); None: the built-in dates corpus.
        batch_size: pairs per batch.
        n_train, n_val, n_test: sizes of the built-in corpus's splits (pairs).
        val_fraction, test_fraction: shares of a TSV file's distinct source sentences held out.
        seed: the corpus generation and the split.
        num_workers: DataLoader workers.
        tokenizer: "char": characters, the vocabularies being the characters of all pairs (every split); "subword":
            sentencepiece BPE pieces with byte fallback, learned on the training split only, one model per side.
        vocab_size: pieces per side for "subword" (specials and the 256 byte pieces included); a text too small for
            it gets fewer, said in one line.
        max_len: training pairs with more than this many tokens on either side (BOS/EOS not counted) are dropped,
            said in one line; validation and test pairs are kept whole, and the model's positions cover them
            (`max_src_len` / `max_tgt_len` are the longest kept pair's).
        bucket: draw training batches from length buckets (less padding, faster); None: on for "subword", off for
            "char" (the dates corpus keeps its batches).
    The tokenizers (`src_tokenizer`, `tgt_tokenizer`) and lengths are read by the Translator at setup; it stores
    them in its checkpoint.
    """

    def __init__(self, path: str | None = None, batch_size: int = 128, n_train: int = 50_000, n_val: int = 500,
                 n_test: int = 1000, val_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0,
                 num_workers: int = 0, tokenizer: str = "char", vocab_size: int = 4000, max_len: int = 256,
                 bucket: bool | None = None):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("vocab_size", vocab_size),
                        ("max_len", max_len)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if tokenizer not in KINDS:
            raise ValueError(f"tokenizer must be one of {', '.join(map(repr, KINDS))}, got {tokenizer!r}")
        self.save_hyperparameters()
        self.path, self.batch_size, self.num_workers = path, batch_size, num_workers
        self.bucket = tokenizer == "subword" if bucket is None else bucket
        self.src_tokenizer = self.tgt_tokenizer = None
        self.train_pairs = self.val_pairs = self.test_pairs = None
        self.dropped = 0
        self.max_src_len = self.max_tgt_len = None  # tokens, over every split (target: with BOS and EOS)

    # the names before subword tokens existed
    src_vocab = property(lambda self: self.src_tokenizer)
    tgt_vocab = property(lambda self: self.tgt_tokenizer)

    def _read(self):
        hp = self.hparams
        if self.path is None:
            return date_corpus(hp.n_train, hp.n_val, hp.n_test, hp.seed)
        path = resolve_path(self.path)
        if path.is_dir():  # split beforehand, e.g. by book (genlab data bible-eng-spa)
            missing = [f"{s}.tsv" for s in ("train", "val", "test") if not (path / f"{s}.tsv").is_file()]
            if missing:
                raise Seq2SeqDataError(f"{path} lacks {', '.join(missing)}; a split folder holds train.tsv, val.tsv "
                                       "and test.tsv (`genlab data bible-eng-spa` writes one)")
            return tuple(read_tsv(path / f"{split}.tsv") for split in ("train", "val", "test"))
        if not path.exists() and path.name in ("bible_eng_spa", "bible-eng-spa"):
            raise Seq2SeqDataError(f"the prepared Bible corpus is not at {path} nor {data_root() / path}; run "
                                   "`genlab data bible-eng-spa` first (it writes $GENLAB_DATA_DIR/bible_eng_spa)")
        return split_pairs(read_tsv(path), hp.val_fraction, hp.test_fraction, hp.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_pairs is not None:
            return
        hp = self.hparams
        train, val, test = self._read()
        if hp.tokenizer == "char":
            everything = train + val + test
            self.src_tokenizer = CharTokenizer.from_texts((s for s, _ in everything), "source")
            self.tgt_tokenizer = CharTokenizer.from_texts((t for _, t in everything), "target")
        else:
            self.src_tokenizer = SubwordTokenizer.train((s for s, _ in train), hp.vocab_size, "source")
            self.tgt_tokenizer = SubwordTokenizer.train((t for _, t in train), hp.vocab_size, "target")
            sizes = (self.src_tokenizer.size, self.tgt_tokenizer.size)
            if min(sizes) < hp.vocab_size:
                print(f"genlab: the training text supports {sizes[0]} source and {sizes[1]} target pieces, fewer "
                      f"than vocab_size={hp.vocab_size}; using those")
        encoded = {name: ([self.src_tokenizer.encode(s) for s, _ in p], [self.tgt_tokenizer.encode(t) for _, t in p])
                   for name, p in (("train", train), ("val", val), ("test", test))}
        src_ids, tgt_ids = encoded["train"]
        keep = [i for i, (s, t) in enumerate(zip(src_ids, tgt_ids, strict=True)) if max(len(s), len(t)) <= hp.max_len]
        self.dropped = len(train) - len(keep)
        if self.dropped:
            if not keep:
                raise Seq2SeqDataError(f"every training pair has more than max_len={hp.max_len} tokens on a side; "
                                       "raise --data.init_args.max_len")
            print(f"genlab: {self.dropped} of {len(train)} training pairs have more than max_len={hp.max_len} "
                  "tokens on a side and are left out of training (--data.init_args.max_len)")
            train = [train[i] for i in keep]
            encoded["train"] = ([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
        self.train_pairs, self.val_pairs, self.test_pairs = train, val, test
        self._sets = {name: PairDataset(p, *encoded[name])
                      for name, p in (("train", train), ("val", val), ("test", test))}
        ids = [i for src, tgt in encoded.values() for i in zip(src, tgt, strict=True)]
        self.max_src_len = max(len(s) for s, _ in ids)
        self.max_tgt_len = max(len(t) for _, t in ids) + 2  # with BOS and EOS

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        data = self._sets[name]
        drop_last = shuffle and len(data) > self.batch_size
        common = {"collate_fn": collate_pairs, "num_workers": self.num_workers,
                  "persistent_workers": self.num_workers > 0}
        if shuffle and self.bucket:
            lengths = [len(s) + len(t) for s, t in data.items]
            sampler = BucketBatchSampler(RandomSampler(data), self.batch_size, drop_last, lengths)
            return DataLoader(data, batch_sampler=sampler, **common)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


__all__ = ["BucketBatchSampler", "Seq2SeqDataModule", "Seq2SeqDataError", "TokenVocab", "date_corpus", "date_pair",
           "read_tsv", "resolve_path", "split_pairs"]
