"""genlab's progress bar: Lightning's Rich bar, with an epoch count that makes sense without an epoch limit."""

from __future__ import annotations

from pytorch_lightning.callbacks import RichProgressBar


class GenlabProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, which titles the training bar "Epoch N/<max_epochs - 1>": "Epoch 70/-2" when
    max_epochs is -1 (a time or step budget). Then the title is "Epoch N", set in `refresh`, which every render of
    the bar goes through (so no frame shows the old title), through the public `progress` and `train_progress_bar_id`."""

    def refresh(self, hard: bool = False) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None and self.trainer.max_epochs == -1:
            self.progress.update(self.train_progress_bar_id, description=f"Epoch {self.trainer.current_epoch}")
        super().refresh(hard)
