"""genlab's progress bar: Lightning's Rich bar, with an epoch count that makes sense without an epoch limit."""

from __future__ import annotations

from pytorch_lightning.callbacks import RichProgressBar


class GenlabProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, which titles the training bar "Epoch N/<max_epochs - 1>": "Epoch 70/-2" when
    max_epochs is -1 (a time or step budget). Then the title is "Epoch N". Set through public attributes (`progress`,
    `train_progress_bar_id`) after Lightning's own hooks: at each epoch's start, and at a batch's end, where Lightning
    adds the bar when a run resumes mid-epoch."""

    def _retitle(self, trainer) -> None:
        if trainer.max_epochs == -1 and self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=f"Epoch {trainer.current_epoch}")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._retitle(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._retitle(trainer)
