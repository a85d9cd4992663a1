"""The README's commands as a person types them: in a terminal (a pseudo-terminal), on tiny settings.

CI and the rest of the suite run without a terminal, so code that runs only when stdout/stderr is a TTY (progress
bars, colours) is exercised nowhere else; a fit that crashed in every terminal once passed every other test.
Each command runs as its own `genlab` process attached to a pty; the test checks its exit status, that it did not
print a traceback, and the files it was meant to write.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from tiny_configs import MODELS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GENLAB = [sys.executable, "-m", "genlab.cli"]


def in_terminal(argv: list[str], cwd: Path, timeout: float = 240, env: dict | None = None) -> tuple[int, str]:
    """Run argv with stdin, stdout and stderr on a fresh 120x40 pseudo-terminal; (exit status, screen text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", **(env or {})}
    full_env.pop("CI", None)  # some libraries change their output under CI
    proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"{argv} did not finish in {timeout} s:\n{b''.join(chunks).decode(errors='replace')[-3000:]}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side closed (the process ended)
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                # drain what is left, then stop
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                break
    finally:
        os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def ok(argv: list[str], cwd: Path, **kwargs) -> str:
    status, screen = in_terminal(argv, cwd, **kwargs)
    assert status == 0, f"exit status {status} of {' '.join(map(str, argv))}:\n{screen[-4000:]}"
    assert "Traceback" not in screen, screen[-4000:]
    return screen


def fit(family: str, root: Path, cwd: Path) -> str:
    config, _, overrides = MODELS[family]
    return ok([*GENLAB, "fit", "-c", str(REPO / config), *overrides, "--trainer.default_root_dir", str(root)], cwd)


def test_fit_and_tools_of_every_family_in_a_terminal(tmp_path):
    screens = {family: fit(family, tmp_path / "runs" / family, tmp_path) for family in ("vae", "dcgan", "lm")}
    for family, screen in screens.items():
        assert (tmp_path / "runs" / family / "checkpoints" / "last.ckpt").is_file(), screen[-2000:]
        assert (tmp_path / "runs" / family / "summary.json").is_file()
        # the end-of-run block: where things went and what to run next
        assert "Run folder" in screen and "last.ckpt" in screen and "Next:" in screen, screen[-2000:]
        assert "wandb sync" in screen
        for noise in ("litlogger", "LeafSpec", "anonymous setting"):
            assert noise not in screen, f"{family}: third-party noise {noise!r} reached the console"
    assert "Samples at the end of training" in screens["lm"]

    vae = tmp_path / "runs" / "vae" / "checkpoints" / "last.ckpt"
    dcgan = tmp_path / "runs" / "dcgan" / "checkpoints" / "last.ckpt"
    lm = tmp_path / "runs" / "lm" / "checkpoints" / "last.ckpt"
    ok([*GENLAB, "vae-figures", "--ckpt", str(vae), "--out", "figs", "--scatter-images", "500",
        "--grid-size", "5"], tmp_path)
    assert (tmp_path / "figs" / "latent_grid.png").is_file()
    ok([*GENLAB, "sample", "--ckpt", str(dcgan), "--n", "16", "--out", "grid.png"], tmp_path)
    assert (tmp_path / "grid.png").is_file()
    screen = ok([*GENLAB, "evaluate", "--ckpt", str(dcgan), "--n", "200", "--kid-subsets", "5"], tmp_path)
    assert "fid" in screen
    screen = ok([*GENLAB, "generate", "--ckpt", str(lm), "--prompt", "ROMEO:", "--temperature", "0.5", "1.0",
                 "--max-new-tokens", "20", "--seed", "0"], tmp_path)
    assert "ROMEO:" in screen
    screen = ok([*GENLAB, "precision"], tmp_path)
    assert "float16" in screen and "rounded away" in screen


def test_sweep_of_two_tiny_runs_in_a_terminal(tmp_path):
    _, _, overrides = MODELS["vae"]
    sweep = {
        "name": "tiny_terminal", "program": "genlab", "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"model.init_args.lr": {"values": [0.01, 0.001]}},
        "command": ["${env}", "genlab", "fit", "-c", str(REPO / "configs/vae_mnist.yaml"), *overrides, "${args}"],
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    ok([*GENLAB, "sweep", "-c", "sweep.yaml", "--out", "sw"], tmp_path, timeout=400)
    summaries = sorted((tmp_path / "sw").glob("*/summary.json"))
    assert len(summaries) == 2
    ok([*GENLAB, "sweep-report", "sw"], tmp_path)
    assert (tmp_path / "sw" / "results.csv").is_file()


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_make_demo_in_a_terminal_leaves_the_repository_clean(tmp_path):
    """`make demo` writes to its run folder, never over the tracked figures in reports/."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    root = tmp_path / "demo"
    screen = ok(["make", "-C", str(REPO), "demo", "DEMO_EPOCHS=1", f"DEMO_ROOT={root}",
                 "DEMO_ARGS=--data.init_args.train_limit 512 --data.init_args.val_size 1000 "
                 "--model.init_args.val_iwae_images 0 --model.init_args.grid_size 5",
                 f"PYTHON={sys.executable}", f"BIN={Path(sys.executable).parent}"], tmp_path, timeout=400)
    assert (root / "figures" / "latent_grid.png").is_file(), screen[-2000:]
    assert (root / "figures" / "latent_explorer.html").is_file(), "make demo writes the explorer beside the pictures"
    assert str(root / "figures") in screen.replace("\r\n", "").replace("\n", "")
    after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    assert after == before, f"make demo changed the repository:\n{after}"
