"""What genlab says on the console around a Lightning run: the known third-party noise filtered out, genlab's own
warnings as one line, and the end-of-run report of what a fit made and what to run next."""

from __future__ import annotations

import logging
import os
import shlex
import warnings
from pathlib import Path

# Third-party lines that say nothing to a genlab user (genlab's own warnings are never filtered)
NOISE_WARNINGS = (
    r".*LeafSpec.*",  # a deprecation inside Lightning's own pytree helper
    r".*val_dataloader.* but have no .validation_step.*",  # the DCGAN scores samples instead of a val loop
    r"Precision .* is not supported by the model summary.*",
    r".*does not have many workers.*",  # in-memory data sets: workers would only add start-up time
    r"There is a wandb run already in progress.*",  # genlab opens the run itself (genlab.loggers)
    r"The `srun` command is available on your system but is not used.*",
    r"LightningCLI's args parameter.*",  # `genlab` hands LightningCLI the arguments it read from sys.argv
)
NOISE_LOG_LINES = ("💡 Tip:", "litlogger")
_python_formatwarning = warnings.formatwarning


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(marker in record.getMessage() for marker in NOISE_LOG_LINES)


def quiet_third_party() -> None:
    """Filter the known third-party noise (as pytest's config does) and say genlab's own warnings in one line."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logger = logging.getLogger(name)
        for filterer in (logger, *logger.handlers):
            if _not_noise not in filterer.filters:
                filterer.addFilter(_not_noise)
    warnings.formatwarning = short_warning


def short_warning(message, category, filename, lineno, line=None) -> str:
    """genlab's own warnings as one readable line; others in Python's usual format."""
    if "genlab" in str(filename) and issubclass(category, UserWarning):
        return f"genlab warning: {message}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


def _shown(path: str | Path) -> str:
    """A path as a person would type it from here: relative when it is below the working directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def end_of_run_report(trainer, model) -> str:
    """What a fit made and what to run next: run folder, checkpoints, headline metrics, W&B, next commands."""
    root, checkpoint = Path(_shown(trainer.default_root_dir)), trainer.checkpoint_callback
    folder = Path(_shown(checkpoint.dirpath)) if checkpoint is not None and checkpoint.dirpath else root / "checkpoints"
    last = folder / "last.ckpt"
    best = Path(_shown(checkpoint.best_model_path)) if checkpoint is not None and checkpoint.best_model_path else None
    status = "stopped early (interrupted)" if trainer.interrupted else "finished"
    lines = ["", f"Run {status}: {epochs_done(trainer)} epochs, {trainer.global_step} steps",
             f"  Run folder   {root}/  (config.yaml, summary.json, figures/)"]
    if best is not None and best.is_file() and best.name != last.name and getattr(checkpoint, "monitor", None):
        score = checkpoint.best_model_score
        lines.append(f"  Best         {best}" + (f"  ({checkpoint.monitor} {float(score):.4g})" if score is not None else ""))
    if last.is_file():
        lines.append(f"  Last         {last}  (resume: --ckpt_path last)")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith(("val/", "quality/", "test/")) and getattr(v, "numel", lambda: 1)() == 1}
    headline = [k for k in HEADLINE if k in metrics]
    if not headline:  # nothing validated in this process (a finished run resumed): the run's summary.json
        metrics, headline = summary_metrics(Path(trainer.default_root_dir) / "summary.json", headline)
    if headline:
        lines.append("  Metrics      " + "   ".join(f"{k} {metrics[k]:.4g}" for k in headline))
    # genlab's W&B logger names its run folder; Lightning's DummyLogger (fast_dev_run) answers any attribute
    run_dirs = (getattr(logger, "run_dir", None) for logger in trainer.loggers)
    for run_dir in (d for d in run_dirs if isinstance(d, (str, os.PathLike))):
        shown = _shown(run_dir)
        lines.append(f"  W&B          {shown}" + (f"   upload: wandb sync {shown}" if "offline" in shown else ""))
    for rows in filter(None, (getattr(callback, "last_rows", None) for callback in trainer.callbacks)):
        lines += ["", "Samples at the end of training:"]
        for temperature, text in rows:
            lines += [f"  --- temperature {temperature} ---", *("  " + line for line in str(text).splitlines()[:12])]
    ckpt = last if last.is_file() else best
    if ckpt is not None:
        prompt = trainer.datamodule.val_prompt() if hasattr(trainer.datamodule, "val_prompt") else "ROMEO:"
        lines += ["", "Next:", *(f"  {command}" for command in next_commands(type(model).__name__, ckpt, prompt))]
    return "\n".join(lines)


HEADLINE = ("val/loss", "val/bpc", "val/acc", "quality/fid", "quality/fid_floor", "quality/classes_covered",
            "quality/confident_fraction")


def summary_metrics(path: Path, headline: list[str]) -> tuple[dict, list[str]]:
    """The headline metrics a run's summary.json holds (its latest values), for a report of a process that did not
    validate."""
    import json

    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, headline
    found = {**found, **(found.get("metrics") or {})} if isinstance(found, dict) else {}
    metrics = {k: float(v) for k, v in found.items() if k in HEADLINE and isinstance(v, int | float)}
    return metrics, [k for k in HEADLINE if k in metrics]


def epochs_done(trainer) -> str:
    """Epochs trained, as a fraction when the last one was cut short (a time budget, Ctrl+C): "0.4", "2"."""
    epochs, per_epoch = trainer.current_epoch, trainer.num_training_batches
    in_epoch = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    if isinstance(per_epoch, int) and 0 < in_epoch < per_epoch:  # Lightning counts a cut-short epoch as done
        done = epochs - 1 if trainer.fit_loop.epoch_progress.current.completed == epochs and epochs else epochs
        return f"{done + in_epoch / per_epoch:.2f}".rstrip("0").rstrip(".")
    return str(epochs)


def next_commands(model_class: str, ckpt: Path, prompt: str = "ROMEO:") -> list[str]:
    """The tools that read this kind of checkpoint."""
    if model_class == "VAE":
        return [f"genlab vae-figures --ckpt {ckpt} --out {ckpt.parent.parent / 'figures'}",
                f"genlab sample --ckpt {ckpt} --n 64 --out samples.png",
                f"genlab evaluate --ckpt {ckpt}"]
    if model_class == "DCGAN":
        return [f"genlab sample --ckpt {ckpt} --n 64 --out samples.png", f"genlab evaluate --ckpt {ckpt}"]
    if model_class == "LanguageModel":
        return [f'genlab generate --ckpt {ckpt} --prompt {shlex.quote(prompt)} --temperature 0.5 1.0 1.5']
    if model_class == "Classifier":
        return [f"genlab export-classifier --ckpt {ckpt} --dataset <mnist|fashion_mnist>"]
    return [f"genlab test -c {ckpt.parent.parent / 'config.yaml'} --ckpt_path {ckpt}"]
