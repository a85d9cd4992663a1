"""Stop training at the first NaN or infinite loss, whatever the model."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or inf: the run is stopped before that step changes the weights."""


class FiniteLossGuard(pl.Callback):
    """Raises NonFiniteLossError when the loss handed to backward is NaN or inf.

    Checked before backward, so the step that would spread NaN through the weights never runs and the last
    checkpoint stays the last good state; a NaN run would otherwise go on to the end and exit 0 with its NaN
    metrics dropped from summary.json.
    """

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if torch.isfinite(loss.detach()).all():
            return
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        saved = f"the last good state is {last}" if last.is_file() else "no checkpoint was saved before it"
        raise NonFiniteLossError(
            f"{type(pl_module).__name__}: training loss is {loss.detach().float().mean().item()} at step "
            f"{trainer.global_step} (epoch {trainer.current_epoch}); training stopped before that step, {saved}. "
            "Try a lower learning rate, gradient clipping (--trainer.gradient_clip_val 1.0) or 32-true precision."
        )
