"""genlab's VAE beside a paper's table: dynamically binarized MNIST at several latent sizes, the test
log-likelihood estimated by importance sampling as the paper does, next to Davidson et al. 2018 (Table 1).

    python scripts/bench_vae_table.py [--latent-dims 2 5 10 20] [--max-epochs N] [--patience P]
        [--max-minutes M] [--k 500 5000] [-c OVERRIDE.yaml ...] [--set KEY=VALUE ...] [--threads T]
    python scripts/bench_vae_table.py --table-only

For each latent size: trains configs/vae_mnist_binarized.yaml (plus the -c override files and --set items, e.g.
`-c configs/vae_mnist_binarized_vamp.yaml` or `--set objective=iwae iwae_k=5`) through genlab.launch, exactly as
`genlab fit` would, with early stopping on val/loss (the validation split; the test set is never used for a
choice), then takes the checkpoint best on val/loss and measures it on all 10,000 test images (binarized once with
the data module's fixed seed): the IWAE estimate of -log p(x) at each --k, the one-sample -ELBO, reconstruction
and KL. Each trained model appends one JSON line to reports/vae/paper_table.jsonl; a configuration already there
with the same settings is skipped, so an interrupted campaign resumes where it stopped. Then the table of
reports/vae/paper_table.md is rendered from all the lines, genlab's rows beside the paper's (the paper reports
log-likelihoods LL, genlab negative log-likelihoods NLL = -LL: both are shown).
"""

from __future__ import annotations

import os

# As scripts/bench_vae.py: sleeping OpenMP waits, set before torch loads its runtime (spinning threads on a shared
# CPU make steps many times slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "vae_mnist_binarized.yaml"
JSONL = ROOT / "reports" / "vae" / "paper_table.jsonl"
MARKDOWN = ROOT / "reports" / "vae" / "paper_table.md"
# Davidson, Falorsi, De Cao, Kipf, Tomczak, "Hyperspherical Variational Auto-Encoders", UAI 2018, Table 1:
# test log-likelihood (nats, importance sampling with PAPER_K samples) of the N-VAE and the S-VAE.
PAPER = {2: (-135.73, -132.50), 5: (-110.21, -108.43), 10: (-93.84, -93.16), 20: (-88.90, -89.02)}
PAPER_K = 500
START, END = "<!-- table:start (written by scripts/bench_vae_table.py) -->", "<!-- table:end -->"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latent-dims", type=int, nargs="+", default=[2, 5, 10, 20])
    p.add_argument("-c", "--config", action="append", default=[], metavar="YAML",
                   help="an override file on top of configs/vae_mnist_binarized.yaml (repeatable)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="model options (prior=vamp, objective=iwae, iwae_k=5, ...) or data.KEY=VALUE")
    p.add_argument("--max-epochs", type=int, default=None, help="default: the config's trainer.max_epochs")
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without a better val/loss")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of each training run")
    p.add_argument("--k", type=int, nargs="+", default=[PAPER_K, 5000], help="importance samples of the NLL estimate")
    p.add_argument("--test-images", type=int, default=10000, help="smoke tests only: the first N test images")
    p.add_argument("--big-k-images", type=int, default=None,
                   help=f"estimate the k above the paper's {PAPER_K} on the first N test images only (time: k=5000 "
                   "costs 10x k=500); default all")
    p.add_argument("--limit-train-batches", type=int, default=None, help="smoke tests only: batches per epoch")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figures", action="store_true", help="keep the per-epoch pictures (off: they cost time)")
    p.add_argument("--root-dir", default=str(ROOT / "runs" / "vae_table"), help="parent of the run folders")
    p.add_argument("--jsonl", default=str(JSONL))
    p.add_argument("--markdown", default=str(MARKDOWN))
    p.add_argument("--table-only", action="store_true", help="only re-render the Markdown table from the JSON lines")
    args = p.parse_args(argv)
    for name in ("max_epochs", "max_minutes", "test_images", "big_k_images", "limit_train_batches", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if any(k < 1 for k in args.k) or any(d < 1 for d in args.latent_dims) or args.patience < 1:
        p.error("--k, --latent-dims and --patience take positive numbers")
    return args


def settings(args, latent_dim: int) -> dict:
    """What makes a row: two runs with equal settings are the same measurement (the resume key)."""
    return {"configs": [str(CONFIG.relative_to(ROOT)), *args.config], "set": sorted(args.set),
            "latent_dim": latent_dim, "max_epochs": args.max_epochs, "patience": args.patience,
            "max_minutes": args.max_minutes, "k": sorted(args.k), "test_images": args.test_images,
            "big_k_images": args.big_k_images,
            "limit_train_batches": args.limit_train_batches, "seed": args.seed, "figures": args.figures}


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate(model, x, ks: list[int], seed: int, big_k_images: int | None = None, batch: int = 100) -> dict:
    """On the images x: the one-sample -ELBO, recon and KL, and the IWAE NLL estimate at each k (with its time;
    the k above PAPER_K on the first big_k_images images when given)."""
    import torch

    model.eval()
    torch.manual_seed(seed)
    sums = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out = model(x[i : i + 1000])
            for key in sums:
                sums[key] += out[key].sum().item()
    result = {f"test_{key}": round(v / len(x), 3) for key, v in sums.items()}
    nll, seconds, images = {}, {}, {}
    for k in sorted(ks):
        xs = x[:big_k_images] if big_k_images and k > PAPER_K else x
        gen = torch.Generator().manual_seed(seed)
        t0, total = time.perf_counter(), 0.0
        for i in range(0, len(xs), batch):
            total += model.iwae_nll(xs[i : i + batch], k, generator=gen).sum().item()
        seconds[str(k)], images[str(k)] = round(time.perf_counter() - t0, 1), len(xs)
        nll[str(k)] = round(total / len(xs), 3)
        print(f"  test NLL, k={k}: {nll[str(k)]:.2f} nats on {len(xs)} images ({seconds[str(k)]:.0f} s)", flush=True)
    return {**result, "test_nll_by_k": nll, "test_images_by_k": images, "eval_s_by_k": seconds}


def train_and_measure(args, latent_dim: int) -> dict:
    import torch
    from pytorch_lightning.callbacks import EarlyStopping

    from genlab import launch
    from genlab.checkpoints import load_module
    from genlab.hardware import cpu_has_native_bf16, cpu_info
    from genlab.models.vae import VAE

    tag = "_".join([f"d{latent_dim}", *(Path(c).stem for c in args.config), *args.set]).replace("=", "")
    overrides = {
        "trainer.max_epochs": str(args.max_epochs) if args.max_epochs else None,
        "trainer.max_time": launch.max_time(args.max_minutes) if args.max_minutes else None,
        "trainer.limit_train_batches": str(args.limit_train_batches) if args.limit_train_batches else None,
        "trainer.default_root_dir": str(Path(args.root_dir) / tag),
        "trainer.enable_progress_bar": "false",
        "seed_everything": str(args.seed),
        "model.init_args.latent_dim": str(latent_dim),
        "model.init_args.figures_every_n_epochs": None if args.figures else "0",
        **launch.init_args(args.set),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    stop = EarlyStopping(monitor="val/loss", mode="min", patience=args.patience)
    run = launch.build([CONFIG, *args.config], overrides, callbacks=[stop])
    trainer, model = run.trainer, run.model
    precision = str(trainer.precision)
    if "bf16" in precision and trainer.strategy.root_device.type == "cpu" and not cpu_has_native_bf16():
        raise SystemExit(f"genlab: precision {precision} on a CPU without native bf16 would be emulated and very slow: "
                         "set trainer.precision to 32-true")
    hp = model.hparams
    print(f"d={latent_dim}: prior={hp.prior} objective={hp.objective} (k={hp.iwae_k}) likelihood={hp.likelihood} "
          f"precision={precision} threads={torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    run.fit()
    wall = time.perf_counter() - t0
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    measured = load_module(best, expected=VAE) if best else model.cpu()
    x = run.datamodule.split("test").x[: args.test_images].cpu()
    result = evaluate(measured, x, args.k, args.seed, args.big_k_images)
    ks = sorted(args.k)
    return {
        "latent_dim": latent_dim, "prior": hp.prior, "n_pseudo_inputs": hp.n_pseudo_inputs if hp.prior == "vamp" else None,
        "objective": hp.objective, "iwae_k_train": hp.iwae_k if hp.objective == "iwae" else 1,
        "likelihood": hp.likelihood, "hidden": list(hp.hidden), "arch": hp.arch,
        "test_nll": result["test_nll_by_k"][str(ks[-1])], "test_nll_k": ks[-1],
        "test_nll_paper_k": result["test_nll_by_k"].get(str(PAPER_K)), "test_images": len(x),
        "test_nll_images": result["test_images_by_k"][str(ks[-1])],
        **result,
        "epochs": trainer.current_epoch, "best_epoch_val_loss": round(float(trainer.checkpoint_callback.best_model_score), 3)
        if best else None, "stopped_early": bool(stop.stopped_epoch), "wall_s": round(wall, 1),
        "s_per_epoch": round(wall / max(1, trainer.current_epoch), 1),
        "precision": precision, "cpu": cpu_info()["cpu"], "torch_threads": torch.get_num_threads(),
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]), "settings": settings(args, latent_dim),
    }


def label(row: dict) -> str:
    prior = "N(0, I)" if row["prior"] == "gaussian" else f"VampPrior K={row['n_pseudo_inputs']}"
    objective = "ELBO" if row["objective"] == "elbo" else f"IWAE k={row['iwae_k_train']}"
    pixels = "" if row["likelihood"] == "bernoulli" else ", continuous Bernoulli"
    return f"{prior}, {objective}{pixels}"


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(rows: list[dict]) -> str:
    """The Markdown table: per latent size the paper's two rows, then genlab's (the newest row per settings)."""
    latest = {json.dumps(r["settings"], sort_keys=True): r for r in rows}
    by_dim: dict[int, list[dict]] = {}
    for r in latest.values():
        by_dim.setdefault(r["latent_dim"], []).append(r)
    lines = [
        "Test set of MNIST, binarized. **LL** = log-likelihood (the paper's figure, higher is better); **NLL** = -LL "
        "(genlab's figure, lower is better); both in nats per image. `gap` = genlab's NLL minus the N-VAE's "
        "(negative: genlab is better). Paper: importance sampling with 500 samples; genlab: at the k named.",
        "",
        "| d | model | LL (k=500) | NLL (k=500) | NLL (k=5000) | gap to N-VAE | -ELBO | recon | KL | epochs | train min | test images |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in sorted(set(PAPER) | set(by_dim)):
        if d in PAPER:
            for name, ll in zip(("paper N-VAE", "paper S-VAE"), PAPER[d], strict=True):
                lines.append(f"| {d} | {name} | {ll:.2f} | {-ll:.2f} | | | | | | | | |")
        for r in sorted(by_dim.get(d, []), key=lambda r: (r["prior"], r["objective"], r["likelihood"])):
            nll = r["test_nll_by_k"]
            paper_k, big = nll.get(str(PAPER_K)), nll.get("5000")
            big_images = r.get("test_images_by_k", {}).get("5000", r["test_images"])
            gap = fmt(paper_k + PAPER[d][0], 2) if d in PAPER and paper_k is not None else "–"
            partial = "" if r["test_images"] >= 10000 else " (partial)"
            lines.append(
                f"| {d} | **genlab** {label(r)} | {fmt(-paper_k if paper_k is not None else None)} | {fmt(paper_k)} | "
                f"{fmt(big)}{'' if big is None or big_images >= 10000 else f' ({big_images} images)'} | {gap} | {fmt(r['test_neg_elbo'])} | {fmt(r['test_recon'])} | {fmt(r['test_kl'])} | "
                f"{r['epochs']}{' (early stop)' if r.get('stopped_early') else ''} | {r['wall_s'] / 60:.1f} | "
                f"{r['test_images']}{partial} |")
    machines = sorted({f"{r['cpu']}, {r['torch_threads']} torch threads, precision {r['precision']}" for r in latest.values()})
    commands = sorted({r["command"] for r in latest.values()})
    lines += ["", "Machine: " + ("; ".join(machines) if machines else "(no rows yet)") + ".", "", "Commands:", ""]
    lines += [f"    {c}" for c in commands] or ["    (none yet)"]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, rows: list[dict]) -> None:
    """Replace the table between the markers of `path` (its prose around them is kept); a new file gets a title."""
    table = f"{START}\n{render(rows)}{END}"
    text = path.read_text() if path.is_file() else "# genlab's VAE beside Davidson et al. 2018, Table 1\n\n"
    if START in text and END in text:
        text = text[: text.index(START)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    jsonl, markdown = Path(args.jsonl), Path(args.markdown)
    if not args.table_only:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        for d in args.latent_dims:
            key = settings(args, d)
            if any(r.get("settings") == key for r in read_rows(jsonl)):
                print(f"d={d}: already in {jsonl} with these settings, skipped", flush=True)
                continue
            row = train_and_measure(args, d)
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    rows = read_rows(jsonl)
    write_markdown(markdown, rows)
    print(f"{markdown}: {len(rows)} rows rendered", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.exit(main())
