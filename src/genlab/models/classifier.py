"""The judge's training: a LightningModule that fits genlab.nets.classifier.ClassifierNet on MNIST or
Fashion-MNIST, whose exported weights genlab.metrics uses for FID, KID and class coverage.

Train with `genlab fit -c configs/classifier_mnist.yaml` (add `-c configs/classifier_fashion_mnist.yaml` for Fashion-MNIST), then ship the
weights with `genlab export-classifier --ckpt runs/classifier_mnist/checkpoints/best.ckpt --dataset mnist`
(genlab.tools.export_classifier).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info

from genlab.metrics.classifier import DATASETS
from genlab.models.base import GenlabModule, check_learning_rates
from genlab.nets.classifier import ClassifierNet
from genlab.optim import one_cycle, planned_steps, restore_schedule_step, weight_decay_groups


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by its own integer offset in [-max_shift, max_shift]^2 (zero fill), on tensors.

    Two gathers for the whole batch: no per-image Python loop, no PIL.
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, b), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None].expand(b, c, h, w + 2 * s)
    x = padded.gather(2, rows)  # [b, c, h, w + 2s]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :].expand(b, c, h, w)
    return x.gather(3, cols)


class Classifier(GenlabModule):
    """LightningModule that trains ClassifierNet with light augmentation and a one-cycle learning rate.

    Augmentation on tensors inside training_step (random shifts of up to `max_shift` pixels, optional
    horizontal flips for Fashion-MNIST) keeps the data path a plain tensor slice.

    Args:
        dataset: "mnist" or "fashion_mnist" (recorded in the exported weights).
        width: channels of the first conv block (doubled per block).
        feature_dim: size of the penultimate layer (the FID feature size).
        dropout: dropout before the feature layer and before the classifier.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        pct_start: fraction of the steps spent warming up.
        max_shift: largest random translation in pixels (0 disables).
        hflip: random horizontal flips (sensible for clothes, not for digits).
    """

    def __init__(
        self,
        dataset: str = "mnist",
        width: int = 32,
        feature_dim: int = 128,
        dropout: float = 0.3,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        pct_start: float = 0.25,
        max_shift: int = 2,
        hflip: bool = False,
    ):
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        check_learning_rates(lr=lr)
        self.save_hyperparameters()
        self.net = ClassifierNet(width=width, feature_dim=feature_dim, dropout=dropout)
        self._epoch_t0, self._epoch_images = None, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        x = random_shift(x, self.hparams.max_shift)
        if self.hparams.hflip:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def on_train_epoch_start(self) -> None:
        self._epoch_t0, self._epoch_images = time.perf_counter(), 0

    def on_train_epoch_end(self) -> None:
        # wall time per epoch in the logs: the training budget is checked from these
        if self._epoch_t0 is None:  # an epoch that Lightning ends after restoring it, never started here: untimed
            return
        seconds = time.perf_counter() - self._epoch_t0
        self.log("train/epoch_seconds", seconds)
        self.log("train/images_per_second", self._epoch_images / max(seconds, 1e-9))
        val = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        rank_zero_info(
            f"epoch {self.current_epoch}: {seconds:.1f} s (train + val), "
            f"{self._epoch_images / max(seconds, 1e-9):.0f} img/s, "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        self._epoch_images += len(x)
        logits = self(self.augment(x))
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def _eval_step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), sync_dist=True, prog_bar=stage == "val")
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), sync_dist=True, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(weight_decay_groups(self.parameters(), hp.weight_decay), lr=hp.lr)  # BN, biases: none
        # torch's OneCycleLR with beta1 cycling, planned for this run's length (a resumed, longer run re-plans)
        schedule = one_cycle(opt, planned_steps(self.trainer), hp.pct_start)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_schedule_step(checkpoint)

    def arch_args(self) -> dict:
        return {k: self.hparams[k] for k in ("width", "feature_dim", "dropout")}
