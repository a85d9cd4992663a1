"""Character-level text as a LightningDataModule.

The vocabulary is the sorted set of characters in the file. The language model stores it in its checkpoint,
so generating text later needs no data set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from genlab.data.paths import ENV_VAR, DataError, DataNotFoundError, data_root

DEFAULT_TEXT = Path("tinyshakespeare") / "input.txt"


def unknown_characters(unknown, shown: int = 20) -> str:
    """`unknown` characters named for a message: the count and at most `shown` of them, never a whole vocabulary."""
    unknown = sorted(set(unknown))
    listed = ", ".join(repr(c) for c in unknown[:shown]) + (f", ... ({len(unknown) - shown} more)"
                                                            if len(unknown) > shown else "")
    return listed


class CharVocab:
    """Maps characters to ids and back; unknown characters are an error that lists them."""

    def __init__(self, chars: str):
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be unique")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"{len(unknown)} character(s) not in the model's vocabulary: {unknown_characters(unknown)} "
                             f"(it holds the {self.size} characters of its training corpus; leave them out)")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @property
    def dtype(self) -> torch.dtype:
        """The smallest integer type that holds every id: a corpus costs 1 byte a character below 257 symbols."""
        return torch.uint8 if self.size <= 256 else torch.int16 if self.size <= 32768 else torch.int32

    def encode_tensor(self, text: str, chunk: int = 1 << 20) -> torch.Tensor:
        """`encode(text)` as a tensor of `dtype`, a chunk at a time: a list of Python ints (or an int64 tensor)
        of a large corpus would take many times the file's size in memory."""
        codes = np.array(sorted(map(ord, self.chars)), dtype=np.uint32)
        if [chr(c) for c in codes] != list(self.chars):  # ids by code point need the vocabulary sorted
            return torch.tensor(self.encode(text), dtype=self.dtype)
        out = torch.empty(len(text), dtype=self.dtype)
        for start in range(0, len(text), chunk):
            part = np.frombuffer(text[start : start + chunk].encode("utf-32-le"), dtype=np.uint32)
            ids = np.searchsorted(codes, part)
            bad = (ids >= len(codes)) | (codes[np.minimum(ids, len(codes) - 1)] != part)
            if bad.any():
                self.encode(text[start : start + chunk])  # raises, listing the unknown characters
            out[start : start + len(part)] = torch.from_numpy(ids)
        return out


def read_text(path: Path) -> str:
    """The file as UTF-8 text, with clear errors for a missing, empty or non-UTF-8 file."""
    if not path.is_file():
        raise DataNotFoundError(
            f"text file not found: {path.resolve()}\n"
            f"  fix: pass `--data.init_args.path FILE` (any UTF-8 text), or set {ENV_VAR} to a folder holding "
            f"{DEFAULT_TEXT} (Tiny Shakespeare)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror or err}); check its permissions, or pass another "
                        f"file with `--data.init_args.path FILE`") from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); convert it first, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    if not text:
        raise DataError(f"{path} is empty: a language model needs some text to learn from")
    return text


def keep_batch(batch):
    """The collate function for the windows' `__getitems__`, which already returns a stacked batch."""
    return batch


class RandomWindows(Dataset):
    """`block_size + 1` characters starting anywhere: input is the first block_size, target the last.

    `ids` may be any integer type (the corpus is kept compact); windows come out as int64, as embeddings need.
    """

    def __init__(self, ids: torch.Tensor, block_size: int):
        self.ids, self.block_size = ids, block_size

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, i: int):
        chunk = self.ids[i : i + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]

    def starts(self, indices) -> torch.Tensor:
        return torch.as_tensor(indices, device=self.ids.device)

    def __getitems__(self, indices: list[int]):
        """A whole batch in one gather (one kernel on a GPU, rather than one slice per window)."""
        offsets = torch.arange(self.block_size + 1, device=self.ids.device)
        chunks = self.ids[self.starts(indices)[:, None] + offsets].long()
        return chunks[:, :-1], chunks[:, 1:]


class TilingWindows(RandomWindows):
    """Non-overlapping windows that cover the split once, so validation loss is over (almost) every character."""

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.block_size

    def __getitem__(self, i: int):
        return super().__getitem__(i * self.block_size)

    def starts(self, indices) -> torch.Tensor:
        return super().starts(indices) * self.block_size


class RandomWindowSampler(Sampler):
    """`num_samples` window starts drawn uniformly with replacement: an "epoch" of a chosen size.

    A sampler of its own type (not RandomSampler), so that under DDP Lightning wraps it and gives each rank
    its share of the epoch instead of replacing it with a full pass over every window.
    """

    def __init__(self, dataset: Dataset, num_samples: int):
        self.dataset, self.num_samples = dataset, num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        yield from torch.randint(len(self.dataset), (self.num_samples,)).tolist()


class CharTextDataModule(pl.LightningDataModule):
    """Character-level text, split contiguously: the first 90% for training, the rest for validation.

    Args:
        path: a UTF-8 text file; default <data root>/tinyshakespeare/input.txt.
        block_size: context length in characters.
        batch_size: windows per batch.
        val_fraction: share of the file (its end) held out for validation.
        train_samples_per_epoch: random windows per training epoch; default len(train) // block_size.
        num_workers: DataLoader workers.
        seed: unused by the split (it is contiguous); kept for configs that seed every part alike.
        device_data: keep the encoded text on the training device (a GPU) and gather each batch there; needs
            num_workers 0, since DataLoader workers cannot share GPU tensors.
    """

    def __init__(
        self,
        path: str | None = None,
        block_size: int = 128,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        train_samples_per_epoch: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        device_data: bool = False,
    ):
        super().__init__()
        if device_data and num_workers:
            raise ValueError(f"device_data keeps the data on the training device, where DataLoader workers cannot "
                             f"reach it: set num_workers to 0 (got {num_workers})")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.path = Path(path) if path is not None else data_root() / DEFAULT_TEXT
        self.block_size, self.batch_size, self.val_fraction = block_size, batch_size, val_fraction
        self.train_samples_per_epoch, self.num_workers = train_samples_per_epoch, num_workers
        self.device_data = device_data
        self.vocab: CharVocab | None = None
        self._train: RandomWindows | None = None
        self._val: TilingWindows | None = None

    @property
    def vocab_size(self) -> int:
        return self.prepare_vocab().size

    def prepare_vocab(self) -> CharVocab:
        if self.vocab is None:
            self.setup()
        return self.vocab

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None:
            return
        text = read_text(self.path)
        self.vocab = CharVocab.from_text(text)
        ids = self.vocab.encode_tensor(text)
        del text
        n_val = int(len(ids) * self.val_fraction)
        train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
        for name, part in (("training", train_ids), ("validation", val_ids)):
            if len(part) <= self.block_size:
                raise ValueError(
                    f"{self.path}: the {name} split has {len(part)} characters, not more than "
                    f"block_size={self.block_size}; use a longer file or a smaller block_size"
                )
        if self.device_data and self.trainer is not None:
            train_ids, val_ids = (t.to(self.trainer.strategy.root_device) for t in (train_ids, val_ids))
        self._train, self._val = RandomWindows(train_ids, self.block_size), TilingWindows(val_ids, self.block_size)

    def val_prompt(self, max_chars: int = 32) -> str:
        """The first whole line of the validation text that holds text (at most `max_chars` characters): a prompt
        that the vocabulary always holds, for samples when a configured prompt has characters this corpus lacks. The
        split falls anywhere, so a first line cut by it (no line break just before) is skipped when another follows."""
        self.prepare_vocab()
        text = self.vocab.decode(self._val.ids[: min(64 * max_chars, len(self._val.ids))].tolist())
        if self.vocab.decode(self._train.ids[-1:].tolist()) != "\n" and "\n" in text.strip():
            text = text.partition("\n")[2]  # the split cut this line: "eans of the training..." is no prompt
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        return lines[0][:max_chars] if lines else text[:max_chars]

    def train_dataloader(self) -> DataLoader:
        # an epoch sees the corpus once in windows, and at least one batch (a few-KB corpus of one's own trains)
        n = self.train_samples_per_epoch or max(len(self._train.ids) // self.block_size, self.batch_size)
        sampler = RandomWindowSampler(self._train, n)
        return DataLoader(self._train, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=True, persistent_workers=self.num_workers > 0, collate_fn=keep_batch)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._val, batch_size=self.batch_size, sampler=SequentialSampler(self._val),
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0, collate_fn=keep_batch)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
