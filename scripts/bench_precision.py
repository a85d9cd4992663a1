"""Seconds per training step of every genlab model under each Lightning precision, on a GPU.

    python scripts/bench_precision.py [--steps 30] [--warmup 10] [--precisions 32-true 16-mixed bf16-mixed]

Each model is built from its config by genlab's LightningCLI (so the numbers are for the real configs) and
trained for warmup + steps optimizer steps; the median step time of the timed steps is reported. The last line
printed is one JSON object: {"device": ..., "<config>": {"<precision>": seconds_per_step, ...}, ...}.
Without a GPU it says so in one line and exits 0 (bf16 is emulated on most CPUs, which would measure nothing
useful).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

CONFIGS = ["configs/vae_mnist.yaml", "configs/classifier_mnist.yaml", "configs/dcgan_mnist.yaml",
           "configs/lm_shakespeare_gpu.yaml"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "16-mixed", "bf16-mixed"])
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_precision: no GPU here (torch.cuda.is_available() is False); nothing to measure.")
        return

    import pytorch_lightning as pl

    from genlab.lightning_cli import GenlabCLI

    class StepTimer(pl.Callback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            torch.cuda.synchronize()
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t)

    results: dict = {"device": torch.cuda.get_device_name(0)}
    for config in args.configs:
        name = config.split("/")[-1].removesuffix(".yaml")
        results[name] = {}
        for precision in args.precisions:
            timer = StepTimer()
            cli = GenlabCLI(args=["-c", config, "--trainer.precision", precision, "--trainer.accelerator", "gpu",
                                  "--trainer.devices", "1", "--trainer.logger", "false",
                                  "--trainer.enable_progress_bar", "false",
                                  "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "-1",
                                  "--trainer.max_time", "null",
                                  "--trainer.max_steps", str(args.steps + args.warmup)], run=False)
            cli.trainer.callbacks.append(timer)
            cli.trainer.fit(cli.model, cli.datamodule)
            timed = timer.times[args.warmup:]
            results[name][precision] = round(statistics.median(timed), 5) if timed else None
            print(f"{name:28s} {precision:10s} {results[name][precision]} s/step", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
