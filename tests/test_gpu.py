"""The GPU path: every model's real config (shrunk) under 16-mixed and bf16-mixed, DDP on one GPU, `precision: auto`
on CUDA, and `genlab generate` on CUDA with the KV cache giving the same text as recomputing the context.

Marked `gpu`; every test skips, with its reason, where CUDA is absent (scripts/gpu_check.sh runs them on a GPU).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.cli import main
from genlab.lightning_cli import GenlabCLI
from tiny_configs import MODELS

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available())")]


def fit_on_gpu(name: str, *extra: str) -> GenlabCLI:
    config, _, overrides = MODELS[name]
    return GenlabCLI(args=["fit", "-c", str(REPO / config), *overrides, "--trainer.accelerator", "gpu",
                           "--trainer.devices", "1", "--trainer.max_steps", "6", "--trainer.limit_val_batches", "1",
                           "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                           "--trainer.default_root_dir", "run", *extra])


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_on_the_gpu(name, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16")
    cli = fit_on_gpu(name, "--trainer.precision", precision)
    assert cli.trainer.precision == precision and cli.trainer.global_step > 0
    assert cli.trainer.strategy.root_device.type == "cuda"
    losses = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    saved = torch.load("run/checkpoints/last.ckpt", weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in saved["state_dict"].values())


def test_auto_precision_on_cuda_follows_bf16_support():
    cli = fit_on_gpu("vae", "--trainer.precision", "auto")
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"
    assert cli.trainer.precision == expected


def test_ddp_on_one_gpu():
    config, _, overrides = MODELS["vae"]
    argv = [sys.executable, "-m", "genlab.cli", "fit", "-c", str(REPO / config), *overrides,
            "--trainer.strategy", "ddp", "--trainer.devices", "1", "--trainer.accelerator", "gpu",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(Path("ddp").resolve())]
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(Path("ddp/summary.json").read_text())
    assert summary["global_step"] > 0 and math.isfinite(summary["metrics"]["val/loss"])


def test_generate_on_cuda_with_and_without_the_kv_cache(capsys):
    fit_on_gpu("lm", "--trainer.precision", "32-true")
    ckpt = "run/checkpoints/last.ckpt"
    texts = []
    for cache in ([], ["--no-cache"]):
        capsys.readouterr()
        assert main(["generate", "--ckpt", ckpt, "--device", "cuda", "--prompt", "ROMEO:", "--temperature", "0",
                     "1.0", "--seed", "0", "--max-new-tokens", "80", *cache]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].count("ROMEO:") == 2


@pytest.mark.parametrize("name", ["vae", "lm"])
def test_device_data_gathers_batches_on_the_gpu(name):
    class BatchDevice(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.device = batch[0].device

    seen = BatchDevice()
    cli = GenlabCLI(args=["-c", str(REPO / MODELS[name][0]), *MODELS[name][2], "--data.init_args.device_data", "true",
                          "--data.init_args.num_workers", "0", "--trainer.accelerator", "gpu", "--trainer.devices", "1",
                          "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
                          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", "run"], run=False)
    cli.trainer.callbacks.append(seen)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step > 0 and seen.device.type == "cuda"
