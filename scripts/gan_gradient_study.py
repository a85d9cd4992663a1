"""The too-strong discriminator's lesson, measured: the saturating generator loss starves G of gradient.

    python scripts/gan_gradient_study.py [--g-steps 150] [--train-limit 12800]

Trains configs/dcgan_mnist.yaml through genlab.launch (fp32; no EMA, no FID callback) for the same
FIXED number of generator steps in four settings: g_loss {saturating, non_saturating} x {default D, over-strong D}
(over-strong: 5 D steps per G step, D 1.0 wide, no label smoothing), all from the same seed. Every step it records
the model's own `train/g_grad_norm` and `train/d_fake_after` (D(G(z)) after D's update) and whether the model's
too-strong warning fired. Writes reports/discriminator_strength/g_loss_gradients.png (both against the step,
log scale for the norm) and g_loss_gradients.json, and prints one JSON line: the median gradient norm of each
run over the last half of the steps and the ratio saturating / non_saturating under each D.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRONG = {"d_steps": 5, "d_width": 1.0, "real_label": 1.0}


def run(g_loss: str, strong: bool, g_steps: int, train_limit: int, patience: int, seed: int = 0) -> dict:
    import pytorch_lightning as pl

    from genlab import launch
    from genlab.callbacks.sample_quality import SampleQualityCallback

    class Record(pl.Callback):
        def __init__(self):
            self.norm, self.d_fake = [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            self.norm.append(float(m["train/g_grad_norm"]))
            self.d_fake.append(float(m["train/d_fake_after"]))

    model = {"g_ema_decay": 0.0, "channels_last": False, **(STRONG if strong else {}), "g_loss": g_loss,
             "d_strong_patience": patience}
    per_batch = (STRONG["d_steps"] if strong else 1) + 1
    root = ROOT / "runs" / "gan_gradient_study" / f"{g_loss}_{'strong' if strong else 'default'}"
    record = Record()
    built = launch.build([ROOT / "configs" / "dcgan_mnist.yaml"], {
        **{f"model.init_args.{k}": v for k, v in model.items()},
        "seed_everything": seed, "data.init_args.seed": seed,
        "trainer.default_root_dir": str(root), "trainer.max_steps": g_steps * per_batch,
        "trainer.limit_train_batches": max(1, train_limit // 64), "trainer.precision": "32-true",
        "trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.logger": False,
        "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False, "checkpoint.save_top_k": 0,
    }, callbacks=[record])
    # the per-step records are the study; per-epoch FID would only cost time
    built.trainer.callbacks[:] = [c for c in built.trainer.callbacks if not isinstance(c, SampleQualityCallback)]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built.fit()
    warned = any("discriminator too strong" in str(w.message) for w in caught)
    return {"norm": record.norm, "d_fake": record.d_fake, "warned": warned, "wall_s": time.perf_counter() - start}


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--g-steps", type=int, default=150, help="generator steps per run (the same for all four)")
    p.add_argument("--train-limit", type=int, default=12800, help="MNIST training images cycled through")
    p.add_argument("--patience", type=int, default=50, help="the too-strong warning's patience (steps)")
    p.add_argument("--out", default=str(ROOT / "reports" / "discriminator_strength"))
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for strong in (False, True):
        for g_loss in ("non_saturating", "saturating"):
            name = f"{g_loss}, {'over-strong' if strong else 'default'} D"
            runs[name] = run(g_loss, strong, args.g_steps, args.train_limit, args.patience)
            r = runs[name]
            print(f"{name}: median g_grad_norm (last half) {median(r['norm'][len(r['norm']) // 2:]):.3g}, "
                  f"final D(G(z)) {r['d_fake'][-1]:.3g}, warning {'fired' if r['warned'] else 'silent'}, "
                  f"{r['wall_s']:.0f} s", flush=True)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    styles = {"default": "-", "over-strong": "--"}
    colors = {"non_saturating": "tab:blue", "saturating": "tab:red"}
    for name, r in runs.items():
        g_loss, d = name.split(", ")[0], name.split(", ")[1].split(" ")[0]
        steps = range(1, len(r["norm"]) + 1)
        ax1.plot(steps, r["norm"], styles[d], color=colors[g_loss], label=name, lw=1.2)
        ax2.plot(steps, r["d_fake"], styles[d], color=colors[g_loss], label=name, lw=1.2)
    ax1.set_yscale("log")
    ax1.set_xlabel("generator step")
    ax1.set_ylabel("train/g_grad_norm (L2, all of G)")
    ax1.set_title("G's gradient: log(1 - D(G(z))) dies when D wins")
    ax2.set_yscale("log")
    ax2.set_xlabel("generator step")
    ax2.set_ylabel("D(G(z)) after D's update")
    ax2.set_title("how confidently D rejects G's samples")
    ax1.legend(fontsize=8)
    fig.suptitle(f"DCGAN (configs/dcgan_mnist.yaml model, fp32), {args.g_steps} G steps each, seed 0; "
                 "over-strong D = 5 D steps, width 1.0, real_label 1.0", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "g_loss_gradients.png", dpi=100)

    summary = {name: {"median_g_grad_norm_last_half": median(r["norm"][len(r["norm"]) // 2:]),
                      "median_d_fake_last_half": median(r["d_fake"][len(r["d_fake"]) // 2:]),
                      "warning_fired": r["warned"], "wall_s": round(r["wall_s"], 1)} for name, r in runs.items()}
    for d in ("default", "over-strong"):
        sat = summary[f"saturating, {d} D"]["median_g_grad_norm_last_half"]
        ns = summary[f"non_saturating, {d} D"]["median_g_grad_norm_last_half"]
        summary[f"ratio saturating/non_saturating, {d} D"] = sat / ns
    summary["g_steps"] = args.g_steps
    (out / "g_loss_gradients.json").write_text(json.dumps({**summary, "runs": runs}) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
