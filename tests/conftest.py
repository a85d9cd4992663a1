"""Shared fixtures: the data folder, offline W&B, and a fresh working directory per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$GENLAB_DATA_DIR, else ../shared/data next to the repository (this machine's layout)."""
    root = Path(os.environ.get("GENLAB_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found under {root}: set GENLAB_DATA_DIR to the folder holding MNIST/raw/")
    return root


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch, data_root):
    """Every test runs in its own folder, with W&B offline and the data found through GENLAB_DATA_DIR."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENLAB_DATA_DIR", str(data_root))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    return tmp_path


@pytest.fixture
def repo() -> Path:
    return REPO
