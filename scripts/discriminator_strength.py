"""What weakening an over-strong discriminator does, measured: equal wall time, one knob at a time.

    python scripts/discriminator_strength.py [--minutes 2.5] [--variants strong ...]
    python scripts/discriminator_strength.py --report-only      # rebuild the report from finished runs

Runs the default DCGAN config (configs/dcgan_mnist.yaml as it is), a deliberately over-strong discriminator (the
one of scripts/gan_gradient_study.py: 5 D steps per G step, full width, no label smoothing), and the over-strong
one weakened by each knob alone, each for the same wall-clock budget (`trainer.max_time`), as a user with a fixed
amount of time would run them: a knob that makes steps dearer (R1's second backward pass, 5 D steps) pays for it
in generator steps. Each run is an ordinary `genlab fit` (own W&B run, checkpoints, summary.json) in
runs/sweeps/discriminator_strength/<variant>/; finished runs are not repeated. The report goes to
reports/discriminator_strength/: results.csv, summary.md, fid.png (FID per variant with the real-data floor),
d_outputs.png (D(x) and D(G(z)) over training, over-strong next to the best weakened) and grids.png (final
fixed-noise samples side by side). The last line printed is one JSON object: {variant: {fid, fid_floor, ...}, ...}.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from genlab.sweep import collect, execute

STRONG = {"model.init_args.d_steps": 5, "model.init_args.d_width": 1.0, "model.init_args.real_label": 1.0}
VARIANTS = {
    "default": {},
    "strong": STRONG,
    "strong+real_label_0.9": {**STRONG, "model.init_args.real_label": 0.9},
    "strong+label_flip_0.05": {**STRONG, "model.init_args.label_flip_prob": 0.05},
    "strong+instance_noise_0.2": {**STRONG, "model.init_args.instance_noise_std": 0.2},
    "strong+d_dropout_0.3": {**STRONG, "model.init_args.d_dropout": 0.3},
    "strong+d_width_0.25": {**STRONG, "model.init_args.d_width": 0.25},
    "strong+d_lr_2e-4": {**STRONG, "model.init_args.d_lr": 2e-4},
    "strong+d_steps_1": {**STRONG, "model.init_args.d_steps": 1},
    "strong+r1_gamma_1": {**STRONG, "model.init_args.r1_gamma": 1.0},
}
COMMAND = ["${env}", "genlab", "fit", "-c", "configs/dcgan_mnist.yaml", "${args}"]
KEYS = ["quality/fid", "quality/fid_floor", "quality/classes_covered", "quality/min_class_share",
        "quality/max_class_share", "quality/confident_fraction", "train/d_real", "train/d_fake_before", "g_steps",
        "wall_s"]


def g_steps(run_dir: Path, params: dict) -> int | None:
    """Generator updates made: Lightning's global_step counts every optimizer step, d_steps + g_steps per batch."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    d_steps = params.get("model.init_args.d_steps", 1)
    return json.loads(path.read_text()).get("global_step", 0) // (d_steps + 1)


def report(out: Path, dest: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.io import decode_image

    rows = {r["run"]: r for r in collect(out)[0]}
    for name, r in rows.items():
        r["g_steps"] = g_steps(out / name, VARIANTS.get(name, {}))
    order = [v for v in VARIANTS if v in rows]
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "results.csv", "w", newline="") as f:
        knobs = sorted({k for v in order for k in VARIANTS[v]})
        writer = csv.writer(f)
        writer.writerow(["variant", *[k.split(".")[-1] for k in knobs], *KEYS])
        for v in order:
            writer.writerow([v, *[VARIANTS[v].get(k, "") for k in knobs], *[rows[v].get(k, "") for k in KEYS]])
    floor = next((rows[v]["quality/fid_floor"] for v in order if "quality/fid_floor" in rows[v]), None)
    lines = ["| variant | FID | FID / floor | classes >= 5% | min share | max share | confident | D(x) | D(G(z)) "
             "| G steps | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in order:
        r = rows[v]
        ratio = r["quality/fid"] / r["quality/fid_floor"] if "quality/fid" in r and r.get("quality/fid_floor") else float("nan")
        lines.append(f"| {v} | {r.get('quality/fid', float('nan')):.2f} | {ratio:.1f} | "
                     f"{r.get('quality/classes_covered', float('nan')):.0f} | {r.get('quality/min_class_share', float('nan')):.3f} | "
                     f"{r.get('quality/max_class_share', float('nan')):.3f} | {r.get('quality/confident_fraction', float('nan')):.3f} | "
                     f"{r.get('train/d_real', float('nan')):.3f} | {r.get('train/d_fake_before', float('nan')):.3f} | "
                     f"{r.get('g_steps') or 0} | {r['wall_s']:.0f} |")
    (dest / "summary.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(range(len(order)), [rows[v].get("quality/fid", 0) for v in order], color="tab:blue")
    if floor:
        ax.axhline(floor, color="k", ls="--", lw=1, label=f"real-data floor ({floor:.2f})")
        ax.legend()
    ax.set_xticks(range(len(order)), order, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("FID (genlab classifier features)")
    ax.set_title("FID after equal wall time (lower is better)")
    fig.savefig(dest / "fid.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    weakened = [v for v in order if v.startswith("strong+")]
    best = min(weakened, key=lambda v: rows[v].get("quality/fid", float("inf"))) if weakened else None
    panels = [v for v in ("strong", best) if v in rows]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3), sharey=True, squeeze=False)
        for ax, v in zip(axes[0], panels, strict=False):
            for key, label in (("train/d_real", "D(x)"), ("train/d_fake_before", "D(G(z))")):
                points = rows[v]["_history"].get(key, [])
                ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
            ax.set_title(v)
            ax.set_xlabel("optimizer step (D and G)")
            ax.legend()
        axes[0][0].set_ylabel("mean D output (probability)")
        fig.savefig(dest / "d_outputs.png", dpi=110, bbox_inches="tight")
        plt.close(fig)

    grids = [(v, out / v / "figures" / "samples_fixed_noise.png") for v in order]
    grids = [(v, p) for v, p in grids if p.is_file()]
    if grids:
        cols = min(5, len(grids))
        rows_n = (len(grids) + cols - 1) // cols
        fig, axes = plt.subplots(rows_n, cols, figsize=(3 * cols, 3.3 * rows_n), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (v, path) in zip(axes.flat, grids, strict=False):
            ax.imshow(decode_image(str(path)).permute(1, 2, 0).numpy())
            ax.set_title(v, fontsize=8)
        fig.savefig(dest / "grids.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    return {v: {k: rows[v].get(k) for k in KEYS} for v in order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.5, help="training wall time per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="runs/sweeps/discriminator_strength")
    parser.add_argument("--report", default="reports/discriminator_strength")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.minutes > 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    seconds = round(args.minutes * 60)
    budget = {"trainer.max_time": f"00:00:{seconds // 60:02d}:{seconds % 60:02d}"}
    if not args.report_only:
        jobs = [({**budget, **VARIANTS[v]}, out / v) for v in args.variants]
        execute(COMMAND, jobs)
    print(json.dumps(report(out, Path(args.report))))


if __name__ == "__main__":
    main()
