"""Safe checkpoint loading for genlab's commands (`sample`, `evaluate`, `generate`, `vae-figures`)."""

from __future__ import annotations

import importlib
import pickle
import sys
import zipfile
from pathlib import Path

import torch

from genlab.runtime import CLASS_KEY

# Classes that moved: the name an older checkpoint holds -> where the class lives now.
MOVED_CLASSES = {
    "genlab.metrics.classifier.Classifier": "genlab.models.classifier.Classifier",
}


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, not genlab's, or of the wrong model kind."""


def last_good_checkpoint(folder: Path, exclude: Path | None = None) -> Path | None:
    """The newest .ckpt in `folder` (other than `exclude`) whose zip records all pass their CRC check."""
    candidates = [p for p in folder.glob("*.ckpt") if exclude is None or p.resolve() != exclude.resolve()]
    for candidate in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            with zipfile.ZipFile(candidate) as archive:
                if archive.testzip() is None:
                    return candidate
        except (OSError, zipfile.BadZipFile):
            continue
    return None


def _broken(path: Path, problem: str) -> CheckpointError:
    good = last_good_checkpoint(path.parent, exclude=path) if path.parent.is_dir() else None
    hint = f"; the last good checkpoint in that folder is {good}" if good else "; no intact checkpoint is in that folder"
    return CheckpointError(f"{path} is not a readable PyTorch checkpoint ({problem}){hint}")


def check_integrity(path: str | Path) -> Path:
    """Fail with one line unless `path` is a whole torch.save archive (every record's CRC checked, no unpickling).

    A checkpoint cut short or damaged on disk must not silently yield corrupted weights; the error names the
    newest intact checkpoint beside it, which is what the user wants to resume or sample from instead.
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            found = sorted(p.name for p in path.parent.glob("*.ckpt"))
            hint = f" ({path.parent} holds: {', '.join(found)})" if found else f" ({path.parent} holds no .ckpt files)"
        raise CheckpointError(
            f"checkpoint not found: {path}{hint}\n  fix: train one with `genlab fit -c configs/<name>.yaml`; "
            "checkpoints are written to <trainer.default_root_dir>/checkpoints/ (best and last.ckpt)"
        )
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since PyTorch 1.6
        raise _broken(path, "not a torch.save archive, or cut short")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise _broken(path, f"damaged archive: {err}") from None
    if bad is not None:
        raise _broken(path, f"bad CRC in its record {bad}")
    return path


def unsafe_message(path, err: BaseException) -> str:
    return (f"{path} holds objects other than tensors and plain values, so it cannot be loaded safely "
            f"(weights_only=True): {str(err).splitlines()[0]}")


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, loaded with weights_only=True (tensors and plain values only, no code)."""
    path = check_integrity(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(unsafe_message(path, err)) from None
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def _import_class(name: str) -> type:
    """The class a checkpoint names: genlab's own, or one whose module is already imported (no new code runs)."""
    from pytorch_lightning import LightningModule  # here, so that reading a checkpoint does not pay for it

    name = MOVED_CLASSES.get(name, name)
    module, _, attr = name.rpartition(".")
    if not (module.startswith("genlab.") or module in sys.modules):
        raise CheckpointError(f"refusing to import {name!r}: genlab only loads its own model classes")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint's model class {name} does not exist in this genlab ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, LightningModule)):
        raise CheckpointError(f"{name} is not a genlab model class")
    return cls


def load_module(path: str | Path, expected: type | tuple[type, ...] | None = None):
    """Rebuild the module a genlab checkpoint was written by, on CPU, in eval mode.

    `expected` limits the classes accepted, so that e.g. `genlab generate` on a VAE checkpoint says what it got.
    """
    ckpt = read_checkpoint(path)
    name = ckpt.get(CLASS_KEY)
    if name is None:
        raise CheckpointError(f"{path} was not written by a genlab model (no {CLASS_KEY!r} entry)")
    cls = _import_class(name)
    if expected is not None:
        wanted = expected if isinstance(expected, tuple) else (expected,)
        if not issubclass(cls, wanted):
            names = " or ".join(w.__name__ for w in wanted)
            raise CheckpointError(f"{path} holds a {cls.__name__} checkpoint; this command needs a {names} checkpoint")
    hparams = {k: v for k, v in dict(ckpt.get("hyper_parameters", {})).items() if not k.startswith("_")}
    try:
        model = cls(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path} does not match this genlab's {cls.__name__} ({err})") from None
    return model.eval()
