"""Benchmark the default VAE (configs/vae_mnist.yaml): train it with genlab (Lightning), measure it, and time the
same model in a minimal PyTorch loop so the framework's cost is visible.

    python scripts/bench_vae.py [--epochs N] [--pixels continuous|binarized] [--iwae-k K] [--iwae-images N]
    python scripts/bench_vae.py probe [--hidden 512,512,512] [--lr 2e-3] [--epochs 10] ...   (see `probe --help`)

Prints progress, then as its LAST line one JSON object with the keys
    epochs, wall_s, train_images_per_s, test_neg_elbo, test_recon, test_kl, test_iwae_nll, iwae_k, iwae_images,
    plain_loop_images_per_s, framework_ratio, precision, cpu, cpu_flags, gpu
All losses are per test image in nats (summed over the 784 pixels). wall_s is the whole `fit` (training,
validation and the per-epoch pictures); train_images_per_s counts only the training batches' time.
The IWAE bound uses the first --iwae-images test images (a fixed subset, the same every run).
The plain loop (same model, batch size, optimizer and schedule, no framework) is timed in slices of
--plain-fraction of an epoch run after every genlab epoch, so that both sides see the same load on a shared machine;
that time is left out of wall_s.

`probe` trains one setting in the plain loop alone and prints one JSON line: the settings, the parameter count,
seconds per epoch and the test set's one-sample neg ELBO and its parts (reports/vae/README.md compares settings).
"""

from __future__ import annotations

import os

# On a shared CPU, OpenMP threads that spin while waiting for a descheduled peer make each training step up to
# 30x slower (measured here: 800 ms instead of 26 ms per step while other jobs ran). Sleeping waits cost ~5%
# when the machine is idle. Set before torch loads its OpenMP runtime; applies to both sides of the comparison.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "vae_mnist.yaml"


def load_config(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def build_model(cfg: dict, **overrides):
    from genlab.models.vae import VAE

    args = dict(cfg["model"].get("init_args", {}))
    args.update(overrides)
    return VAE(**args)


class PlainLoop:
    """The same model, optimizer and schedule in a minimal PyTorch loop: shuffle, slice, step. No framework.

    `run(steps)` trains for that many more steps and returns their wall time, so timing can be interleaved with
    the genlab run (see PlainTiming). `total_steps` sizes the learning-rate schedule.
    """

    def __init__(self, model, x_train: torch.Tensor, batch_size: int, binarize: bool, total_steps: int):
        from genlab.optim import make_scheduler

        hp = self.hp = model.hparams
        self.model, self.x, self.bs, self.binarize = model, x_train, batch_size, binarize
        self.steps_per_epoch = len(x_train) // batch_size  # drop_last, as the data module does
        self.opt = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        self.sched = (None if hp.schedule == "constant"
                      else make_scheduler(self.opt, hp.schedule, hp.lr, max(1, total_steps), hp.warmup_frac))
        self.warm_steps = hp.kl_warmup_epochs * self.steps_per_epoch
        self.step, self.order, self.i = 0, None, self.steps_per_epoch

    def run(self, steps: int) -> float:
        from genlab.nets.vae import bernoulli_nll, gaussian_kl

        model, hp, bs = self.model, self.hp, self.bs
        model.train()
        t0 = time.perf_counter()
        for _ in range(steps):
            if self.i >= self.steps_per_epoch:
                self.order, self.i = torch.randperm(len(self.x)), 0
            x = self.x[self.order[self.i * bs : (self.i + 1) * bs]]
            self.i += 1
            if self.binarize:
                x = torch.bernoulli(x)
            mu, logvar = model.encoder(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon, kl = bernoulli_nll(model.decoder(z), x).mean(), gaussian_kl(mu, logvar).mean()
            w = hp.beta * (min(1.0, (self.step + 1) / self.warm_steps) if self.warm_steps > 0 else 1.0)
            loss = recon + w * kl
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
            self.step += 1
        return time.perf_counter() - t0


def plain_loop(model, x_train: torch.Tensor, epochs: float, batch_size: int, binarize: bool, seed: int = 0) -> dict:
    """Train `model` for `epochs` (may be fractional) in the plain loop; {"images_per_s", "steps", "seconds"}."""
    torch.manual_seed(seed)
    steps = max(1, int(round(epochs * (len(x_train) // batch_size))))
    seconds = PlainLoop(model, x_train, batch_size, binarize, steps).run(steps)
    return {"images_per_s": steps * batch_size / seconds, "steps": steps, "seconds": seconds}


@torch.no_grad()
def evaluate(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> dict:
    """One-sample negative ELBO and its parts, per image, averaged over x."""
    from genlab.nets.vae import bernoulli_nll, gaussian_kl

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        mu, logvar = model.encoder(xb)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        recon, kl = bernoulli_nll(model.decoder(z), xb), gaussian_kl(mu, logvar)
        sums["recon"] += recon.sum().item()
        sums["kl"] += kl.sum().item()
        sums["neg_elbo"] += (recon + kl).sum().item()
    return {k: v / len(x) for k, v in sums.items()}


@torch.no_grad()
def iwae(model, x: torch.Tensor, k: int, batch_size: int = 100, seed: int = 0) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += model.iwae_nll(x[i : i + batch_size], k, generator=gen).sum().item()
    return total / len(x)


def timing_callbacks(plain: PlainLoop | None, plain_steps: int):
    """(TrainTimer, PlainTiming) Lightning callbacks.

    TrainTimer times genlab's training batches only: from the start of each training epoch to the end of its last
    batch (validation, pictures and checkpoints excluded). PlainTiming runs `plain_steps` steps of the plain loop
    after every genlab epoch, outside that window, so both loops are timed under the same (shared-machine) load
    all through the run; the global RNG state is restored so genlab's own training is unaffected.
    """
    import pytorch_lightning as pl

    class TrainTimer(pl.Callback):
        def __init__(self):
            self.seconds, self.images, self._t0, self._n = 0.0, 0, None, 0

        def on_train_epoch_start(self, trainer, pl_module):
            self._t0, self._n = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._n += len(batch[0])
            if batch_idx + 1 == trainer.num_training_batches:
                self.seconds += time.perf_counter() - self._t0
                self.images += self._n

    class PlainTiming(pl.Callback):
        def __init__(self):
            self.seconds, self.steps = 0.0, 0

        def on_train_epoch_end(self, trainer, pl_module):
            if plain is None or plain_steps <= 0:
                return
            state = torch.random.get_rng_state()
            self.seconds += plain.run(plain_steps)
            self.steps += plain_steps
            torch.random.set_rng_state(state)

    return TrainTimer(), PlainTiming()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--epochs", type=int, default=None, help="default: the config's trainer.max_epochs")
    p.add_argument("--pixels", choices=["continuous", "binarized"], default="continuous")
    p.add_argument("--iwae-k", type=int, default=1000)
    p.add_argument("--iwae-images", type=int, default=10000, help="first N test images for the IWAE bound")
    p.add_argument("--plain-fraction", type=float, default=0.2,
                   help="plain-loop steps run after every genlab epoch, as a fraction of an epoch (timing only)")
    p.add_argument("--root-dir", default=None, help="run folder (default runs/bench_vae_<pixels>)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--limit-train-batches", type=int, default=None, help="smoke tests only: batches per epoch")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)


    cfg = load_config(Path(args.config))
    epochs = args.epochs or cfg["trainer"].get("max_epochs", 30)
    root_dir = args.root_dir or str(ROOT / "runs" / f"bench_vae_{args.pixels}")
    seed = cfg.get("seed_everything", 0)

    # 1. genlab: the default config through genlab's LightningCLI (W&B logger, offline without a key; checkpoints,
    #    per-epoch pictures), exactly what `genlab fit -c configs/vae_mnist.yaml` runs, plus a timing callback.
    from genlab import launch
    from genlab.hardware import hardware_fields

    binarize = args.pixels == "binarized"
    run = launch.build(
        [args.config],
        ["--trainer.max_epochs", str(epochs), "--data.init_args.pixels", args.pixels,
         "--trainer.default_root_dir", root_dir, "--trainer.enable_progress_bar", "false"]
        + (["--trainer.limit_train_batches", str(args.limit_train_batches)] if args.limit_train_batches else []),
    )
    trainer, model, dm = run.trainer, run.model, run.datamodule
    dm.setup("fit")
    steps_per_epoch = len(dm.split("train")) // dm.batch_size
    plain_steps = max(1, int(round(args.plain_fraction * steps_per_epoch)))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed + 1)
    plain = PlainLoop(build_model(cfg), dm.split("train").x, dm.batch_size, binarize, plain_steps * epochs)
    torch.random.set_rng_state(state)  # genlab starts from the random state it would have without the plain loop
    timer, plain_timing = timing_callbacks(plain, plain_steps)
    trainer.callbacks.extend([timer, plain_timing])
    t0 = time.perf_counter()
    run.fit()
    wall = time.perf_counter() - t0 - plain_timing.seconds  # genlab's fit alone
    images_per_s = timer.images / timer.seconds
    plain_images_per_s = plain_timing.steps * dm.batch_size / plain_timing.seconds
    print(f"genlab: {epochs} epochs in {wall:.1f} s (+{plain_timing.seconds:.1f} s of interleaved plain-loop timing); "
          f"training {images_per_s:.0f} images/s; plain loop {plain_images_per_s:.0f} images/s "
          f"({plain_timing.steps} steps)", flush=True)
    ckpt_path = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""

    # 2. test-set figures of the final model
    model.eval()
    x_test = dm.split("test").x
    test = evaluate(model, x_test)
    print(f"test: {test}", flush=True)
    n_iwae = min(args.iwae_images, len(x_test))
    t1 = time.perf_counter()
    nll = iwae(model, x_test[:n_iwae], args.iwae_k)
    print(f"IWAE k={args.iwae_k} on {n_iwae} test images: {nll:.2f} nats ({time.perf_counter() - t1:.0f} s)", flush=True)

    result = {
        "epochs": epochs,
        "wall_s": round(wall, 1),
        "train_images_per_s": round(images_per_s, 1),
        "test_neg_elbo": round(test["neg_elbo"], 2),
        "test_recon": round(test["recon"], 2),
        "test_kl": round(test["kl"], 2),
        "test_iwae_nll": round(nll, 2),
        "iwae_k": args.iwae_k,
        "iwae_images": n_iwae,
        "plain_loop_images_per_s": round(plain_images_per_s, 1),
        "framework_ratio": round(images_per_s / plain_images_per_s, 3),
        "precision": str(trainer.precision),
        **hardware_fields(),
    }
    print(f"checkpoint: {ckpt_path}", file=sys.stderr, flush=True)
    print(json.dumps(result), flush=True)
    return 0


def probe(argv: list[str] | None = None) -> int:
    """`bench_vae.py probe`: one setting trained in the plain loop, one JSON line."""
    p = argparse.ArgumentParser(prog="bench_vae.py probe", description=probe.__doc__)
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
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.exit(probe(sys.argv[2:]) if sys.argv[1:2] == ["probe"] else main())
