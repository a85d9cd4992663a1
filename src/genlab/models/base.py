"""What every genlab LightningModule shares: a checkpoint that names its own class.

`genlab.checkpoints.load_module` reads that name, so commands such as `genlab sample --ckpt X` need no
`--model` argument and can refuse a checkpoint of the wrong kind with a clear message.
"""

from __future__ import annotations

import pytorch_lightning as pl

from genlab.runtime import CLASS_KEY, eval_mode, flush_denormals, ieee_subnormals

__all__ = ["CLASS_KEY", "GenlabModule", "check_learning_rates", "eval_mode", "flush_denormals", "ieee_subnormals"]


def check_learning_rates(allow_zero: bool = False, **rates: float) -> None:
    """A learning rate <= 0 (or NaN) would train nothing or climb the loss: refuse it when the model is built.
    `allow_zero` for a model of several networks, where a rate of 0 freezes one of them on purpose."""
    for name, value in rates.items():
        if not (float(value) >= 0 if allow_zero else float(value) > 0):
            raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value} (e.g. {name} 1e-3)")


class GenlabModule(pl.LightningModule):
    """A LightningModule whose checkpoints say which genlab class wrote them (and that flushes subnormal
    floats to zero on the CPU: see genlab.runtime.flush_denormals)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        flush_denormals()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
        # Lightning may store hparams as its AttributeDict; a plain dict keeps weights_only loading possible.
        if "hyper_parameters" in checkpoint:
            checkpoint["hyper_parameters"] = dict(checkpoint["hyper_parameters"])
