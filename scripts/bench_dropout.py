"""Dropout cost on this machine: torch's nn.Dropout against genlab's byte-mask Dropout, forward + backward.

    python scripts/bench_dropout.py [--threads 2] [--shape 16 256 256]

Prints one JSON line: median milliseconds per forward + backward for each, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from genlab.hardware import hardware_fields
from genlab.nets.fast_dropout import ByteMaskDropout as Dropout


def ms_per_call(module: torch.nn.Module, x: torch.Tensor, repeats: int = 30) -> float:
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        module(x).backward(torch.ones_like(x))
        if i >= 3:  # the first calls warm up allocators and threads
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shape", type=int, nargs="+", default=[16, 256, 256])
    p.add_argument("--p", type=float, default=0.1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(*args.shape).bfloat16().requires_grad_()
    torch_ms = ms_per_call(torch.nn.Dropout(args.p).train(), x)
    genlab_ms = ms_per_call(Dropout(args.p).train(), x)
    print(json.dumps({"shape": args.shape, "dtype": "bfloat16", "p": args.p, "threads": args.threads,
                      "nn_dropout_ms": round(torch_ms, 2), "genlab_dropout_ms": round(genlab_ms, 2),
                      "speedup": round(torch_ms / genlab_ms, 1), **hardware_fields()}))


if __name__ == "__main__":
    main()
