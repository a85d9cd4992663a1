"""Every model under Lightning's DDP in two CPU processes (gloo), against one process on the same data.

Each model is trained for a few steps by `genlab fit -c configs/<model>.yaml --trainer.strategy ddp
--trainer.devices 2` (a subprocess: DDP launches its second rank by re-running the command), shrunk through
command-line overrides only. Then the checkpoint it wrote is validated in this process, single-device, and the
validation metric logged by the two-process run must match: that holds only if the ranks' values are reduced
(`sync_dist`) rather than taken from rank 0's half of the data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from genlab.lightning_cli import GenlabCLI
from genlab.loggers import read_offline_run
from tiny_configs import MODELS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

def fit_ddp(config: str, overrides: list[str], root: Path, strategy: str = "ddp") -> dict:
    argv = [sys.executable, "-m", "genlab.cli", "fit", "-c", str(REPO / config), *overrides,
            "--trainer.strategy", strategy, "--trainer.devices", "2", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((root / "summary.json").read_text())


def validate_single(config: str, overrides: list[str], ckpt: Path) -> dict:
    cli = GenlabCLI(args=["validate", "-c", str(REPO / config), *overrides, "--trainer.devices", "1",
                          "--trainer.accelerator", "cpu", "--trainer.logger", "false",
                          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", "single",
                          "--ckpt_path", str(ckpt)])
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


@pytest.mark.usefixtures("data_root")
@pytest.mark.parametrize("name", list(MODELS))
def test_ddp_two_processes_match_one(name):
    config, metric, overrides = MODELS[name]
    root = Path("ddp").resolve()
    # "ddp" as typed: GenlabCLI maps it to ddp_find_unused_parameters_true for the DCGAN, whose D and G steps
    # each leave the other's parameters unused
    summary = fit_ddp(config, overrides, root, "ddp")
    assert summary["global_step"] > 0
    runs = list(Path("wandb").glob("offline-run-*"))
    assert len(runs) == 1, "only rank 0 may open a W&B run"
    history = read_offline_run(runs[0])
    image_rows = [row for row in history if any(k.endswith("/_type") and "image" in str(v) for k, v in row.items())]
    figure_files = list((root / "figures").rglob("epoch_*.png"))
    if image_rows or figure_files:  # each picture once per epoch: rank 1 logged nothing
        per_key: dict[str, int] = {}
        for row in image_rows:
            for key in row:
                if key.endswith("/_type"):
                    per_key[key] = per_key.get(key, 0) + 1
        assert all(count <= summary["epochs"] + 1 for count in per_key.values()), per_key
    if metric is not None:
        single = validate_single(config, overrides, root / "checkpoints" / "last.ckpt")
        assert summary["metrics"][metric] == pytest.approx(single[metric], rel=0.01), (
            "the two-process validation metric must equal the single-process one: reduce it across ranks")
    if name == "dcgan":
        ckpt = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
        d_state, g_state = (opt["state"] for opt in ckpt["optimizer_states"])
        d_steps = {int(s["step"]) for s in d_state.values()}
        g_steps = {int(s["step"]) for s in g_state.values()}
        batch_size = yaml.safe_load((REPO / config).read_text())["data"]["init_args"]["batch_size"]
        batches = 512 // 2 // batch_size  # each rank sees half of the 512 images
        assert d_steps == {batches} and g_steps == {batches}, (d_steps, g_steps)
        assert summary["metrics"]["quality/n_samples"] == 2000, "FID must use the samples of both ranks"
