"""Benchmark the default DCGAN config: train it, then judge 10,000 samples of the final model.

    python scripts/bench_dcgan.py [--epochs N] [--dataset mnist|fashion_mnist]

Trains `configs/dcgan_<dataset>.yaml` in-process as `genlab fit` does (genlab.launch) (W&B offline unless a key is set), loads the
run's last.ckpt exactly as `genlab sample`/`genlab evaluate` would, and scores `model.sample(10000, seed)` with
genlab.metrics.SampleQuality. Writes the sample grid and the full metrics next to the report
(reports/dcgan/) and prints, as its LAST line, one JSON object with the keys epochs, wall_s, train_images_per_s,
fid, fid_floor, kid, classes_covered, min_class_share, max_class_share, confident_fraction, fid_over_floor,
class_shares, precision, cpu, cpu_flags, gpu.

Floor for MNIST: all 10 classes between 5% and 16% of the samples, confident fraction >= 0.75,
FID <= 25 x the real-data floor, with at most 30 minutes of training on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = ("fid", "fid_floor", "kid", "classes_covered", "min_class_share", "max_class_share", "confident_fraction")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's max_epochs)")
    p.add_argument("--config", default=None, help="config file (default: configs/dcgan_<dataset>.yaml)")
    p.add_argument("--root", default=None, help="run folder (default: runs/bench_dcgan_<dataset>)")
    p.add_argument("--max-minutes", type=float, default=30.0,
                   help="stop training after this many minutes whatever --epochs says (default 30, the floor's limit)")
    p.add_argument("--precision", default=None,
                   help="Lightning precision for training (default: the config's, auto = genlab's rule)")
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation samples")
    p.add_argument("--out", default=str(REPO / "reports" / "dcgan"), help="folder for the grid and metrics JSON")
    p.add_argument("--eval-only", action="store_true", help="skip training; judge the run folder's last.ckpt")
    p.add_argument("--plot-only", action="store_true",
                   help="only redraw reports/dcgan/curves_<dataset>.png from the run folder's summary.json")
    p.add_argument("overrides", nargs="*", help="extra `genlab fit` arguments after a `--`, e.g. -- --model.init_args.d_lr=1e-4")
    return p.parse_args(argv)


def plot_curves(summary_path: Path, out_png: Path, title: str) -> Path | None:
    """The run's diagnostics from RunSummary's history: D's outputs, losses, gradient norms, sample quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = json.loads(summary_path.read_text())["history"]

    def series(key):
        pts = hist.get(key, [])
        return [p[0] / 2 for p in pts], [p[1] for p in pts]  # global_step counts 2 optimizer steps per batch

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for key, label in (("train/d_real", "D(x)"), ("train/d_fake_before", "D(G(z)) before D's step"),
                       ("train/d_fake_after", "D(G(z)) after D's step")):
        axes[0].plot(*series(key), label=label, lw=0.8)
    axes[0].axhline(0.05, color="red", ls=":", lw=0.8, label="'D too strong' threshold")
    axes[0].set(title="discriminator outputs", xlabel="training step (batch)", ylim=(0, 1))
    for key, label in (("train/d_loss", "D loss"), ("train/g_loss", "G loss")):
        axes[1].plot(*series(key), label=label, lw=0.8)
    axes[1].set(title="losses", xlabel="training step (batch)")
    for key, label in (("train/d_grad_norm", "|grad D|"), ("train/g_grad_norm", "|grad G|")):
        axes[2].plot(*series(key), label=label, lw=0.8)
    axes[2].set(title="gradient norms", xlabel="training step (batch)", yscale="log")
    steps, fid = series("quality/fid")
    _, floor = series("quality/fid_floor")
    if fid:
        ax = axes[3]
        ax.plot(steps, [f / fl for f, fl in zip(fid, floor, strict=False)], "o-", label="FID / floor (2k samples)")
        ax.set(yscale="log", xlabel="training step (batch)", title="sample quality per epoch")
        ax2 = ax.twinx()
        for key, label, style in (("quality/confident_fraction", "confident fraction", "s--"),
                                  ("quality/min_class_share", "rarest class share", "^--"),
                                  ("quality/max_class_share", "commonest class share", "v--")):
            ax2.plot(*series(key), style, label=label, ms=3, lw=0.8)
        ax2.set(ylim=(0, 1))
        ax2.legend(loc="center right", fontsize=7)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configs = [Path(args.config)] if args.config else [REPO / "configs" / "dcgan_mnist.yaml"]
    if not args.config and args.dataset != "mnist":
        configs.append(REPO / "configs" / f"dcgan_{args.dataset}.yaml")  # an override of the MNIST config
    root = Path(args.root or f"runs/bench_dcgan_{args.dataset}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)


    from genlab import launch

    overrides = ["--trainer.default_root_dir", str(root)]
    if args.epochs is not None:
        overrides += ["--trainer.max_epochs", str(args.epochs)]
    if args.max_minutes:
        overrides += ["--trainer.max_time", launch.max_time(args.max_minutes)]
    if args.precision:
        overrides += ["--trainer.precision", args.precision]
    overrides += args.overrides
    fit_args = ["fit", *launch.arguments(configs, overrides)]

    summary = root / "summary.json"
    if args.plot_only:
        print(plot_curves(summary, out / f"curves_{args.dataset}.png", f"DCGAN on {args.dataset}: {root}"))
        return 0

    wall_s = None
    if not args.eval_only:
        if root.exists():
            shutil.rmtree(root)  # a fresh run, not a resumed one
        print("genlab " + " ".join(fit_args), flush=True)
        start = time.perf_counter()
        launch.fit(configs, overrides)  # `genlab fit` in this process
        wall_s = time.perf_counter() - start

    from torchvision.utils import save_image

    from genlab.checkpoints import load_module, read_checkpoint
    from genlab.metrics import SampleQuality
    from genlab.models.dcgan import DCGAN

    ckpt_path = root / "checkpoints" / "last.ckpt"
    ckpt = read_checkpoint(ckpt_path)
    model = load_module(ckpt_path, expected=DCGAN)
    batches = int(model.gan_step)
    batch_size = int(ckpt.get("datamodule_hyper_parameters", {}).get("batch_size", 128))
    n_train = 60_000 - int(ckpt.get("datamodule_hyper_parameters", {}).get("val_size", 0))
    epochs = batches / (n_train // batch_size)  # completed epochs (drop_last batches); fractional if cut by time

    t0 = time.perf_counter()
    images = model.sample(args.n_samples, seed=args.seed)
    quality = SampleQuality(dataset=args.dataset).evaluate(images)
    eval_s = time.perf_counter() - t0

    save_image(images[:100], out / f"samples_{args.dataset}.png", nrow=10, padding=2, pad_value=1.0)
    fixed = root / "figures" / "samples_fixed_noise.png"
    if fixed.is_file():
        shutil.copyfile(fixed, out / f"samples_fixed_noise_{args.dataset}.png")

    from genlab.hardware import hardware_fields, resolve_precision

    precision = resolve_precision(args.precision or "auto", "auto")[0]
    result = {
        "epochs": round(epochs, 2) if not math.isclose(epochs, round(epochs)) else int(round(epochs)),
        "wall_s": round(wall_s, 1) if wall_s is not None else None,
        "train_images_per_s": round(batches * batch_size / wall_s, 1) if wall_s else None,
    }
    for key in KEYS:
        value = quality[key]
        result[key] = round(float(value), 4) if isinstance(value, float) else value
    result.update(fid_over_floor=round(quality["fid"] / quality["fid_floor"], 2),
                  class_shares=[round(float(s), 4) for s in quality.get("class_shares", [])],
                  precision=precision, **hardware_fields())
    detail = {**result, "dataset": args.dataset, "n_samples": args.n_samples, "seed": args.seed,
              "eval_s": round(eval_s, 1), "inception_score": quality.get("inception_score"), "kid_std": quality.get("kid_std"),
              "checkpoint": str(ckpt_path), "fit_args": fit_args, "hyper_parameters": ckpt.get("hyper_parameters")}
    (out / f"bench_{args.dataset}.json").write_text(json.dumps(detail, indent=2, default=str) + "\n")
    if summary.is_file():
        try:  # a figure must never cost the benchmark its result line
            plot_curves(summary, out / f"curves_{args.dataset}.png", f"DCGAN on {args.dataset}: {root}")
        except Exception as err:  # noqa: BLE001
            print(f"(no curves figure: {type(err).__name__}: {err})", flush=True)
    print(f"FID/floor {detail['fid_over_floor']}, class shares {detail['class_shares']}", flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
