"""A baseline without cross-attention: genlab's decoder-only translator (genlab.nets.decoder_only) on the dates.

    python scripts/baseline_seq2seq_decoder_only.py [--minutes 6] [--threads 2]

The same data (the built-in dates corpus with the config's sizes and seed), the same width, depth (encoder +
decoder layers of the config, as one causal stack), optimizer, schedule and wall-clock budget as
configs/seq2seq_dates.yaml; the loss is on the target part only. Scored like the Translator: greedy decoding,
exact match and sacreBLEU corpus BLEU on the test pairs. The LAST line printed is one JSON object.
A plain torch loop (no Lightning) because it is a one-off comparison: the network is
build_translation_net("decoder_only", ...), the schedule and the weight-decay groups are genlab.optim's, the
scores genlab.metrics.translation's. (reports/seq2seq's baseline logs were written by this script's earlier
network, which shared one embedding table and numbered target positions after the source's.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

from genlab.data.seq2seq import TokenVocab, date_corpus  # noqa: E402
from genlab.metrics.translation import corpus_bleu, exact_match  # noqa: E402
from genlab.nets.seq2seq import BOS, EOS, PAD, build_translation_net  # noqa: E402
from genlab.optim import warmup_cosine, weight_decay_groups  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def padded(rows: list[list[int]]) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=PAD)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "seq2seq_dates.yaml"))
    p.add_argument("--minutes", type=float, default=None, help="training budget (default: the config's max_time)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = yaml.safe_load(Path(args.config).read_text())
    m, d = config["model"]["init_args"], config["data"]["init_args"]
    if args.minutes is not None:
        budget = args.minutes * 60
    else:
        h, mi, s = (int(x) for x in config["trainer"]["max_time"].split(":")[1:])
        budget = h * 3600 + mi * 60 + s
    train, _, test = date_corpus(d["n_train"], d["n_val"], d["n_test"], config.get("seed_everything", 0))
    vocab = TokenVocab.from_texts(s + t for s, t in train + test)
    srcs = [vocab.encode(s) for s, _ in train]
    tgts = [[BOS, *vocab.encode(t), EOS] for _, t in train]
    max_src = max(len(vocab.encode(s)) for s, _ in train + test)
    max_tgt = max(len(vocab.encode(t)) for _, t in train + test) + 2
    n_layer = m["n_enc_layer"] + m["n_dec_layer"]
    net = build_translation_net("decoder_only", vocab.size, vocab.size, m["d_model"], m["n_head"], m["n_enc_layer"],
                                m["n_dec_layer"], m.get("d_ff"), m["dropout"], m.get("positional", "learned"),
                                max_src, max_tgt)
    params = list(net.parameters())
    opt = torch.optim.AdamW(weight_decay_groups(params, m["weight_decay"]), lr=m["learning_rate"], betas=(0.9, 0.98))
    batch, peak, warm, lo = d["batch_size"], m["learning_rate"], m["warmup_steps"], m["learning_rate"] * m["min_lr_ratio"]
    start, step, tokens = time.perf_counter(), 0, 0
    net.train()
    while (elapsed := time.perf_counter() - start) < budget:
        lr = warmup_cosine(step, peak, warm, elapsed / budget, floor=lo)  # the translator's curve, by the clock
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(srcs), (batch,)).tolist()
        src, tgt = padded([srcs[i] for i in idx]), padded([tgts[i] for i in idx])
        logits = net(src, tgt[:, :-1])  # the target positions only: the loss is on the target part
        loss = F.cross_entropy(logits.reshape(-1, vocab.size), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step, tokens = step + 1, tokens + int((src != PAD).sum() + (tgt != PAD).sum())
    wall = time.perf_counter() - start

    net.eval()
    hyps = []
    for i in range(0, len(test), 256):  # batched: the net masks each source's padding
        ys = net.generate(padded([vocab.encode(s) for s, _ in test[i : i + 256]]))
        hyps += [vocab.decode(row.tolist()) for row in ys]
    refs = [t for _, t in test]
    result = {"model": "decoder-only, no cross-attention", "steps": step, "wall_s": round(wall, 1),
              "train_tokens_per_s": round(tokens / wall, 1), "final_train_loss": round(loss.item(), 4),
              "test_bleu": round(corpus_bleu(hyps, refs, "char"), 2), "test_exact_match": round(exact_match(hyps, refs), 4),
              "params_m": round(sum(q.numel() for q in params) / 1e6, 3), "n_layer": n_layer,
              "test_pairs": len(test), "examples": [[s, t, h] for (s, t), h in zip(test[:5], hyps[:5], strict=True)]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
