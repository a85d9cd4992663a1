"""English -> Spanish: the transformer, the GRU encoder-decoder and the decoder-only baseline, each trained for
the same wall time on the prepared Bible corpus, then scored on the held-out books.

    genlab data bible-eng-spa --out DIR                    # once
    python scripts/bench_translation.py --data DIR [--models transformer gru decoder_only] [--minutes 30]
    python scripts/bench_translation.py --models transformer --set model.init_args.n_enc_layer=3 \
        model.init_args.n_dec_layer=3                      # a variant: its own row, beside the config's
    python scripts/bench_translation.py --table-only       # re-render the table and the curve
    python scripts/bench_translation.py --models transformer --screen 5 --set ...   # a variant's first 5 minutes

Each model: (1) `fit` as `genlab fit -c configs/translate_eng_spa[_gru|_decoder_only].yaml` would, for --minutes of
wall time (validation included: it is part of the run), recording validation BLEU/chrF (greedy, the config's
val_bleu_sentences) against minutes of training; (2) the test books with the final weights: corpus sacreBLEU (13a)
and chrF, greedy and beam search. One JSON line per model goes to OUT/bench.jsonl as soon as it is measured (a
rerun skips models already measured with the same settings, so an interrupted campaign resumes); OUT/bench.md
(the table) and OUT/val_bleu.png (the curves) are rebuilt from that file. The LAST line printed is the last
model's JSON. train_tokens_per_s counts the non-padding source + target tokens of the batches trained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: this machine is shared

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"transformer": "translate_eng_spa.yaml", "gru": "translate_eng_spa_gru.yaml",
           "decoder_only": "translate_eng_spa_decoder_only.yaml"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget per model (default 30)")
    p.add_argument("--data", default=None, help="the prepared corpus folder (default: the config's)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--root", default="runs/bench_translation", help="run folders: ROOT/<model>/")
    p.add_argument("--out", default=str(REPO / "reports" / "translation"), help="bench.jsonl, bench.md, val_bleu.png")
    p.add_argument("--rerun", action="store_true", help="measure again models already in bench.jsonl")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for a variant (e.g. model.init_args.n_enc_layer=3): its own row and curve")
    p.add_argument("--table-only", action="store_true", help="only re-render bench.md and val_bleu.png")
    p.add_argument("--screen", type=float, default=None, metavar="M",
                   help="a quick look: the same run (its schedule spans --minutes) stopped after the first validation "
                        "at >= M minutes; no test; the curve goes to OUT/screens.jsonl")
    args = p.parse_args(argv)
    import yaml

    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not key or not eq:
            p.error(f"--set {item!r}: write KEY=VALUE, e.g. model.init_args.n_enc_layer=3")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            p.error(f"--set {item!r}: the value is not YAML ({e})")
    args.set = overrides
    return args


def label(model: str, overrides: dict | None) -> str:
    """The table's name of a measured variant: the model, then each override's last key and value."""
    return " ".join([model, *(f"{k.split('.')[-1]}={v}" for k, v in (overrides or {}).items())])


def depth(r: dict) -> str:
    """A row's layers as the table shows them: encoder + decoder ("1+3"), or the decoder-only's one stack ("4")."""
    layers = r.get("layers") or [r.get("set", {}).get(f"model.init_args.n_{side}_layer") for side in ("enc", "dec")]
    if None in layers:
        return "?"
    return str(sum(layers)) if r["model"] == "decoder_only" else f"{layers[0]}+{layers[1]}"


def shown(r: dict) -> str:
    """A row's name in the table and the picture: the model, its layers, then any other --set override."""
    layers, keys = depth(r), ("model.init_args.n_enc_layer", "model.init_args.n_dec_layer")
    rest = {k: v for k, v in (r.get("set") or {}).items() if layers == "?" or k not in keys}
    return label(f"{r['model']}" + ("" if layers == "?" else f" {layers}"), rest)


def settings(args, model: str) -> dict:
    """What must match for a measured row to count as this run's (resume): the same machine included, since
    figures from two CPUs never share a table."""
    from genlab.hardware import cpu_info

    cpu = cpu_info()
    return {"model": model, "config": f"configs/{CONFIGS[model]}", "minutes": args.minutes,
            "data": args.data, "threads": args.threads, "cpu": cpu["cpu"], "cpu_flags": cpu["cpu_flags"],
            **({"set": args.set} if args.set else {})}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def measure(args, model_name: str) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import Timer

    from genlab import launch
    from genlab.hardware import hardware_fields
    from genlab.nets.seq2seq import PAD

    class Measure(pl.Callback):
        """Tokens trained, and each validation's scores against minutes of training (the Timer's clock)."""

        def __init__(self):
            self.tokens, self.curve = 0, []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.tokens += int(sum((part != PAD).sum() for part in batch))

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
            m = trainer.callback_metrics
            self.curve.append({"minutes": round(timer.time_elapsed("train") / 60, 2), "step": trainer.global_step,
                               **{k.split("/")[1]: round(float(m[k]), 4) for k in ("val/loss", "val/bleu", "val/chrf")
                                  if k in m}})
            if args.screen is not None and self.curve[-1]["minutes"] >= args.screen:
                trainer.should_stop = True  # a screen: the schedule is the full run's, cut short

    measured = Measure()
    folder = Path(args.root) / (label(model_name, args.set).replace(" ", "_") + ("_screen" if args.screen else ""))
    overrides = {**args.set, "trainer.max_time": launch.max_time(args.minutes), "trainer.default_root_dir": str(folder),
                 "trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.enable_progress_bar": False,
                 "overwrite_run": True}
    if args.data:
        overrides["data.init_args.path"] = args.data
    start = time.perf_counter()
    run = launch.fit([REPO / "configs" / CONFIGS[model_name]], overrides, callbacks=[measured])
    trainer, model, data = run.trainer, run.model, run.datamodule
    wall = next(c for c in trainer.callbacks if isinstance(c, Timer)).time_elapsed("train")
    fit_s = time.perf_counter() - start
    row = {"model": model_name, **({"set": args.set} if args.set else {}), "steps": trainer.global_step,
           "wall_s": round(wall, 1), "train_tokens_per_s": round(measured.tokens / wall, 1), **hardware_fields(),
           "precision": str(trainer.precision), "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
           "layers": [model.hparams.n_enc_layer, model.hparams.n_dec_layer], "epochs": round(trainer.current_epoch + 0.0, 2),
           "fit_s": round(fit_s, 1), "curve": measured.curve, "settings": settings(args, model_name)}
    if args.screen is not None:
        return {**row, "screen_minutes": args.screen}
    ckpt = folder / "bench.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # with the optimizer (resumable); unstated, Lightning logs its default

    evaluator = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                           devices=1, default_root_dir=str(folder))
    val = evaluator.validate(model, datamodule=data, verbose=False)[0]
    t = time.perf_counter()
    test = evaluator.test(model, datamodule=data, verbose=False)[0]
    return {
        **row,
        "val_loss": round(val["val/loss"], 4),
        "test_bleu": round(test["test/bleu"], 2),
        "test_chrf": round(test["test/chrf"], 2),
        "test_bleu_beam": round(test["test/bleu_beam"], 2),
        "test_chrf_beam": round(test["test/chrf_beam"], 2),
        "test_eval_s": round(time.perf_counter() - t, 1),
        "test_pairs": len(data.test_pairs),
        "beam": model.hparams.test_beam,
        "bleu_signature": getattr(model, "signatures", {}).get("bleu"),
        "chrf_signature": getattr(model, "signatures", {}).get("chrf"),
        "examples": [list(r) for r in getattr(model, "test_rows", [])[:8]],
        "checkpoint": str(ckpt),
    }


def latest(rows: list[dict]) -> dict[str, dict]:
    """Each variant's latest row (model and --set overrides: label()) measured on the machine of the latest row
    (rows from other CPUs stay in the JSONL file but never share a table or a picture with these), the
    configs' own rows first."""
    if not rows:
        return {}
    machine = (rows[-1]["cpu"], rows[-1].get("cpu_flags"))
    last = {label(r["model"], r.get("set")): r for r in rows if (r["cpu"], r.get("cpu_flags")) == machine}
    return dict(sorted(last.items(), key=lambda kv: (bool(kv[1].get("set")), list(CONFIGS).index(kv[1]["model"]))))


def render(rows: list[dict], out: Path) -> None:
    """bench.md (one row per model, its latest measurement) and val_bleu.png (validation BLEU against minutes)."""
    last = latest(rows)
    if not last:
        return
    lines = ["# English -> Spanish: three translators, equal wall time", "",
             "Made by `python scripts/bench_translation.py` (reports/translation/bench.jsonl holds every figure).",
             "Held-out books (test split of `genlab data bible-eng-spa`); corpus sacreBLEU (13a) and chrF.", "",
             "| model (layers) | params (M) | minutes | steps | tokens/s | val loss | BLEU | chrF | BLEU beam | chrF beam |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in last.values():
        lines.append(f"| {shown(r)} | {r['params_m']} | {r['wall_s'] / 60:.1f} | {r['steps']} | "
                     f"{r['train_tokens_per_s']:.0f} | {r['val_loss']:.3f} | {r['test_bleu']:.1f} | {r['test_chrf']:.1f} | "
                     f"{r['test_bleu_beam']:.1f} | {r['test_chrf_beam']:.1f} |")
    machines = sorted({f"{r['cpu']} ({', '.join(r.get('cpu_flags') or []) or 'no flags read'}), "
                       f"{r['settings']['threads']} threads, precision {r['precision']}" for r in last.values()})
    signatures = sorted({r["bleu_signature"] for r in last.values() if r.get("bleu_signature")})
    variants = [f"{name}: `--models {r['model']} --set {' '.join(f'{k}={v}' for k, v in r['set'].items())}`"
                for name, r in last.items() if r.get("set")]
    lines += ["", *(["Variants of a config (measured with these options): " + "; ".join(variants) + "."] if variants else []),
              "Machine: " + "; ".join(machines) + ".", *(f"BLEU signature: `{s}`." for s in signatures), ""]
    (out / "bench.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in last.values():
        points = [(p["minutes"], p["bleu"]) for p in r["curve"] if "bleu" in p]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", linestyle="--" if r.get("set") else "-",
                    label=f"{shown(r)} (test {r['test_bleu']:.1f})")
    ax.set_xlabel("minutes of training (2 CPU cores)")
    ax.set_ylabel("validation BLEU (greedy)")
    ax.set_title("English -> Spanish, held-out books")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "val_bleu.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "bench.jsonl"
    result = None
    if not args.table_only:
        from genlab.models.base import flush_denormals

        flush_denormals()
        for name in args.models:
            if args.screen is not None:
                result = measure(args, name)
                with (out / "screens.jsonl").open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(json.dumps(result), flush=True)
                continue
            done = [r for r in read_rows(jsonl) if r.get("settings") == settings(args, name)]
            if done and not args.rerun:
                print(f"{name}: measured already ({jsonl}); --rerun to measure again", flush=True)
                continue
            result = measure(args, name)
            with jsonl.open("a") as f:
                f.write(json.dumps(result) + "\n")
            render(read_rows(jsonl), out)
            print(json.dumps(result), flush=True)
    render(read_rows(jsonl), out)
    print(f"{out / 'bench.md'}, {out / 'val_bleu.png'}: {len(latest(read_rows(jsonl)))} models", file=sys.stderr)
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
