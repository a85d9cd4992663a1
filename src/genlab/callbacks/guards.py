"""Stop training at the first NaN or infinite loss, whatever the model: one check, one error."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from genlab.errors import GenlabError
from genlab.runtime import attached_trainer


class NonFiniteLossError(GenlabError, RuntimeError):
    """A training loss became NaN or inf: the run is stopped before that step changes the weights (exit status 1,
    a failed run rather than a bad input)."""

    exit_code = 1


def check_finite(loss: torch.Tensor, module: pl.LightningModule, what: str = "training loss",
                 step: int | None = None,
                 advice: str = "a lower learning rate, gradient clipping (--trainer.gradient_clip_val 1.0)") -> None:
    """Raise NonFiniteLossError if `loss` is NaN or inf; call it before backward, so that the step that would
    spread NaN through the weights never runs and the last checkpoint stays the last good state. `step` defaults
    to the trainer's global step (a GAN counts its batches instead)."""
    if torch.isfinite(loss.detach()).all():
        return
    trainer = attached_trainer(module)
    last = Path(trainer.default_root_dir if trainer else ".") / "checkpoints" / "last.ckpt"
    saved = f"the last good state is {last}" if last.is_file() else "no checkpoint was saved before it"
    raise NonFiniteLossError(
        f"{type(module).__name__}: non-finite {what} ({loss.detach().float().mean().item()}) at step "
        f"{trainer.global_step if step is None and trainer else step} (epoch {module.current_epoch}); training "
        f"stopped before that step, {saved}. Try {advice} or 32-true precision."
    )


class FiniteLossGuard(pl.Callback):
    """`check_finite` on the loss handed to backward, for every model: a NaN run would otherwise go on to the end
    and exit 0 with its NaN metrics dropped from summary.json."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        check_finite(loss, pl_module)
