"""Seconds per training step of every genlab model under each Lightning precision, on a GPU.

    python scripts/bench_precision.py [--steps 30] [--warmup 10] [--precisions 32-true 16-mixed bf16-mixed]

Each model is built from its config by genlab's LightningCLI (so the numbers are for the real configs) and
trained for warmup + steps optimizer steps; the median step time of the timed steps is reported. The last line
printed is one JSON object: {"device": ..., "cpu": ..., "cpu_flags": [...], "gpu": ..., "<config>":
{"<precision>": seconds_per_step, ...}, ...}.
Without a GPU it says so in one line and exits 0 (bf16 is emulated on most CPUs, which would measure nothing
useful), unless `--accelerator cpu` asks for the CPU: scripts/gpu_check.sh --dry-run uses that, with --tiny,
to check that the script still runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

CONFIGS = ["configs/vae_mnist.yaml", "configs/classifier_mnist.yaml", "configs/dcgan_mnist.yaml",
           "configs/lm_shakespeare_gpu.yaml"]
SMALL_MNIST = ["--data.init_args.train_limit", "512", "--data.init_args.val_size", "1000"]
# --tiny: each config shrunk by command-line overrides (as tests/tiny_configs.py does), for dry runs on a CPU
TINY = {
    "vae_mnist": [*SMALL_MNIST, "--model.init_args.hidden", "[64, 32]", "--model.init_args.val_iwae_images", "0"],
    "classifier_mnist": [*SMALL_MNIST, "--model.init_args.width", "8"],
    "dcgan_mnist": ["--data.init_args.train_limit", "512", "--model.init_args.g_width", "8",
                    "--model.init_args.d_width", "0.25", "--trainer.callbacks", "[]"],
    "lm_shakespeare_gpu": ["--data.init_args.batch_size", "8", "--data.init_args.block_size", "32",
                           "--data.init_args.num_workers", "0",
                           "--model.init_args.n_layer", "1", "--model.init_args.n_head", "2",
                           "--model.init_args.n_embd", "32", "--trainer.callbacks", "[]"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "16-mixed", "bf16-mixed"])
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--accelerator", default="gpu", help="gpu (default) or cpu (dry runs only)")
    parser.add_argument("--tiny", action="store_true", help="shrink every model (dry runs only)")
    parser.add_argument("--root", default=None, help="run folders under ROOT/<config> (default: the configs')")
    args = parser.parse_args()
    cuda = args.accelerator != "cpu"
    if cuda and not torch.cuda.is_available():
        print("bench_precision: no GPU here (torch.cuda.is_available() is False); nothing to measure.")
        return

    import pytorch_lightning as pl

    from genlab import launch
    from genlab.hardware import hardware_fields

    sync = torch.cuda.synchronize if cuda else (lambda: None)

    class StepTimer(pl.Callback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            sync()
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            sync()
            self.times.append(time.perf_counter() - self._t)

    results: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", **hardware_fields()}
    for config in args.configs:
        name = config.split("/")[-1].removesuffix(".yaml")
        results[name] = {}
        for precision in args.precisions:
            timer = StepTimer()
            root = ["--trainer.default_root_dir", f"{args.root}/{name}"] if args.root else []
            run = launch.build([config], [*(TINY.get(name, []) if args.tiny else []), *root,
                                          "--trainer.precision", precision, "--trainer.accelerator", args.accelerator,
                                          "--trainer.devices", "1", "--trainer.logger", "false",
                                          "--trainer.enable_progress_bar", "false",
                                          "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "-1",
                                          "--trainer.max_time", "null",
                                          "--trainer.max_steps", str(args.steps + args.warmup)], callbacks=[timer])
            run.fit()
            timed = timer.times[args.warmup:]
            results[name][precision] = round(statistics.median(timed), 5) if timed else None
            print(f"{name:28s} {precision:10s} {results[name][precision]} s/step", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
