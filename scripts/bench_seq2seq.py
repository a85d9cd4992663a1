"""Train the date translator for the config's wall-clock budget, then measure it: BLEU, exact match, speed.

    python scripts/bench_seq2seq.py [--config configs/seq2seq_dates.yaml] [--minutes M] [--threads 2]

Steps: (1) `fit` as `genlab fit` would (the config's max_time unless --minutes, validation every epoch
included in the budget), (2) validation loss, (3) the test split: corpus BLEU (sacreBLEU) and exact match,
greedy and by beam search, (4) greedy decoding speed, one sentence at a time, with and without the KV cache (the
two must give the same translations), (5) the cross-attention picture of the config's example, written to
--figures. The LAST line printed is one JSON object with the figures.
train_tokens_per_s counts source + target characters (with BOS/EOS) of the training pairs seen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: this machine is shared

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def decode_speed(model, sources: list[str], use_cache: bool) -> tuple[float, list[str]]:
    """Greedy output tokens (EOS included) per second, one sentence at a time."""
    model.translate(sources[:2], use_cache=use_cache)  # warm-up
    t, tokens, outs = time.perf_counter(), 0, []
    for s in sources:
        out = model.translate(s, use_cache=use_cache)
        outs.append(out)
        tokens += len(out) + 1
    return tokens / (time.perf_counter() - t), outs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "seq2seq_dates.yaml"))
    p.add_argument("--minutes", type=float, default=None, help="training budget (default: the config's max_time)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--root", default="runs/bench_seq2seq", help="run folder: the genlab run (checkpoints/, summary.json) plus bench.ckpt, bench.json")
    p.add_argument("--figures", default=None, help="folder for the cross-attention picture (default: the run folder)")
    p.add_argument("--decode-sentences", type=int, default=200, help="test sources timed for decoding speed")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override model init_args (probes), e.g. d_model=96; data.batch_size=64 for the data")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from genlab.models.base import flush_denormals

    flush_denormals()

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import Timer

    from genlab import launch
    from genlab.figures.seq2seq import cross_attention_figure
    from genlab.hardware import hardware_fields
    from genlab.reporting import save_figure

    overrides = launch.init_args(args.set)
    if args.minutes is not None:
        overrides["trainer.max_time"] = launch.max_time(args.minutes)
    root = Path(args.root)
    run = launch.fit([args.config], {  # `genlab fit -c CONFIG` on the CPU, into the bench's run folder
        **overrides, "trainer.default_root_dir": str(root), "trainer.accelerator": "cpu", "trainer.devices": 1,
        "trainer.enable_progress_bar": False, "overwrite_run": True,
    })
    trainer, model, data = run.trainer, run.model, run.datamodule
    precision = str(trainer.precision)
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    wall = timer.time_elapsed("train")
    steps = trainer.global_step
    per_pair = sum(len(s) + len(t) + 2 for s, t in data.train_pairs) / len(data.train_pairs)
    tokens = steps * data.batch_size * per_pair
    ckpt = root / "bench.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # with the optimizer (resumable); unstated, Lightning logs its default

    model.eval()
    evaluator = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                           devices=1, default_root_dir=str(root))
    val = evaluator.validate(model, datamodule=data, verbose=False)[0]
    t = time.perf_counter()
    test = evaluator.test(model, datamodule=data, verbose=False)[0]
    test_s = time.perf_counter() - t

    sources = [s for s, _ in data.test_pairs[: args.decode_sentences]]
    speed_cache, out_cache = decode_speed(model, sources, True)
    speed_plain, out_plain = decode_speed(model, sources, False)

    example = model.hparams.attention_example or data.val_pairs[0][0]
    hyp, weights = model.cross_attention(example)
    figures = Path(args.figures) if args.figures else root
    picture = save_figure(cross_attention_figure(example, hyp, weights), figures / "attention.png")
    examples = [(s, r, g, b) for s, r, g, b in model.test_rows[:10]]

    result = {
        "steps": steps,
        "wall_s": round(wall, 1),
        "train_tokens_per_s": round(tokens / wall, 1),
        "val_loss": round(val["val/loss"], 4),
        "val_exact_match": round(val["val/exact_match"], 4),
        "test_bleu": round(test["test/bleu"], 2),
        "test_exact_match": round(test["test/exact_match"], 4),
        "test_bleu_beam": round(test["test/bleu_beam"], 2),
        "test_exact_match_beam": round(test["test/exact_match_beam"], 4),
        "decode_tokens_per_s_cache": round(speed_cache, 1),
        "decode_tokens_per_s_nocache": round(speed_plain, 1),
        "cache_matches_nocache": out_cache == out_plain,
        **hardware_fields(),
        "precision": precision,
        # context for the figures above
        "epochs": trainer.current_epoch,
        "test_eval_s": round(test_s, 1),
        "test_pairs": len(data.test_pairs),
        "bleu_tokenize": model.hparams.bleu_tokenize,
        "beam": model.hparams.test_beam,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "threads": args.threads,
        "config": str(args.config),
        "overrides": args.set,
        "attention_example": f"{example} -> {hyp}",
        "attention_png": str(picture),
        "checkpoint": str(ckpt),
    }
    print("\ntest examples (source | reference | greedy | beam):")
    for row in examples:
        print(" | ".join(row))
    (root / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.flush()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
