"""Train the character LM for a wall-clock budget, then measure it: loss, throughput, MFU, generation speed.

    python scripts/bench_lm.py [--minutes 15] [--config configs/lm_shakespeare.yaml] [--threads 2]
        [--accelerator auto] [--precision auto] [--max-steps N]

Steps: (1) measure this machine's matmul peak (GFLOP/s) in the training precision, (2) train as `genlab fit -c
CONFIG` does (genlab.launch) with Lightning's `max_time` = the budget (no validation inside the budget; the learning rate follows the clock down to its floor
at the end), (3) validation loss over the WHOLE validation split, (4) generation speed with and without the KV
cache at a 256-token context (a 128-character prompt continued by 128 characters, so the context grows to
256; greedy, both paths must give the same text), (5) samples at temperatures 0.5, 1.0, 1.5.
The LAST line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

# Threads that wait for each other at the end of every parallel region sleep instead of spinning. On a machine
# shared with other jobs, spinning threads burn the time slices their stalled partner needs: measured here with
# one other busy process, 2 threads ran 1,270 tok/s spinning vs 8,020 tok/s passive (1 thread: 5,360).
# Must be set before torch (and its OpenMP runtime) loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matmul_peak_gflops(dtype: torch.dtype, n: int | None = None, seconds: float = 3.0, device: str = "cpu") -> float:
    """Best of a few timed square matmuls of size n: what this CPU (or GPU) sustains on large, efficient matmuls.
    A GPU needs larger matrices (n 8192) to reach its peak than a CPU (1024)."""
    n = n or (8192 if device == "cuda" else 1024)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def generation_speed(lm, prompt: str, new_tokens: int, use_cache: bool, threads: int) -> tuple[float, str]:
    """Greedy tokens per second, on `threads` CPU threads, after a warm-up."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        lm.generate_text(prompt[:8], 8, temperature=0, use_cache=use_cache)  # warm-up
        t = time.perf_counter()
        text = lm.generate_text(prompt, new_tokens, temperature=0, use_cache=use_cache)
        return new_tokens / (time.perf_counter() - t), text
    finally:
        torch.set_num_threads(before)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="training budget in wall-clock minutes (default 15)")
    p.add_argument("--config", default=str(REPO / "configs" / "lm_shakespeare.yaml"))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto (default), cpu, gpu")
    p.add_argument("--precision", default=None,
                   help="Lightning precision (default: the config's; auto = genlab's rule for this machine)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps (default: the config's max_steps, else none); "
                        "--minutes still caps the time")
    p.add_argument("--root", default="runs/bench_lm", help="run folder: the genlab run (checkpoints/, summary.json) plus bench.ckpt, bench.json")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override model init_args (tuning probes), e.g. n_embd=256 learning_rate=2e-3; "
                        "data.batch_size=64 for the data module")
    args = p.parse_args(argv)
    if args.minutes <= 0:
        p.error("--minutes must be > 0")
    torch.set_num_threads(args.threads)
    from genlab.runtime import flush_denormals

    flush_denormals()  # as genlab's CLI does, before torch's worker threads start (they inherit it)
    shared = REPO.parent / "shared" / "data"  # this machine's layout, as in tests/conftest.py
    if not os.environ.get("GENLAB_DATA_DIR") and not Path("data/tinyshakespeare/input.txt").is_file() and shared.is_dir():
        os.environ["GENLAB_DATA_DIR"] = str(shared)

    import pytorch_lightning as pl

    from genlab import launch
    from genlab.hardware import device_kind, hardware_fields, resolve_precision

    overrides = launch.init_args(args.set)
    tcfg = yaml.safe_load(Path(args.config).read_text()).get("trainer") or {}
    device = "cuda" if device_kind(args.accelerator) == "cuda" else "cpu"
    precision, reason = resolve_precision(str(args.precision or tcfg.get("precision") or "32-true"), args.accelerator)
    max_steps = args.max_steps if args.max_steps is not None else (tcfg.get("max_steps") or -1)
    peak_fp32 = matmul_peak_gflops(torch.float32, device=device)
    peak_bf16 = matmul_peak_gflops(torch.bfloat16, device=device)
    peak_fp16 = matmul_peak_gflops(torch.float16, device=device) if precision.startswith("16") else None
    peak = peak_bf16 if precision.startswith("bf16") else peak_fp16 if peak_fp16 else peak_fp32
    print(f"matmul peak on {device}: fp32 {peak_fp32:.0f} GFLOP/s, bf16 {peak_bf16:.0f} GFLOP/s; training in "
          f"{precision} ({reason})", flush=True)

    class FirstStep(pl.Callback):
        """Seconds from the start of training to the end of its first step: where torch.compile pays its cost."""

        def on_train_start(self, trainer, pl_module):
            self.start, self.seconds = time.perf_counter(), None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.seconds is None:
                self.seconds = time.perf_counter() - self.start

    first = FirstStep()
    root = Path(args.root)
    # `genlab fit` on the config, with the budget and without validation inside it (measured once afterwards)
    run = launch.fit([args.config], {
        **overrides,
        "trainer.default_root_dir": str(root), "trainer.max_time": launch.max_time(args.minutes),
        "trainer.max_steps": max_steps, "trainer.precision": precision, "trainer.accelerator": args.accelerator,
        "trainer.devices": 1, "trainer.limit_val_batches": 0, "trainer.enable_progress_bar": False,
        "checkpoint.save_top_k": 0, "overwrite_run": True,  # no best.ckpt without validation; last.ckpt is kept
    }, callbacks=[first])
    trainer, lm, data = run.trainer, run.model, run.datamodule
    from pytorch_lightning.callbacks import Timer

    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    wall = timer.time_elapsed("train")
    steps = trainer.global_step
    tokens = steps * data.batch_size * data.block_size
    lm.eval()
    val = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, precision="32-true",
                     accelerator=args.accelerator, devices=1, limit_val_batches=1.0)
    metrics = val.validate(lm, datamodule=data, verbose=False)[0]
    ckpt = root / "bench.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # with the optimizer (resumable); unstated, Lightning logs its default

    lm.to(device)  # Lightning hands the model back on the CPU; generation is timed where it trained
    val_text = data._val.ids[:128].tolist()
    prompt = lm.decode(val_text)
    # each path on 1 and on all threads; the best of each is reported (one-token decode steps are too small to
    # gain from a second thread, and on a shared machine its synchronisation can cost more than it brings)
    gen = {}
    for threads in sorted({1, args.threads}):
        for use_cache in (True, False):
            gen[(use_cache, threads)] = generation_speed(lm, prompt, 128, use_cache, threads)
    gen_cache = max(v[0] for (c, _), v in gen.items() if c)
    gen_plain = max(v[0] for (c, _), v in gen.items() if not c)
    tokens_per_s = tokens / wall
    flops_per_token = lm.model.flops_per_token(data.block_size)
    result = {
        "steps": steps,
        "wall_s": round(wall, 1),
        "train_tokens_per_s": round(tokens_per_s, 1),
        "val_loss": round(metrics["val/loss"], 4),
        "val_bpc": round(metrics["val/bpc"], 4),
        "gen_tokens_per_s_cache": round(gen_cache, 1),
        "gen_tokens_per_s_nocache": round(gen_plain, 1),
        "matmul_peak_gflops": round(peak, 1),
        "mfu": round(tokens_per_s * flops_per_token / (peak * 1e9), 4),
        # context for the figures above
        "cache_speedup": round(gen_cache / gen_plain, 2),
        "cache_matches_nocache": len({text for _, text in gen.values()}) == 1,
        "gen_tokens_per_s_by_threads": {f"{'cache' if c else 'nocache'}_{t}": round(v[0], 1)
                                        for (c, t), v in gen.items()},
        "precision": precision,
        "compile": bool(lm.hparams.get("compile", False)),
        "first_step_s": round(first.seconds, 2) if first.seconds is not None else None,
        "device": device,
        **hardware_fields(),
        "max_steps": max_steps,
        "matmul_peak_gflops_fp32": round(peak_fp32, 1),
        "matmul_peak_gflops_bf16": round(peak_bf16, 1),
        "model_gflop_per_s": round(tokens_per_s * flops_per_token / 1e9, 1),
        "params_m": round(lm.model.num_params() / 1e6, 3),
        "train_tokens": tokens,
        "threads": args.threads,
        "minutes": args.minutes,
        "config": str(args.config),
        "overrides": args.set,
        "checkpoint": str(ckpt),
    }
    print("\nsamples (prompt 'ROMEO:', seed 0, 300 characters):")
    for t in (0.5, 1.0, 1.5):
        print(f"===== temperature {t} =====\n{lm.generate_text('ROMEO:', 300, temperature=t, seed=0)}\n")
    (root / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.flush()
    print(json.dumps(result))
    return 0 if math.isfinite(result["val_loss"]) else 1


if __name__ == "__main__":
    sys.exit(main())
