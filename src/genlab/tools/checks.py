"""Checks of a tool's arguments made before any work: an output that cannot be written, or a device that does
not exist, is said in one line before minutes of sampling or scoring are spent and lost. And `says_input_errors`,
which hands a tool's errors to genlab.errors, the one place that turns them into that line."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from genlab.errors import GenlabError, say


class ToolArgumentError(GenlabError, ValueError):
    """An argument a tool cannot use; its message names the argument and the way out."""


def says_input_errors(command: str) -> Callable:
    """Decorates a tool's `main(argv)`: a genlab error raised in it (a ToolArgumentError, a checkpoint genlab
    cannot use, a missing or damaged data set) becomes one line, `genlab <command>: error: <message>`, and its exit
    status (2); anything else is a bug and keeps its traceback."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except Exception as err:
                if (status := say(command, err)) is None:
                    raise
                return status

        return run

    return decorate


@contextmanager
def argument(flag: str | None = None) -> Iterator[None]:
    """A ValueError raised inside is about the user's input (`flag`, when given): say it as one."""
    try:
        yield
    except ToolArgumentError:
        raise
    except ValueError as err:
        raise ToolArgumentError(f"{flag}: {err}" if flag else str(err)) from None


def output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A file the tool will write: its folder is created when missing; a folder or an unwritable place is refused."""
    path = Path(path)
    if path.is_dir():
        raise ToolArgumentError(f"{flag} {path} is a folder; give a file name, e.g. {flag} {path / 'out'}"
                                f"{path.suffix or _suffix(flag)}")
    _writable_folder(path.parent if str(path.parent) else Path("."), flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ToolArgumentError(f"{flag} {path} exists and is not writable; choose another file")
    return path


def output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A folder the tool will write files into: created when missing; a file or an unwritable place is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ToolArgumentError(f"{flag} {path} is a file, not a folder; give a folder, e.g. {flag} {path}_files")
    _writable_folder(path, flag, path)
    return path


def _suffix(flag: str) -> str:
    return ".png" if flag == "--out" else ""


def _writable_folder(folder: Path, flag: str, shown: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ToolArgumentError(f"{flag} {shown}: a part of {folder} is a file, not a folder") from None
    except OSError as err:
        raise ToolArgumentError(f"{flag} {shown}: cannot create folder {folder} ({err.strerror}); "
                                f"choose a writable place") from None
    try:  # a file really written, not os.access: root passes that check for read-only and virtual filesystems
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ToolArgumentError(f"{flag} {shown}: folder {folder} is not writable ({err.strerror}); "
                                f"choose a writable place") from None


def torch_device(name: str, flag: str = "--device") -> str:
    """`name` as a device this machine has ("auto": a GPU when there is one, else the CPU)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ToolArgumentError(f"{flag} {name!r} is not a device: use cpu, cuda, cuda:1, mps or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ToolArgumentError(f"{flag} {name}: this machine has no CUDA GPU (or no driver); use {flag} cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ToolArgumentError(f"{flag} {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                                    f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ToolArgumentError(f"{flag} {name}: MPS is not available on this machine; use {flag} cpu")
    return name
