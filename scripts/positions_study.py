"""Learned vs sinusoidal positions in the character LM, at an equal wall-clock budget, and what each does past the
context it was trained on.

    python scripts/positions_study.py [--minutes 5] [--seeds 0 1]
    python scripts/positions_study.py --report-only      # redraw from finished runs

Each run is configs/lm_shakespeare.yaml through genlab.launch (the `genlab fit` path) with only
`model.init_args.positional` and the seed changed, for --minutes of training (the learning rate follows the
clock, as in the default); validation on 10 batches every 100 steps gives the curves, and the whole validation
split is scored once at the end. Then, past the context: the validation text cut into windows of TWICE the
trained block_size, the loss at every position. A learned table has no row for a position it never saw, so the
learned model stops at block_size (generation slides its window instead); sinusoidal positions are a formula,
so the same weights can be run on the longer windows, and the figure shows whether that helps or hurts.

Writes reports/lm/positions.json, positions.md and positions.png (validation loss against steps; loss against
position) and prints one JSON line: per positional kind, the final validation losses and their mean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: this machine is shared

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("learned", "sinusoidal")


def train(kind: str, seed: int, minutes: float, root: Path, extra: list[str]) -> None:
    from genlab import launch
    from genlab.callbacks.text_samples import TextSamplesCallback

    run = launch.build([ROOT / "configs" / "lm_shakespeare.yaml"], {
        "model.init_args.positional": kind, "seed_everything": seed, "trainer.default_root_dir": str(root),
        "trainer.max_time": launch.max_time(minutes), "trainer.val_check_interval": 100,
        "trainer.limit_val_batches": 10, "trainer.enable_progress_bar": False,
        **dict(item.split("=", 1) for item in extra),
    })
    # samples are not part of the comparison; they would only take training time
    run.trainer.callbacks[:] = [c for c in run.trainer.callbacks if not isinstance(c, TextSamplesCallback)]
    run.fit()


def loss_by_position(gpt, ids, length: int, batch: int = 8):
    """Mean cross-entropy (nats) at each position 0 .. length-1 over non-overlapping windows of the text."""
    import torch
    import torch.nn.functional as F

    n = (len(ids) - 1) // length
    starts = torch.arange(n) * length
    total = torch.zeros(length, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, n, batch):
            offsets = starts[i : i + batch, None] + torch.arange(length + 1)
            chunk = ids[offsets].long()
            logits = gpt(chunk[:, :-1])[0]
            ce = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
            total += ce.double().sum(0)
    return (total / n).tolist()


def measure(root: Path) -> dict:
    """Full validation loss, the validation history, and the loss by position in and past the trained context."""
    import pytorch_lightning as pl

    from genlab.checkpoints import load_module
    from genlab.console import quiet_third_party
    from genlab.data import CharTextDataModule
    from genlab.nets.gpt import GPT, GPTConfig

    quiet_third_party()
    lm = load_module(root / "checkpoints" / "last.ckpt")
    data = CharTextDataModule(block_size=lm.config.block_size)  # the default corpus, as the runs trained on
    data.setup("validate")
    val = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, precision="32-true",
                     accelerator="cpu", devices=1).validate(lm, datamodule=data, verbose=False)[0]
    summary = json.loads((root / "summary.json").read_text())
    block = lm.config.block_size
    gpt = lm.model
    if lm.config.positional == "sinusoidal":  # the same weights on windows twice as long (pe is recomputed)
        longer = GPT(GPTConfig(**{**vars(lm.config), "block_size": 2 * block}))
        longer.load_state_dict(gpt.state_dict())
        gpt, length = longer.eval(), 2 * block
    else:
        length = block
    by_pos = loss_by_position(gpt, data.val_dataloader().dataset.ids, length)
    # summaries written before RunSummary left out stale values repeat the last validation at each epoch's end
    history = [p for i, p in enumerate(summary["history"].get("val/loss", []))
               if i == 0 or p[1] != summary["history"]["val/loss"][i - 1][1]]
    return {"val_loss": round(val["val/loss"], 4), "steps": summary["global_step"], "wall_s": round(summary["wall_s"], 1),
            "history": history, "loss_by_position": [round(x, 4) for x in by_pos],
            "block_size": block}


def mean(xs):
    return sum(xs) / len(xs)


def report(results: dict, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "positions.json").write_text(json.dumps(results, indent=1) + "\n")
    colors = {"learned": "tab:blue", "sinusoidal": "tab:orange"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, r in results["runs"].items():
        kind = name.split("_seed")[0]
        h = r["history"]
        ax1.plot([p[0] for p in h], [p[1] for p in h], ".-", color=colors[kind], lw=1.2, label=name)
    for kind in KINDS:  # mean over seeds, smoothed over 8 positions (each position is a mean over ~200 windows)
        curves = [r["loss_by_position"] for n, r in results["runs"].items() if n.startswith(kind)]
        if curves:
            avg = [mean(col) for col in zip(*curves, strict=True)]
            smooth = [mean(avg[max(0, i - 7) : i + 1]) for i in range(len(avg))]
            ax2.plot(range(len(smooth)), smooth, color=colors[kind], lw=1.2, label=f"{kind} (mean of {len(curves)})")
    block = next(iter(results["runs"].values()))["block_size"]
    ax1.set(xlabel="optimizer step", ylabel="validation loss (nats/char, 10 batches)", title="Validation loss")
    ax1.legend(fontsize=8)
    ax2.set(xlabel="position in the window", ylabel="loss (nats/char)", title="Loss at each position",
            ylim=(0.9, 4.0))
    ax2.axvline(block, color="k", ls="--", lw=1)
    ax2.text(block, 3.9, " end of the trained context", va="top", fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"configs/lm_shakespeare.yaml, {results['minutes']:g} minutes per run, {results['cpu']}", fontsize=9)
    fig.savefig(out / "positions.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    lines = ["| run | steps | val loss (whole split) | loss at 0-15 | 128-255 | 256-383 | 384-511 |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        lp = r["loss_by_position"]
        cell = [f"{mean(lp[a:b]):.3f}" if len(lp) >= b else "no position" for a, b in
                ((0, 16), (128, 256), (256, 384), (384, 512))]
        lines.append(f"| {name} | {r['steps']} | {r['val_loss']:.4f} | " + " | ".join(cell) + " |")
    (out / "positions.md").write_text("\n".join(lines) + "\n")
    return {kind: {"val_loss": [r["val_loss"] for n, r in results["runs"].items() if n.startswith(kind)],
                   "mean": round(mean([r["val_loss"] for n, r in results["runs"].items() if n.startswith(kind)]), 4)}
            for kind in KINDS if any(n.startswith(kind) for n in results["runs"])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="training wall time per run (default 5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--root", default="runs/positions", help="folder of the runs")
    p.add_argument("--out", default=str(ROOT / "reports" / "lm"), help="folder of the report")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more `genlab fit` settings for every run, e.g. model.init_args.n_layer=2")
    p.add_argument("--report-only", action="store_true", help="measure and redraw finished runs; train nothing")
    args = p.parse_args(argv)
    if not args.minutes > 0:
        p.error(f"--minutes must be > 0, got {args.minutes}")
    if bad := [item for item in args.set if "=" not in item]:
        p.error(f"--set takes KEY=VALUE, got {bad[0]!r}")
    from genlab.hardware import hardware_fields

    results = {"minutes": args.minutes, **hardware_fields(), "runs": {}}
    for kind in KINDS:
        for seed in args.seeds:
            name = f"{kind}_seed{seed}"
            root = Path(args.root) / name
            if not args.report_only and not (root / "summary.json").is_file():
                train(kind, seed, args.minutes, root, args.set)
            if (root / "summary.json").is_file():
                results["runs"][name] = measure(root)
                print(f"{name}: val loss {results['runs'][name]['val_loss']}", flush=True)
    if not results["runs"]:
        print("positions_study: no finished runs to report", file=sys.stderr)
        return 2
    print(json.dumps(report(results, Path(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
