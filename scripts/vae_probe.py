"""A short VAE probe in the plain PyTorch loop of scripts/bench_vae.py: train one setting, print one JSON line.

    python scripts/vae_probe.py --hidden 512,512,512 --lr 2e-3 --epochs 10

Prints the settings, the parameter count, seconds per epoch and the test set's one-sample neg ELBO and its parts
(reports/vae/README.md compares settings with it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vae_probe", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="mlp")
    p.add_argument("--hidden", default="1024,512", help="comma-separated widths")
    p.add_argument("--channels", default="32,64", help="conv widths (arch conv)")
    p.add_argument("--act", default="relu")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="onecycle")
    p.add_argument("--warmup", type=float, default=0.05)
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--bs", type=int, default=128)
    p.add_argument("--klwarm", type=float, default=0.0)
    p.add_argument("--pixels", default="continuous", choices=["continuous", "binarized"])
    p.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    a = p.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_vae import evaluate, plain_loop
    from genlab.data import MNISTDataModule
    from genlab.models.vae import VAE

    dm = MNISTDataModule(root=a.data_root, pixels=a.pixels)
    dm.setup()
    torch.manual_seed(0)
    m = VAE(arch=a.arch, hidden=[int(h) for h in a.hidden.split(",")], channels=[int(c) for c in a.channels.split(",")],
            act=a.act, lr=a.lr, schedule=a.schedule, warmup_frac=a.warmup, kl_warmup_epochs=a.klwarm)
    nparams = sum(q.numel() for q in m.parameters())
    r = plain_loop(m, dm.split("train").x, a.epochs, a.bs, a.pixels == "binarized")
    t = evaluate(m, dm.split("test").x)
    print(json.dumps({"args": vars(a), "params": nparams, "s_per_epoch": round(r["seconds"] / a.epochs, 1),
                      **{k: round(v, 2) for k, v in t.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
