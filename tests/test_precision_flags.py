"""Lightning's precision flag on every model's real config (tiny sizes, CPU): training runs, stays finite, saves."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genlab.lightning_cli import GenlabCLI
from tiny_configs import MODELS

REPO = Path(__file__).resolve().parents[1]


# 16-mixed needs a GPU: on a CPU Lightning substitutes bf16-mixed (scripts/bench_precision.py covers GPUs)
@pytest.mark.usefixtures("data_root")
@pytest.mark.parametrize("precision", ["bf16-mixed"])
@pytest.mark.parametrize("name", list(MODELS))
def test_precision_flag_trains_every_model(name, precision):
    config, _, overrides = MODELS[name]
    args = ["fit", "-c", str(REPO / config), *overrides, "--trainer.precision", precision,
            "--trainer.max_steps", "4", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", "run"]
    cli = GenlabCLI(args=args)
    assert cli.trainer.global_step > 0
    saved = torch.load("run/checkpoints/last.ckpt", weights_only=True)
    losses = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert all(torch.isfinite(v.float()).all() for v in saved["state_dict"].values())
    assert cli.trainer.precision == precision and saved["global_step"] == cli.trainer.global_step
