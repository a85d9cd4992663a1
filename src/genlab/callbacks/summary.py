"""A run's final figures and a compact history in <run folder>/summary.json, whatever the logger, and the same
summary for a person at the end of a fit: what the run made and what to run next.

Sweeps read these files to build their tables and plots, and a finished summary marks a run as done, so an
interrupted sweep resumes without repeating it.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from genlab.errors import ConfigError

HEADLINE = ("val/loss", "val/bpc", "val/acc", "quality/fid", "quality/fid_floor", "quality/classes_covered",
            "quality/confident_fraction")
NEXT = {  # the tools that read each kind of checkpoint ({run}: its run folder); any other model: `genlab test`
    "VAE": ("vae-figures --ckpt {ckpt} --out {run}/figures", "sample --ckpt {ckpt} --n 64 --out samples.png",
            "evaluate --ckpt {ckpt}"),
    "DCGAN": ("sample --ckpt {ckpt} --n 64 --out samples.png", "evaluate --ckpt {ckpt}"),
    "LanguageModel": ("generate --ckpt {ckpt} --prompt {prompt} --temperature 0.5 1.0 1.5",),
    "Classifier": ("export-classifier --ckpt {ckpt} --dataset <mnist|fashion_mnist>",),
}


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


def nothing_left(trainer: pl.Trainer) -> str | None:
    """The limit (`max_steps=N`, `max_epochs=N`) that a resumed run has already reached, else None."""
    steps, epochs, per_epoch = trainer.max_steps, trainer.max_epochs, trainer.num_training_batches
    if steps not in (None, -1) and trainer.global_step >= steps:
        return f"max_steps={steps}"
    if epochs not in (None, -1) and (trainer.current_epoch >= epochs or (
            isinstance(per_epoch, int) and per_epoch > 0 and trainer.global_step >= epochs * per_epoch)):
        return f"max_epochs={epochs}"
    return None


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
        self._stepped = False  # a batch trained in this process (a resumed finished run trains none)
        self._filters: list | None = None  # the warning filters to restore at teardown

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
        if trainer.ckpt_path and nothing_left(trainer):  # Lightning would warn that no metric came: none could
            self._filters = warnings.filters[:]  # for this fit only (teardown): elsewhere the warning is news
            warnings.filterwarnings("ignore", message=r".*could not find the monitored key.*")
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

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._filters is not None:
            warnings.filters[:], self._filters = self._filters, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stepped = True
        if trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, ("train/",))

    def on_validation_end(self, trainer, pl_module) -> None:  # after the module's on_validation_epoch_end logged too
        if not trainer.sanity_checking:
            self._record(trainer, ("val/", "quality/"))
            self.metrics.update(_scalars(trainer.callback_metrics))

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # also catches metrics of runs with no validation
        self._record(trainer, ("val/", "quality/"))
        self.metrics.update(_scalars(trainer.callback_metrics))

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.num_training_batches == 0 and trainer.global_step == 0:  # Lightning returns quietly: refused
            loader = trainer.train_dataloader  # an epoch draws the sampler's count (windows of a text), else the data
            sampler = getattr(loader, "sampler", None)
            size = len(sampler if hasattr(sampler, "__len__") else getattr(loader, "dataset", ())) if loader is not None else 0
            batch = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
            raise ConfigError(f"no training batch: {size} training examples in batches of "
                              f"{batch} (incomplete batches dropped) make 0 steps; give "
                              "a smaller --data.init_args.batch_size" + (f" (at most {size})" if size else ""))
        if not trainer.is_global_zero:
            return
        if trainer.ckpt_path and not self._stepped and (limit := nothing_left(trainer)):
            sys.stderr.write(f"genlab fit: this run had already reached its {limit} (step {trainer.global_step}): "
                             f"nothing trained. To train longer, raise --trainer.{limit.partition('=')[0]} and resume "
                             "with --ckpt_path last\n")
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

    def report(self, trainer, pl_module) -> str:
        """The summary for a person, which `genlab fit` prints once Lightning's progress bar has stopped: run folder,
        checkpoints, headline metrics, W&B folder, the samples of text callbacks, next commands."""
        ckpt, root = trainer.checkpoint_callback, Path(_shown(trainer.default_root_dir))
        last = Path(_shown(ckpt.dirpath if ckpt and ckpt.dirpath else root / "checkpoints")) / "last.ckpt"
        best = Path(_shown(ckpt.best_model_path)) if ckpt and ckpt.best_model_path else None
        lines = ["", f"Run {'stopped early (interrupted)' if trainer.interrupted else 'finished'}: "
                     f"{epochs_done(trainer)} epochs, {trainer.global_step} steps",
                 f"  Run folder   {root}/  (config.yaml, summary.json, figures/)"]
        if best and best.is_file() and best.name != last.name and getattr(ckpt, "monitor", None):
            score = "" if ckpt.best_model_score is None else f"  ({ckpt.monitor} {float(ckpt.best_model_score):.4g})"
            lines.append(f"  Best         {best}{score}")
        if last.is_file():
            lines.append(f"  Last         {last}  (resume: --ckpt_path last)")
        if headline := [f"{key} {self.metrics[key]:.4g}" for key in HEADLINE if key in self.metrics]:
            lines.append("  Metrics      " + "   ".join(headline))
        for run_dir in (getattr(logger, "run_dir", None) for logger in trainer.loggers):
            if isinstance(run_dir, (str, os.PathLike)):  # Lightning's DummyLogger (fast_dev_run) answers any name
                shown = _shown(run_dir)
                lines.append(f"  W&B          {shown}" + (f"   upload: wandb sync {shown}" if "offline" in shown else ""))
        for rows in filter(None, (getattr(callback, "last_rows", None) for callback in trainer.callbacks)):
            lines += ["", "Samples at the end of training:"]
            for temperature, text in rows:
                lines += [f"  --- temperature {temperature} ---", *("  " + line for line in str(text).splitlines()[:12])]
        if (found := last if last.is_file() else best) is not None:
            prompt = trainer.datamodule.val_prompt() if hasattr(trainer.datamodule, "val_prompt") else "ROMEO:"
            lines += ["", "Next:", *(f"  {line}" for line in next_commands(type(pl_module).__name__, found, prompt))]
        return "\n".join(lines)


def _shown(path: str | Path) -> str:
    """A path as a person would type it from here: relative when it is below the working directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def epochs_done(trainer: pl.Trainer) -> str:
    """Epochs trained, counted in batches, so an epoch cut short (a time budget, max_steps) is a fraction: "0.5"."""
    batches, per_epoch = trainer.fit_loop.epoch_loop.batch_progress.total.completed, trainer.num_training_batches
    if not 0 < per_epoch < math.inf:
        return str(trainer.current_epoch)
    return f"{batches / per_epoch:.2f}".rstrip("0").rstrip(".")


def next_commands(model_class: str, ckpt: Path, prompt: str = "ROMEO:") -> list[str]:
    """The commands that read a checkpoint of this model class."""
    templates = NEXT.get(model_class, ("test -c {run}/config.yaml --ckpt_path {ckpt}",))
    return [f"genlab {t.format(ckpt=ckpt, run=ckpt.parent.parent, prompt=shlex.quote(prompt))}" for t in templates]
