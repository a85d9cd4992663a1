"""Data modules: MNIST and Fashion-MNIST images, character-level text."""

from genlab.data.images import FashionMNISTDataModule, MNISTDataModule, load_images
from genlab.data.paths import DataNotFoundError, data_root
from genlab.data.registry import class_index, class_names
from genlab.data.seq2seq import Seq2SeqDataModule as Seq2SeqDataModule
from genlab.data.text import CharTextDataModule, CharVocab

__all__ = [
    "CharTextDataModule",
    "CharVocab",
    "DataNotFoundError",
    "FashionMNISTDataModule",
    "MNISTDataModule",
    "class_index",
    "class_names",
    "data_root",
    "load_images",
]
