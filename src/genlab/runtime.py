"""Process-wide settings and small torch helpers that every layer may use (torch only, no Lightning).

`CLASS_KEY` is the checkpoint entry naming the genlab class that wrote it, read by genlab.checkpoints and
written by genlab.models.base.GenlabModule: it lives here so that the low layer need not import the high one.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

CLASS_KEY = "genlab_class"
_flushing = False  # whether flush_denormals() has switched flush-to-zero on in this process


def flush_denormals() -> bool:
    """Treat subnormal floats (|x| < 1.2e-38) as zero on the CPU; True if the CPU supports it.

    Why: as training goes on, Adam's second-moment estimates of small gradients decay into subnormal numbers,
    which x86 CPUs handle in slow microcode, so a CPU step slows down epoch after epoch (README, "Floating
    point: why fp16 loses tiny updates"). Nothing a model learns lives below 1e-38.
    Set before torch's worker threads start (a new thread inherits the setting), so genlab calls it when a
    module is built; it is a per-process switch that stays on, and it covers all float arithmetic on the CPU,
    Python's own included (use `ieee_subnormals()` for code that needs subnormals).
    """
    global _flushing
    _flushing = torch.set_flush_denormal(True)
    return _flushing


@contextlib.contextmanager
def ieee_subnormals():
    """Full IEEE arithmetic inside the block (subnormals kept), for code that is *about* subnormals, such as
    `genlab precision`; the process's flush-to-zero setting is restored afterwards."""
    torch.set_flush_denormal(False)
    try:
        yield
    finally:
        torch.set_flush_denormal(_flushing)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """`module` in eval mode inside the block (dropout off, batch norm on running statistics), and back in
    the mode it had afterwards, even if the block raises: sampling during training must not leave it in eval."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def attached_trainer(module):
    """The Trainer a LightningModule is attached to, or None (its public `trainer` property raises when there is
    none, e.g. for a model built and called outside a fit)."""
    try:
        return module.trainer
    except RuntimeError:
        return None
