"""Shared fixtures: a fresh working directory and offline W&B for every test; the data folder for those that
read a data set (request `data_root`), so the tests of pure maths run without any data set; one finished tiny run
for the tests that read one (request `tiny_run`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning: on a machine whose 2 cores are shared, a spinning second thread
# made tiny torch calls 50 times slower (read by OpenMP when torch loads, hence before any test imports it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def default_data_root() -> Path:
    """$GENLAB_DATA_DIR, else ../shared/data next to the repository (this machine's layout)."""
    return Path(os.environ.get("GENLAB_DATA_DIR") or REPO.parent / "shared" / "data").resolve()


def pytest_addoption(parser):
    parser.addoption("--fault-matrix", action="store_true",
                     help="also run tests/test_fault_matrix.py: kills, signals and bad inputs on the real genlab "
                          "command (2 to 6 minutes on 2 cores)")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data folder, checked: a test that reads MNIST, Fashion-MNIST or Tiny Shakespeare requests this."""
    root = default_data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found under {root}: set GENLAB_DATA_DIR to the folder holding MNIST/raw/")
    return root


def isolate(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Work in `folder`, with W&B offline and GENLAB_DATA_DIR pointing at the data folder."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("GENLAB_DATA_DIR", str(default_data_root()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    """Every test runs in its own folder, with W&B offline and GENLAB_DATA_DIR pointing at the data folder
    (not checked here: only the tests that request `data_root` need the data to be there)."""
    isolate(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_root):
    """One tiny fit of one epoch (tiny_models.TINY_FIT, seed 0), made once for the tests that read a finished run
    (a test that changes it works on `tiny_run.copy_to(folder)`)."""
    from genlab.cli import main
    from tiny_models import TINY_FIT, TinyRun

    folder = tmp_path_factory.mktemp("tiny_run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, folder)
        assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.max_epochs", "1"]) == 0
    (wandb,) = folder.glob("wandb/offline-run-*")
    return TinyRun(root=folder / "run", wandb=wandb)


@pytest.fixture
def repo() -> Path:
    return REPO
