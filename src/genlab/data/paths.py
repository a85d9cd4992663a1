"""Where genlab looks for data sets: one rule for every data module and script."""

from __future__ import annotations

import os
from pathlib import Path

from genlab.errors import GenlabError

ENV_VAR = "GENLAB_DATA_DIR"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The `root` argument, else $GENLAB_DATA_DIR, else ./data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("data")


class DataError(GenlabError, ValueError):
    """A data file that is there but cannot be used (not UTF-8, empty, unreadable, truncated); says the fix."""


class DataNotFoundError(GenlabError, FileNotFoundError):
    """Raised once, with the files expected and how to provide them, instead of a stack of urllib errors."""
