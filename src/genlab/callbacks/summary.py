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

    The history, the wall time so far and the latest metrics also travel in every checkpoint (callback state), so a
    resumed run appends to the history of the state it resumed from and adds up the wall time of its segments (each
    up to the checkpoint the next one resumed from), and
    resuming a run that had already finished keeps its metrics instead of writing empty ones. Checkpoints written
    before this state existed fall back to the summary.json in the run folder.

    Args:
        every_n_steps: how often step-level `train/` metrics are recorded (epoch-level ones every validation).
        filename: file name inside trainer.default_root_dir.
    """

    def __init__(self, every_n_steps: int = 50, filename: str = "summary.json"):
        self.every_n_steps, self.filename = every_n_steps, filename
        self.history: dict[str, list[list[float]]] = {}
        self.metrics: dict[str, float] = {}  # the latest finite metrics, kept across resumes
        self.wall_before = 0.0  # seconds spent in earlier segments of this run
        self._start = None
        self._restored = False
        self._last_group: dict[str, dict[str, float]] = {}  # per prefix, the values recorded last

    def _record(self, trainer: pl.Trainer, prefixes: tuple[str, ...]) -> None:
        """Append the metrics under each prefix at this step. Lightning keeps a metric in callback_metrics until it
        is logged again, so a group (all `val/`, all `quality/` values) that is exactly as last recorded is a
        stale one, e.g. the epoch's end after a mid-epoch validation, and is left out."""
        for prefix in prefixes:
            group = _scalars(trainer.callback_metrics, (prefix,))
            if not group or group == self._last_group.get(prefix):
                continue
            self._last_group[prefix] = group
            for key, value in group.items():
                points = self.history.setdefault(key, [])
                if not points or points[-1][0] != trainer.global_step:
                    points.append([trainer.global_step, value])

    def _wall(self) -> float:
        return self.wall_before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def state_dict(self) -> dict:
        return {"history": self.history, "metrics": self.metrics, "wall_s": self._wall()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = {k: [list(p) for p in v] for k, v in state_dict.get("history", {}).items()}
        self.metrics = dict(state_dict.get("metrics", {}))
        self.wall_before = float(state_dict.get("wall_s", 0.0))
        self._restored = True

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:  # after a resume has restored this callback's state
        path = Path(trainer.default_root_dir) / self.filename
        if trainer.ckpt_path and not self._restored and path.is_file():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                return
            step = trainer.global_step
            self.history = {k: [p for p in v if p[0] <= step] for k, v in old.get("history", {}).items()}
            self.metrics = dict(old.get("metrics", {}))
            self.wall_before = float(old.get("wall_s", 0.0))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, ("train/",))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, ("val/", "quality/"))
            self.metrics.update(_scalars(trainer.callback_metrics))

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # also catches metrics of runs with no validation
        self._record(trainer, ("val/", "quality/"))
        self.metrics.update(_scalars(trainer.callback_metrics))

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        self.metrics.update(_scalars(trainer.callback_metrics))
        summary = {
            "metrics": self.metrics,
            "wall_s": self._wall(),
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "interrupted": trainer.interrupted,
            "history": self.history,
        }
        self._write(Path(trainer.default_root_dir) / self.filename, summary)

    def on_test_end(self, trainer, pl_module) -> None:  # `genlab test` adds its test/ scores to the run's summary
        path = Path(trainer.default_root_dir) / self.filename
        if trainer.is_global_zero and path.is_file():  # only a finished run's (a summary marks a run as done)
            summary = json.loads(path.read_text())
            summary.setdefault("metrics", {}).update(_scalars(trainer.callback_metrics, ("test/",)))
            self._write(path, summary)

    @staticmethod
    def _write(path: Path, summary: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)  # a summary is either whole or absent: sweeps treat it as "this run finished"
