"""MNIST and Fashion-MNIST as tensor-backed LightningDataModules.

The whole data set (60,000 28x28 images, 47 MB as uint8) fits in memory, so each batch is gathered by indexing
one tensor with the batch's indices instead of decoding and collating PIL images one by one: the data path then
costs almost nothing next to the model, which keeps Lightning's overhead against a plain loop small.
"""

from __future__ import annotations

import math
from typing import Literal

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from genlab.data.paths import ENV_VAR, DataError, DataNotFoundError, data_root
from genlab.data.registry import DATASETS

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TORCHVISION_CLASSES = {name: info.torchvision_class for name, info in DATASETS.items()}


def open_torchvision(dataset: str, split: str, root=None):
    """torchvision's dataset object (layout `<root>/<MNIST|FashionMNIST>/raw/`), downloading missing files;
    a failed download becomes one error that says what to do."""
    import torchvision

    if dataset not in TORCHVISION_CLASSES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(TORCHVISION_CLASSES)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: choose 'train' or 'test'")
    root = data_root(root)
    cls = getattr(torchvision.datasets, TORCHVISION_CLASSES[dataset])
    try:
        return cls(root=str(root), train=split == "train", download=True)
    except Exception as err:  # torchvision raises RuntimeError or URLError stacks; say once what is missing
        folder = root / TORCHVISION_CLASSES[dataset] / "raw"
        check_idx_files(folder)  # files that are there but cut short are not "missing"
        raise DataNotFoundError(
            f"{TORCHVISION_CLASSES[dataset]} not found and could not be downloaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}).\n"
            f"  looked for: {', '.join(RAW_FILES)}\n  in: {folder.resolve()}\n"
            f"  fix: put the uncompressed IDX files there, or point genlab at a folder that has them with "
            f"`--data.init_args.root DIR` or the {ENV_VAR} environment variable."
        ) from None


def check_idx_files(folder) -> None:
    """Raise DataError naming the first IDX file in `folder` whose size disagrees with its own header."""
    import struct

    for name in RAW_FILES:
        path = folder / name
        if not path.is_file():
            continue
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 else 0
            dims = f.read(4 * ndim)
        expected = None
        if len(head) == 4 and head[:2] == b"\0\0" and head[2] == 0x08 and len(dims) == 4 * ndim:
            expected = 4 + 4 * ndim + math.prod(struct.unpack(f">{ndim}I", dims))
        if expected != size:
            shown = f"{size} of {expected} bytes" if expected else "not an IDX file of unsigned bytes"
            raise DataError(f"{path} is truncated or corrupt ({shown}): delete it and re-download it (genlab "
                            f"downloads missing files), or copy it again from a good source")


def load_images(dataset: str, split: str, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of one split as (x float32 [N,1,28,28] in [0,1], y int64 [N])."""
    ds = open_torchvision(dataset, split, root)
    x = ds.data.unsqueeze(1).float().div_(255.0)
    y = ds.targets.long()
    return x, y


class IndexedImages(Dataset):
    """Images and labels that a DataLoader fetches a whole batch at a time (`__getitems__`), by tensor indexing."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, binarize: bool = False):
        self.x, self.y, self.binarize = x, y, binarize

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        x = self.x[index]
        if self.binarize:  # dynamic binarization: a fresh Bernoulli draw every time an image is seen
            x = torch.bernoulli(x)
        return x, self.y[index]

    def __getitems__(self, indices: list[int]):
        return self[torch.as_tensor(indices)]


def keep_batch(batch):
    """The collate function for IndexedImages: `__getitems__` already returns a stacked batch."""
    return batch


class TensorBatchSampler(BatchSampler):
    """Batches of indices as slices of one permutation tensor, instead of lists built one index at a time.

    Under a distributed sampler (which Lightning puts in for DDP) it falls back to BatchSampler's lists.
    """

    def __iter__(self):
        n, size = len(self.sampler), self.batch_size
        if type(self.sampler) is RandomSampler and not self.sampler.replacement:
            generator = self.sampler.generator
            if generator is None:  # as RandomSampler does: a seed from torch's global generator (seed_everything)
                generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(n, generator=generator)
        elif type(self.sampler) is SequentialSampler:
            order = torch.arange(n)
        else:
            yield from super().__iter__()
            return
        stop = n - n % size if self.drop_last else n
        for start in range(0, stop, size):
            yield order[start : start + size]


def batched_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int) -> DataLoader:
    """An ordinary DataLoader (so Lightning can shard it across processes) that gathers each batch in one go."""
    sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_sampler=TensorBatchSampler(sampler, batch_size, drop_last), collate_fn=keep_batch,
                      num_workers=num_workers, persistent_workers=num_workers > 0)


class MNISTDataModule(pl.LightningDataModule):
    """MNIST digits in [0,1]; a fixed-seed validation split from the training set; the official test set.

    Args:
        root: data folder (torchvision layout); default $GENLAB_DATA_DIR, else ./data.
        batch_size: images per training batch.
        val_size: training images held out for validation (fixed seed).
        num_workers: DataLoader workers; 0 is fastest here because batches are tensor slices.
        seed: seed of the validation split and of the fixed test-set binarization.
        pixels: "continuous" intensities as Bernoulli targets, or "binarized" (dynamic for training,
            fixed for validation and test), the convention of likelihood papers.
        train_limit: keep only the first N training images (quick experiments and tests).
        device_data: keep every split on the training device (a GPU) and gather batches there, so that no batch
            crosses from host memory during training (MNIST's training images are 188 MB as float32); needs num_workers 0, since
            DataLoader workers cannot share GPU tensors. Without a Trainer (figures, scripts) the data stays put.
    """

    dataset_name = "mnist"

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 128,
        val_size: int = 5000,
        num_workers: int = 0,
        seed: int = 0,
        pixels: Literal["continuous", "binarized"] = "continuous",
        train_limit: int | None = None,
        eval_batch_size: int = 1000,
        device_data: bool = False,
    ):
        super().__init__()
        if device_data and num_workers:
            raise ValueError(f"device_data keeps the data on the training device, where DataLoader workers cannot "
                             f"reach it: set num_workers to 0 (got {num_workers})")
        if pixels not in ("continuous", "binarized"):
            raise ValueError(f"pixels must be 'continuous' or 'binarized', got {pixels!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.save_hyperparameters()
        self.root, self.batch_size, self.val_size = root, batch_size, val_size
        self.num_workers, self.seed, self.pixels = num_workers, seed, pixels
        self.train_limit, self.eval_batch_size, self.device_data = train_limit, eval_batch_size, device_data
        self._splits: dict[str, IndexedImages] = {}

    def prepare_data(self) -> None:
        for split in ("train", "test"):  # downloads once, on one process, before setup() runs on every rank
            open_torchvision(self.dataset_name, split, self.root)

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        x, y = load_images(self.dataset_name, "train", self.root)
        if self.val_size >= len(x):
            raise ValueError(f"val_size={self.val_size} leaves no training images (the set has {len(x)})")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        if self.train_limit is not None:
            train_idx = train_idx[: self.train_limit]
        x_test, y_test = load_images(self.dataset_name, "test", self.root)
        binarized = self.pixels == "binarized"
        gen = torch.Generator().manual_seed(self.seed + 1)
        fixed = (lambda t: torch.bernoulli(t, generator=gen)) if binarized else (lambda t: t)
        self._splits = {
            "train": IndexedImages(x[train_idx], y[train_idx], binarize=binarized),
            "val": IndexedImages(fixed(x[val_idx]), y[val_idx]),
            "test": IndexedImages(fixed(x_test), y_test),
        }
        if self.device_data and self.trainer is not None:
            device = self.trainer.strategy.root_device
            for part in self._splits.values():
                part.x, part.y = part.x.to(device), part.y.to(device)

    def train_dataloader(self) -> DataLoader:
        return batched_loader(self._splits["train"], self.batch_size, True, True, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return batched_loader(self._splits["val"], self.eval_batch_size, False, False, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return batched_loader(self._splits["test"], self.eval_batch_size, False, False, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def split(self, name: str) -> IndexedImages:
        """The tensors of one split ("train", "val", "test"), for figures and benchmarks."""
        self.setup()
        return self._splits[name]


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Zalando's 10 clothing classes), same interface as MNISTDataModule."""

    dataset_name = "fashion_mnist"
