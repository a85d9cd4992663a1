"""ModelCheckpoint whose last.ckpt is always the newest state of training."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class LatestLastCheckpoint(ModelCheckpoint):
    """Like ModelCheckpoint, but `save_last` writes last.ckpt at every save point, not only at new bests.

    Lightning 2.6 refreshes last.ckpt only when a top-k file is written in the same step. With a monitored metric
    that stops improving (a GAN's FID, an overfitting validation loss), last.ckpt silently stays at the best epoch:
    resuming from it would throw away the later epochs, and "the end of training" would be an older model.
    """

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        # _should_skip_saving_checkpoint is also true when this step was already saved (then last.ckpt is current)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)
