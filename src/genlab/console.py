"""What genlab says on the console around a Lightning run: the known third-party noise filtered out, one line for
a config mistake (with the closest valid key), and the end-of-run report of what a fit made and what to run next."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from pytorch_lightning import Trainer

from genlab.loggers import WandbLogger

# Third-party lines that say nothing to a genlab user (genlab's own warnings are never filtered)
NOISE_WARNINGS = (
    r".*LeafSpec.*",  # a deprecation inside Lightning's own pytree helper
    r".*val_dataloader.* but have no .validation_step.*",  # the DCGAN scores samples instead of a val loop
    r"Precision .* is not supported by the model summary.*",
    r".*does not have many workers.*",  # in-memory data sets: workers would only add start-up time
    r"There is a wandb run already in progress.*",  # genlab opens the run itself (genlab.loggers)
    r"The `srun` command is available on your system but is not used.*",
)
NOISE_LOG_LINES = ("💡 Tip:", "litlogger")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in NOISE_LOG_LINES)


def quiet_third_party() -> None:
    """Filter the known third-party noise lines (as pytest's config does) from the console."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(_DropNoise())
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def short_warning(message, category, filename, lineno, file=None, line=None):
    """genlab's own warnings as one readable line; others in Python's usual format."""
    if "genlab" in str(filename) and issubclass(category, UserWarning):
        return f"genlab warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


_default_formatwarning = warnings.formatwarning


def explain_parse_error(message: str, parser) -> str:
    """One line for a config or command-line mistake, with the closest valid key when there is one."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    tip = "(`genlab fit -c CONFIG --print_config` lists every key and its value)"
    unknown = re.search(r"Option '([^']+)' is not accepted", message) or re.search(r'No action for key "([^"]+)"', message)
    owner = re.search(r"class_path '([^']+)'", message)
    if unknown:
        key = unknown.group(1)
        candidates = _class_parameters(owner.group(1)) if owner else []
        guess = difflib.get_close_matches(key.split(".")[-1], candidates, n=1)
        where = f" of {owner.group(1)}" if owner else ""
        hint = f" (did you mean {guess[0]}?)" if guess else (f" (valid: {', '.join(candidates)})" if candidates else "")
        return f"unknown key {key!r}{where}{hint} {tip}"
    unrecognized = re.search(r"Unrecognized arguments: (.+)", message, re.IGNORECASE)
    not_accepted = re.search(r"does not accept option '([^']+)'", message)
    if unrecognized or not_accepted:
        words = unrecognized.group(1).split() if unrecognized else [f"--{not_accepted.group(1)}"]
        options = sorted({o for p in _all_parsers(parser) for a in p._actions for o in a.option_strings})
        flags = [w.split("=")[0] for w in words if w.startswith("-")] or words[:1]
        guess = difflib.get_close_matches(flags[0], options, n=1, cutoff=0.75)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        return f"unknown option {flags[0]}{hint} {tip}"
    # the innermost explanation is the most specific one
    detail = next((line for line in reversed(lines) if not line.startswith(("Given value", "- Expected a"))), message)
    first = lines[0] if lines else message
    return first if detail == first else f"{first} {detail}"


def explain_instantiation_error(err: BaseException) -> str:
    """The constructor's own message of a class the config names, without jsonargparse's wrapping around it
    (which lists every Union subtype tried and the whole namespace given)."""
    lines = str(err).splitlines()
    items = [i for i, line in enumerate(lines)
             if line.strip().startswith("- ") and not line.strip().startswith("- Expected a")]
    if items:  # the last listed error, with the lines indented under it (its detail)
        first = lines[items[-1]]
        depth = len(first) - len(first.lstrip())
        detail = [first.strip()[2:]]
        for line in lines[items[-1] + 1:]:
            if not line.strip() or len(line) - len(line.lstrip()) <= depth or line.strip().startswith("Given value"):
                break
            detail.append(line.strip())
        return " ".join(" ".join(detail).split())
    inner = err
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__
    return " ".join(str(inner).split()) or type(inner).__name__


def class_of(class_path: str):
    """The class a config's class_path names, from modules already imported (by the parser), or None."""
    module, _, name = str(class_path).rpartition(".")
    return getattr(sys.modules.get(module), name, None)


def _class_parameters(class_path: str) -> list[str]:
    cls = class_of(class_path)
    if cls is None:
        return []
    names = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        names += [p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")]
        if klass.__module__.startswith(("pytorch_lightning", "lightning")):
            break
    return list(dict.fromkeys(names))


def _all_parsers(parser) -> list:
    """The parser and its subcommand parsers (argparse's documented `choices` of a subparsers action)."""
    import argparse

    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_parsers(sub)
    return found


def _shown(path: str | Path) -> str:
    """A path as a person would type it from here: relative when it is below the working directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def end_of_run_report(trainer: Trainer, model) -> str:
    """What a fit made and what to run next: run folder, checkpoints, headline metrics, W&B, next commands."""
    root = Path(_shown(trainer.default_root_dir))
    checkpoint = trainer.checkpoint_callback
    folder = Path(_shown(checkpoint.dirpath)) if checkpoint is not None and checkpoint.dirpath else root / "checkpoints"
    last = folder / "last.ckpt"
    best = Path(_shown(checkpoint.best_model_path)) if checkpoint is not None and checkpoint.best_model_path else None
    status = "stopped early (interrupted)" if trainer.interrupted else "finished"
    lines = ["", f"Run {status}: {trainer.current_epoch} epochs, {trainer.global_step} steps",
             f"  Run folder   {root}/  (config.yaml, summary.json, figures/)"]
    if best is not None and best.name != last.name and getattr(checkpoint, "monitor", None):
        score = checkpoint.best_model_score
        shown = f"  ({checkpoint.monitor} {float(score):.4g})" if score is not None else ""
        lines.append(f"  Best         {best}{shown}")
    if last.is_file():
        lines.append(f"  Last         {last}  (resume: --ckpt_path last)")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith(("val/", "quality/", "test/")) and getattr(v, "numel", lambda: 1)() == 1}
    headline = [k for k in ("val/loss", "val/bpc", "val/acc", "quality/fid", "quality/fid_floor",
                            "quality/classes_covered", "quality/confident_fraction") if k in metrics]
    if headline:
        lines.append("  Metrics      " + "   ".join(f"{k} {metrics[k]:.4g}" for k in headline))
    for logger in trainer.loggers:
        run_dir = getattr(logger, "run_dir", None)
        if isinstance(logger, WandbLogger) and run_dir:
            shown = _shown(run_dir)
            lines.append(f"  W&B          {shown}" + (f"   upload: wandb sync {shown}" if "offline" in shown else ""))
    for callback in trainer.callbacks:
        rows = getattr(callback, "last_rows", None)
        if rows:
            lines.append("")
            lines.append("Samples at the end of training:")
            for temperature, text in rows:
                lines.append(f"  --- temperature {temperature} ---")
                lines += ["  " + line for line in str(text).splitlines()[:12]]
    ckpt = last if last.is_file() else best
    if ckpt is not None:
        lines.append("")
        lines.append("Next:")
        lines += [f"  {command}" for command in next_commands(type(model).__name__, ckpt)]
    return "\n".join(lines)


def next_commands(model_class: str, ckpt: Path) -> list[str]:
    """The tools that read this kind of checkpoint."""
    if model_class == "VAE":
        return [f"genlab vae-figures --ckpt {ckpt} --out {ckpt.parent.parent / 'figures'}",
                f"genlab sample --ckpt {ckpt} --n 64 --out samples.png",
                f"genlab evaluate --ckpt {ckpt}"]
    if model_class == "DCGAN":
        return [f"genlab sample --ckpt {ckpt} --n 64 --out samples.png", f"genlab evaluate --ckpt {ckpt}"]
    if model_class == "LanguageModel":
        return [f'genlab generate --ckpt {ckpt} --prompt "ROMEO:" --temperature 0.5 1.0 1.5']
    if model_class == "Classifier":
        return [f"python scripts/export_classifier.py --ckpt {ckpt} --dataset <mnist|fashion_mnist>"]
    return [f"genlab test -c {ckpt.parent.parent / 'config.yaml'} --ckpt_path {ckpt}"]
