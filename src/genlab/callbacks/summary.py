"""A run's final figures and a compact history in <run folder>/summary.json, whatever the logger.

Sweeps read these files to build their tables and plots, and a finished summary marks a run as done, so an
interrupted sweep resumes without repeating it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch


def _scalars(metrics: dict, prefixes: tuple[str, ...] | None = None) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if prefixes is not None and not key.startswith(prefixes):
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


class RunSummary(pl.Callback):
    """Writes summary.json at the end of fitting: final metrics, wall time, steps, and metric histories.

    Args:
        every_n_steps: how often step-level `train/` metrics are recorded (epoch-level ones every validation).
        filename: file name inside trainer.default_root_dir.
    """

    def __init__(self, every_n_steps: int = 50, filename: str = "summary.json"):
        self.every_n_steps, self.filename = every_n_steps, filename
        self.history: dict[str, list[list[float]]] = {}
        self._start = None

    def _record(self, trainer: pl.Trainer, prefixes: tuple[str, ...] | None) -> None:
        for key, value in _scalars(trainer.callback_metrics, prefixes).items():
            points = self.history.setdefault(key, [])
            if not points or points[-1][0] != trainer.global_step:
                points.append([trainer.global_step, value])

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, ("train/",))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, ("val/", "quality/"))

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # also catches metrics of runs with no validation
        self._record(trainer, ("val/", "quality/"))

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        summary = {
            "metrics": _scalars(trainer.callback_metrics),
            "wall_s": time.perf_counter() - (self._start or time.perf_counter()),
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "interrupted": trainer.interrupted,
            "history": self.history,
        }
        path = Path(trainer.default_root_dir) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)  # a summary is either whole or absent: sweeps treat it as "this run finished"
