"""The data modules: splits, binarization, text windows, and the errors a user meets first."""

from __future__ import annotations

import pytest
import torch

from genlab.data import (
    CharTextDataModule,
    CharVocab,
    DataNotFoundError,
    FashionMNISTDataModule,
    MNISTDataModule,
)


@pytest.mark.usefixtures("data_root")
def test_mnist_splits_are_fixed_and_sized():
    a, b = MNISTDataModule(val_size=5000, seed=0), MNISTDataModule(val_size=5000, seed=0)
    a.setup("fit")
    b.setup("fit")
    assert len(a.split("train")) == 55000 and len(a.split("val")) == 5000 and len(a.split("test")) == 10000
    assert torch.equal(a.split("val").x, b.split("val").x)  # same seed, same validation images
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    other = MNISTDataModule(val_size=5000, seed=1)
    assert not torch.equal(other.split("val").x, a.split("val").x)


@pytest.mark.usefixtures("data_root")
def test_binarized_pixels_are_dynamic_for_training_and_fixed_for_evaluation():
    dm = MNISTDataModule(pixels="binarized", train_limit=256)
    dm.setup("fit")
    train = dm.split("train")
    first, second = train[list(range(64))][0], train[list(range(64))][0]
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, second)  # a fresh draw each time
    again = MNISTDataModule(pixels="binarized", train_limit=256)
    assert torch.equal(again.split("test").x, dm.split("test").x)  # the test set is binarized once, the same way
    assert set(dm.split("test").x.unique().tolist()) == {0.0, 1.0}


@pytest.mark.usefixtures("data_root")
def test_fashion_mnist_loads():
    dm = FashionMNISTDataModule(val_size=1000)
    assert len(dm.split("train")) == 59000 and dm.dataset_name == "fashion_mnist"


def test_missing_images_give_one_clear_error(tmp_path, monkeypatch):
    import torchvision

    def no_network(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -3]>")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    with pytest.raises(DataNotFoundError) as err:
        MNISTDataModule(root=str(tmp_path / "nowhere")).setup("fit")
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and "nowhere" in message and "GENLAB_DATA_DIR" in message


@pytest.mark.usefixtures("data_root")
def test_bad_data_arguments_are_named():
    with pytest.raises(ValueError, match="pixels"):
        MNISTDataModule(pixels="grey")
    with pytest.raises(ValueError, match="val_size"):
        MNISTDataModule(val_size=60000).setup("fit")


def test_char_text_windows_split_and_vocab(tmp_path):
    text = "".join(chr(ord("a") + i % 7) for i in range(1000))
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    dm = CharTextDataModule(path=str(path), block_size=16, batch_size=4, val_fraction=0.1)
    dm.setup("fit")
    assert dm.vocab.chars == "abcdefg" and dm.vocab_size == 7
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])  # targets are inputs shifted by one
    val = list(dm.val_dataloader())
    covered = sum(len(b[0]) for b in val) * 16
    assert covered == (100 - 1) // 16 * 16  # non-overlapping windows over the last 10% of the file
    assert dm.vocab.decode(val[0][0][0].tolist()) == text[900:916]  # validation is the end of the file


def test_vocab_lists_unknown_characters():
    vocab = CharVocab.from_text("hello world")
    assert vocab.decode(vocab.encode("low")) == "low"
    with pytest.raises(ValueError, match=r"'Z', 'q'"):
        vocab.encode("qZ")


def test_text_file_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="not found"):
        CharTextDataModule(path=str(tmp_path / "missing.txt")).setup()
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        CharTextDataModule(path=str(empty)).setup()
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="not UTF-8"):
        CharTextDataModule(path=str(latin)).setup()


@pytest.mark.usefixtures("data_root")
def test_default_text_is_tiny_shakespeare():
    dm = CharTextDataModule(block_size=64)
    dm.setup()
    assert dm.vocab_size == 65


def test_text_batches_gathered_at_once_equal_the_windows_one_by_one(tmp_path):
    """A batch is one gather of its windows (`__getitems__`), identical to slicing each window: training and
    validation windows alike."""
    path = tmp_path / "t.txt"
    path.write_text("".join(chr(97 + i % 26) for i in range(2000)))
    dm = CharTextDataModule(path=str(path), block_size=16, batch_size=4, val_fraction=0.1)
    dm.setup()
    for windows in (dm._train, dm._val):
        picks = [0, 3, len(windows) - 1]
        x, y = windows.__getitems__(picks)
        assert torch.equal(x, torch.stack([windows[i][0] for i in picks]))
        assert torch.equal(y, torch.stack([windows[i][1] for i in picks]))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("make", [lambda: MNISTDataModule(device_data=True, num_workers=2),
                                  lambda: CharTextDataModule(path="unused.txt", device_data=True, num_workers=2)])
def test_device_data_refuses_dataloader_workers(make):
    with pytest.raises(ValueError, match="set num_workers to 0"):
        make()


def test_device_data_trains_on_the_trainers_device(tmp_path):
    """On the CPU device_data changes nothing but where setup() puts the tensors: the Trainer's device."""
    import pytorch_lightning as pl

    from genlab.models.vae import VAE

    dm = MNISTDataModule(batch_size=32, val_size=100, train_limit=128, device_data=True)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, limit_val_batches=1, default_root_dir=str(tmp_path))
    trainer.fit(VAE(hidden=[16], figures_every_n_epochs=0, val_iwae_images=0), datamodule=dm)
    assert trainer.global_step == 2 and dm.split("train").x.device == trainer.strategy.root_device


def test_a_corpus_of_a_few_kilobytes_gives_every_epoch_at_least_one_batch(tmp_path):
    """One's own short text (3,000 characters, context 256, batch 16: ten windows) trains instead of making epochs
    of zero batches that Lightning skips quietly."""
    path = tmp_path / "my.txt"
    path.write_text(("To be, or not to be, that is the question. " * 70)[:3000])
    dm = CharTextDataModule(path=str(path), block_size=256, batch_size=16, val_fraction=0.1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) >= 1
    x, y = next(iter(loader))
    assert x.shape == (16, 256) and torch.equal(x[:, 1:], y[:, :-1])
