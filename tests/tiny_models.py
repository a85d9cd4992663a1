"""A tiny autoencoder for testing genlab's foundation (CLI, logging, checkpoints, seeds) in seconds, and the one
list of command-line arguments that makes a tiny fit of it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.base import GenlabModule
from genlab.reporting import log_image

# A tiny fit: 512 MNIST images in batches of 64 (STEPS_PER_EPOCH steps an epoch), one validation batch, no progress
# bar, best.ckpt kept by val/loss. Add --trainer.default_root_dir and --trainer.max_epochs.
TINY_FIT = ["--model", "tiny_models.TinyAutoencoder", "--data", "genlab.data.MNISTDataModule",
            "--data.init_args.train_limit", "512", "--data.init_args.batch_size", "64",
            "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "2", "--trainer.enable_progress_bar", "false",
            "--checkpoint.monitor", "val/loss", "--checkpoint.filename", "best"]
STEPS_PER_EPOCH = 8


@dataclass(frozen=True)
class TinyRun:
    """A finished tiny fit of one epoch, shared by the tests of one session (the `tiny_run` fixture): read it, or
    copy it before changing it."""

    root: Path  # the run folder: checkpoints/, figures/, config.yaml, summary.json
    wandb: Path  # the offline W&B run folder the fit wrote

    def copy_to(self, folder: str | Path) -> Path:
        return Path(shutil.copytree(self.root, folder))


class TinyAutoencoder(GenlabModule):
    def __init__(self, hidden: int = 16, lr: float = 1e-2, dataset: str = "mnist"):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def forward(self, x):
        return self.net(x).view_as(x)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = F.binary_cross_entropy_with_logits(self(x), x)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self.log("val/loss", F.binary_cross_entropy_with_logits(self(x), x), sync_dist=True)
        if batch_idx == 0:
            log_image(self.trainer, "reconstructions", torch.sigmoid(self(x[:8])).flatten(0, 0)[0])

    def sample(self, n: int, seed: int | None = None):
        gen = torch.Generator().manual_seed(seed or 0)
        return torch.rand(n, 1, 28, 28, generator=gen)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class SignalAtStep(pl.Callback):
    """Sends this process `signum` after training step `step`, as a scheduler or a user's Ctrl+C would."""

    def __init__(self, step: int = 3, signum: int = 15):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class PoisonAtStep(pl.Callback):
    """Puts a NaN into the first weight after training step `step`, so the next loss is NaN."""

    def __init__(self, step: int = 3):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")
