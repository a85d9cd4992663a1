"""A baseline without cross-attention: a decoder-only transformer on the concatenated pair `source BOS target EOS`.

    python scripts/baseline_seq2seq_decoder_only.py [--minutes 6] [--threads 2]

The same data (the built-in dates corpus with the config's sizes and seed), the same width, depth (encoder +
decoder layers of the config, as one causal stack), optimizer, schedule and wall-clock budget as
configs/seq2seq_dates.yaml; the loss is on the target part only. Scored like the Translator: greedy decoding,
exact match and sacreBLEU corpus BLEU on the test pairs. The LAST line printed is one JSON object.
A plain torch loop (no Lightning) because it is a one-off comparison, not a genlab model: the network is the
translator's own layers (genlab.nets.seq2seq.EncoderLayer) under the shared causal mask, the schedule and the
weight-decay groups are genlab.optim's, the scores genlab.metrics.translation's.
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
from genlab.nets.seq2seq import BOS, EOS, PAD, EncoderLayer, Seq2SeqConfig  # noqa: E402
from genlab.nets.transformer import causal_mask  # noqa: E402
from genlab.optim import warmup_cosine, weight_decay_groups  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class DecoderOnly(nn.Module):
    """Embeddings + learned positions + causal self-attention layers (genlab's EncoderLayer under a causal mask)."""

    def __init__(self, cfg: Seq2SeqConfig, n_layer: int, max_len: int):
        super().__init__()
        self.emb, self.pos = nn.Embedding(cfg.src_vocab_size, cfg.d_model), nn.Embedding(max_len, cfg.d_model)
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.src_vocab_size, bias=False)
        self.head.weight = self.emb.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x):
        h = self.emb(x) + self.pos(torch.arange(x.size(1)))
        mask = causal_mask(x.size(1), x.size(1))
        for layer in self.layers:
            h = layer(h, mask)
        return self.head(self.ln(h))


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
    seqs = [torch.tensor([*vocab.encode(s), BOS, *vocab.encode(t), EOS]) for s, t in train]
    src_lens = torch.tensor([len(s) for s, _ in train])
    max_len = max(len(s) for s in seqs) + 2
    cfg = Seq2SeqConfig(vocab.size, vocab.size, m["d_model"], m["n_head"], 1, 1, None, m["dropout"])
    n_layer = m["n_enc_layer"] + m["n_dec_layer"]
    net = DecoderOnly(cfg, n_layer, max_len)
    params = list(net.parameters())
    opt = torch.optim.AdamW(weight_decay_groups(params, m["weight_decay"]), lr=m["learning_rate"], betas=(0.9, 0.98))
    batch, peak, warm, lo = d["batch_size"], m["learning_rate"], m["warmup_steps"], m["learning_rate"] * m["min_lr_ratio"]
    start, step, tokens = time.perf_counter(), 0, 0
    net.train()
    while (elapsed := time.perf_counter() - start) < budget:
        lr = warmup_cosine(step, peak, warm, elapsed / budget, floor=lo)  # the translator's curve, by the clock
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(seqs), (batch,))
        x = nn.utils.rnn.pad_sequence([seqs[i] for i in idx], batch_first=True, padding_value=PAD)
        inp, tgt = x[:, :-1], x[:, 1:].clone()
        pos = torch.arange(tgt.size(1))[None]
        tgt[pos < src_lens[idx][:, None]] = PAD  # no loss on predicting the source: only the target part
        loss = F.cross_entropy(net(inp).reshape(-1, vocab.size), tgt.reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step, tokens = step + 1, tokens + int((x != PAD).sum())
    wall = time.perf_counter() - start

    net.eval()
    hyps = []
    with torch.no_grad():
        for s, _ in test:  # one at a time: sources differ in length
            ys = torch.tensor([[*vocab.encode(s), BOS]])
            n0 = ys.size(1)
            while ys.size(1) < max_len:
                logits = net(ys)[:, -1]
                logits[:, [PAD, BOS]] = float("-inf")
                nxt = logits.argmax(-1, keepdim=True)
                ys = torch.cat([ys, nxt], dim=1)
                if int(nxt) == EOS:
                    break
            hyps.append(vocab.decode(ys[0, n0:].tolist()))
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
