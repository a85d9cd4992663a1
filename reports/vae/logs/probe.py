import sys, time, json, argparse
sys.path.insert(0, "/work/main/scripts")
import torch
from bench_vae import plain_loop, evaluate
from genlab.models.vae import VAE
from genlab.data import MNISTDataModule
p = argparse.ArgumentParser()
p.add_argument("--arch", default="mlp"); p.add_argument("--hidden", default="1024,512")
p.add_argument("--channels", default="32,64")
p.add_argument("--act", default="relu"); p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--schedule", default="onecycle"); p.add_argument("--warmup", type=float, default=0.05)
p.add_argument("--epochs", type=float, default=10); p.add_argument("--bs", type=int, default=128)
p.add_argument("--klwarm", type=float, default=0.0); p.add_argument("--pixels", default="continuous")
a = p.parse_args()
dm = MNISTDataModule(root="/work/shared/data", pixels=a.pixels); dm.setup()
torch.manual_seed(0)
m = VAE(arch=a.arch, hidden=[int(h) for h in a.hidden.split(",")], channels=[int(c) for c in a.channels.split(",")],
        act=a.act, lr=a.lr, schedule=a.schedule, warmup_frac=a.warmup, kl_warmup_epochs=a.klwarm)
nparams = sum(p.numel() for p in m.parameters())
r = plain_loop(m, dm.split("train").x, a.epochs, a.bs, a.pixels == "binarized")
t = evaluate(m, dm.split("test").x)
print(json.dumps({"args": vars(a), "params": nparams, "s_per_epoch": round(r["seconds"] / a.epochs, 1), **{k: round(v, 2) for k, v in t.items()}}), flush=True)
