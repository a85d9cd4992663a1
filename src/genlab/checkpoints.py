"""Checkpoint files: read safely (whole archive, tensors and plain values only, genlab's own classes), and written
atomically (the old file or the new one, never half of either).

Reading serves genlab's tools (`sample`, `evaluate`, `generate`, `vae-figures`) and the resume of a fit; writing is
AtomicCheckpointIO, the CheckpointIO plugin genlab's Trainer saves through. Lightning's own save writes through
fsspec, which stages the file in $TMPDIR and moves it; when the run folder is on another filesystem that move is a
copy over the target, so a kill during the copy leaves a truncated last.ckpt (the only resume point). Here the
temporary file is written in the target's own folder, flushed and fsynced, then renamed onto the target with
os.replace, which is atomic on one filesystem.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genlab.errors import GenlabError
from genlab.runtime import CLASS_KEY

# Classes that moved: the name an older checkpoint holds -> where the class lives now.
MOVED_CLASSES = {
    "genlab.metrics.classifier.Classifier": "genlab.models.classifier.Classifier",
}


class CheckpointError(GenlabError, ValueError):
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
    if path.is_dir():
        inside = path / "checkpoints" / "last.ckpt" if (path / "checkpoints" / "last.ckpt").is_file() else path / "last.ckpt"
        hint = f": give a checkpoint file in it, e.g. {inside}" if inside.is_file() else (
            ": give a checkpoint file (.ckpt), e.g. <run folder>/checkpoints/last.ckpt")
        raise CheckpointError(f"{path} is a folder, not a checkpoint{hint}")
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


def check_resumable(path: str | Path) -> dict:
    """The checkpoint a fit or test resumes from, read as `read_checkpoint` does, and refused in one line when its
    hyper-parameters name a model class whose module is neither genlab's nor already imported: LightningCLI parses
    them over the config next (their `_class_path` entry chooses the class built), and would import that module."""
    ckpt = read_checkpoint(path)
    class_path = dict(ckpt.get("hyper_parameters") or {}).get("_class_path")
    if class_path and not _importable(str(class_path)):
        raise CheckpointError(f"{path} names the model class {class_path!r}, outside genlab: refusing to import it "
                              "(a checkpoint's hyper-parameters choose the class that is built); resume from a "
                              "checkpoint genlab wrote")
    return ckpt


def _importable(class_path: str) -> bool:
    """Whether naming `class_path` runs no new code: a genlab class, or one whose module is already imported."""
    module = class_path.rpartition(".")[0]
    return module.startswith("genlab.") or module in sys.modules


def _import_class(name: str) -> type:
    """The class a checkpoint names: genlab's own, or one whose module is already imported (no new code runs)."""
    from pytorch_lightning import LightningModule

    name = MOVED_CLASSES.get(name, name)
    module, _, attr = name.rpartition(".")
    if not _importable(name):
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


TEMP_SUFFIX = ".genlab-tmp"  # temp files are ".<target name>.<random>.genlab-tmp": hidden, and not *.ckpt


def _is_local(path) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def temp_files(folder: str | Path) -> list[Path]:
    """Temporary files that interrupted saves left in `folder` (only this module's own pattern)."""
    folder = Path(folder)
    return sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the leftovers of interrupted saves; call it only when no save into `folder` is under way."""
    removed = []
    for path in temp_files(folder):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file beside `path`, fsync, os.replace: a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (a power cut right after must not bring back the old name)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(dir_fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with atomic local saves, and loads that check the file and name the last good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))

    def load_checkpoint(self, path, map_location: Callable | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        check_integrity(path)
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except pickle.UnpicklingError as err:
            raise CheckpointError(unsafe_message(path, err)) from None
