"""Checkpoint files that are either the old version or the new one, never half of either, on any filesystem.

Lightning's own save writes through fsspec, which stages the file in $TMPDIR and moves it; when the run folder is
on another filesystem that move is a copy over the target, so a kill during the copy leaves a truncated last.ckpt
(the only resume point) and a checkpoint-sized file in $TMPDIR. Here the temporary file is written in the target's
own folder, flushed and fsynced, then renamed onto the target with os.replace, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

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
        from genlab.checkpoints import CheckpointError, check_integrity, unsafe_message

        check_integrity(path)
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except pickle.UnpicklingError as err:
            raise CheckpointError(unsafe_message(path, err)) from None
