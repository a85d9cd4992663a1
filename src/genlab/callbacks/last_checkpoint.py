"""ModelCheckpoint whose last.ckpt is always the newest state of training, written through public APIs only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genlab.checkpoints import remove_temp_files


class LatestLastCheckpoint(ModelCheckpoint):
    """Like ModelCheckpoint, but `save_last` writes last.ckpt at every save point, not only at new bests.

    Lightning 2.6 refreshes last.ckpt only when a top-k file is written in the same step. With a monitored metric
    that stops improving (a GAN's FID, an overfitting validation loss), last.ckpt silently stays at the best epoch:
    resuming from it would throw away the later epochs, and "the end of training" would be an older model. So
    ModelCheckpoint itself keeps only the best files here, and this class writes last.ckpt with
    `trainer.save_checkpoint` after every validation and epoch, at the end of training, and when SIGTERM or Ctrl+C
    stops it (so an interrupted run resumes where it stopped). A crash (e.g. a NaN loss) does not write it: the
    state at a crash may be the broken one.

    At the start of fitting it also deletes the temporary files that saves killed midway left in its folder.

    Args:
        save_last: write last.ckpt as described above (any true value; "link" is treated as true).
        *args, **kwargs: ModelCheckpoint's own arguments (monitor, mode, filename, save_top_k, ...).
    """

    resume_command: str | None = None  # the command that resumes this run, set by genlab's CLI

    def __init__(self, *args, save_last: bool | Literal["link"] | None = None, **kwargs):
        super().__init__(*args, save_last=False, **kwargs)
        self.keep_last = bool(save_last)
        self._saved_step: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.is_global_zero and self.dirpath is not None:
            remove_temp_files(self.dirpath)

    @property
    def last_path(self) -> Path:
        return Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def _write_last(self, trainer: pl.Trainer) -> None:
        if (not self.keep_last or trainer.sanity_checking or trainer.fast_dev_run
                or trainer.state.fn != "fit" or self._saved_step == trainer.global_step):
            return
        trainer.save_checkpoint(self.last_path, weights_only=self.save_weights_only)
        self._saved_step = trainer.global_step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._saved_step = trainer.global_step  # nothing new to save until a step is taken (e.g. a finished run)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._write_last(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            self._write_last(trainer)
            if trainer.is_global_zero and self.last_path.is_file():
                how = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl+C"
                resume = self.resume_command or "genlab fit -c <your config> --ckpt_path last"
                print(f"genlab fit: stopped by {how} at step {trainer.global_step}; saved {self.last_path}; "
                      f"resume with: {resume}", file=sys.stderr, flush=True)
