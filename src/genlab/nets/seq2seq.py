"""An encoder-decoder transformer for translation, in plain torch (no Lightning).

Layout of this file:
  PAD, BOS, EOS              the special token ids shared by both sides (characters start at N_SPECIAL)
  Seq2SeqConfig              sizes and switches of the network
  attention_weights          softmax(Q K^T / sqrt(d_k)) with a boolean mask, written out
  MultiHeadAttention         (query, value, key=None, mask): key defaults to value, as in Keras
  DecoderCache               the decoder's self-attention keys/values so far, and the encoder's projected K/V
  EncoderLayer, DecoderLayer, Seq2Seq   the modules; Seq2Seq.generate (greedy / sampling) and .beam_search

The encoder's self-attention is bidirectional (every source position sees every non-padding source position).
The decoder's self-attention is causal; its cross-attention takes its queries from the target side and its keys
and values from the encoder's outputs, so target position t sees every source position but no target position
after t. Pre-LayerNorm blocks, as in the LM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from genlab.nets.gpt import check_sampling_args, sample_next, sinusoidal_positions  # the LM's own semantics

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128
    n_head: int = 4
    n_enc_layer: int = 2
    n_dec_layer: int = 2
    d_ff: int | None = None  # width of the feed-forward layer; None: 4 * d_model
    dropout: float = 0.0
    positional: str = "learned"  # "learned" | "sinusoidal"
    max_src_len: int = 64
    max_tgt_len: int = 32  # target tokens including BOS and EOS

    def __post_init__(self):
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_head", "n_enc_layer", "n_dec_layer",
                     "max_src_len", "max_tgt_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) over the keys; q [..., Tq, D], k [..., Tk, D]; mask True = may attend."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def causal_mask(tq: int, tk: int, device=None) -> torch.Tensor:
    """[Tq, Tk] True where query i (the last Tq of Tk positions) may see key j: j <= Tk - Tq + i."""
    return torch.ones(tq, tk, dtype=torch.bool, device=device).tril(diagonal=tk - tq)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over explicit Q, K, V projections: softmax(Q K^T / sqrt(d)) V per head.

    forward(query, value, key=None, mask=None): the queries come from `query`, the keys from `key` and the
    values from `value`; an omitted key is the value (Keras' convention), so self-attention is
    `attn(x, value=x)` and cross-attention `attn(x, value=memory)`.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, H, T, C / H]"""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def project_kv(self, value: torch.Tensor, key: torch.Tensor | None = None):
        """The heads' keys and values of a key/value sequence (computed once for the encoder's outputs)."""
        key = value if key is None else key
        return self.heads(self.k_proj(key)), self.heads(self.v_proj(value))

    def forward(self, query, value=None, key=None, mask=None, kv=None, need_weights: bool = False):
        """query [B, Tq, C], value/key [B, Tk, C] (or `kv`, already projected heads) -> [B, Tq, C], weights.

        mask: boolean, broadcastable to [B, H, Tq, Tk], True where a query may attend a key.
        weights: [B, H, Tq, Tk] if need_weights, else None.
        """
        q = self.heads(self.q_proj(query))
        k, v = kv if kv is not None else self.project_kv(value, key)
        w = attention_weights(q, k, mask)
        y = self.dropout(w) @ v
        B, _, Tq, _ = y.shape
        y = self.out_proj(y.transpose(1, 2).reshape(B, Tq, -1))
        return y, (w if need_weights else None)


class DecoderCache:
    """What incremental decoding keeps: each decoder layer's self-attention keys and values for the target
    positions fed so far, and its cross-attention keys and values of the encoder's outputs (fixed per source)."""

    def __init__(self, n_layer: int):
        self.self_kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer
        self.cross_kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        old = self.self_kv[layer]
        if old is not None:
            k, v = torch.cat([old[0], k], dim=-2), torch.cat([old[1], v], dim=-2)
        self.self_kv[layer] = (k, v)
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (in that order): beam search's surviving hypotheses."""
        for kvs in (self.self_kv, self.cross_kv):
            for i, kv in enumerate(kvs):
                if kv is not None:
                    kvs[i] = (kv[0].index_select(0, index), kv[1].index_select(0, index))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))


class EncoderLayer(nn.Module):
    """x + self_attn(ln(x)) over every source position (bidirectional), then x + ff(ln(x))."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_head, cfg.dropout)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, src_mask):
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, value=h, mask=src_mask)[0])
        return x + self.ff(self.ln2(x))


class DecoderLayer(nn.Module):
    """x + causal self-attention, then x + cross-attention over the encoder's outputs, then x + ff."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, cfg.dropout)
        self.cross = MultiHeadAttention(cfg.d_model, cfg.n_head, cfg.dropout)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, src_mask, cache: DecoderCache | None = None, layer: int = 0,
                need_weights: bool = False):
        h = self.ln1(x)
        if cache is None:
            self_mask = causal_mask(x.size(1), x.size(1), x.device)
            x = x + self.drop(self.self_attn(h, value=h, mask=self_mask)[0])
            cross_kv = None
        else:
            k, v = cache.append(layer, *self.self_attn.project_kv(h))
            self_mask = causal_mask(x.size(1), k.size(-2), x.device)
            x = x + self.drop(self.self_attn(h, kv=(k, v), mask=self_mask)[0])
            if cache.cross_kv[layer] is None:
                cache.cross_kv[layer] = self.cross.project_kv(memory)
            cross_kv = cache.cross_kv[layer]
        y, weights = self.cross(self.ln2(x), value=memory, mask=src_mask, kv=cross_kv, need_weights=need_weights)
        x = x + self.drop(y)
        return x + self.ff(self.ln3(x)), weights


class Seq2Seq(nn.Module):
    """Source ids [B, S] (PAD-padded) and target ids [B, T] (BOS first) -> next-token logits [B, T, V_tgt]."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        self.src_emb = nn.Embedding(cfg.src_vocab_size, cfg.d_model)
        self.tgt_emb = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model)
        if cfg.positional == "learned":
            self.src_pos = nn.Embedding(cfg.max_src_len, cfg.d_model)
            self.tgt_pos = nn.Embedding(cfg.max_tgt_len, cfg.d_model)
        else:  # fixed, so a buffer rebuilt from the config, not saved
            n = max(cfg.max_src_len, cfg.max_tgt_len)
            self.register_buffer("pe", sinusoidal_positions(n, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.n_enc_layer)])
        self.enc_ln = nn.LayerNorm(cfg.d_model)
        self.decoder = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_dec_layer)])
        self.dec_ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.tgt_vocab_size, bias=False)
        self.head.weight = self.tgt_emb.weight  # tied: the same matrix reads and writes target tokens
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def _positions(self, side: str, start: int, n: int, device) -> torch.Tensor:
        limit = self.config.max_src_len if side == "src" else self.config.max_tgt_len
        if start + n > limit:
            what = "source" if side == "src" else "target"
            raise ValueError(f"{what} of {start + n} tokens is longer than max_{side}_len={limit}")
        if self.config.positional == "learned":
            table = self.src_pos if side == "src" else self.tgt_pos
            return table(torch.arange(start, start + n, device=device))
        return self.pe[start : start + n]

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src [B, S] -> memory [B, S, C] and the source mask [B, 1, 1, S] (True at non-padding positions)."""
        src_mask = (src != PAD)[:, None, None, :]
        x = self.drop(self.src_emb(src) + self._positions("src", 0, src.size(1), src.device))
        for layer in self.encoder:
            x = layer(x, src_mask)
        return self.enc_ln(x), src_mask

    def decode(self, tgt: torch.Tensor, memory, src_mask, cache: DecoderCache | None = None,
               need_weights: bool = False):
        """tgt [B, T] (with a cache: the positions after those cached) -> logits [B, T, V] and, if asked,
        each decoder layer's cross-attention weights [B, H, T, S]."""
        start = cache.length if cache is not None else 0
        x = self.drop(self.tgt_emb(tgt) + self._positions("tgt", start, tgt.size(1), tgt.device))
        weights = []
        for i, layer in enumerate(self.decoder):
            x, w = layer(x, memory, src_mask, cache, i, need_weights)
            weights.append(w)
        if cache is not None:
            cache.length += tgt.size(1)
        return self.head(self.dec_ln(x)), (weights if need_weights else None)

    def forward(self, src, tgt, need_weights: bool = False):
        memory, src_mask = self.encode(src)
        logits, weights = self.decode(tgt, memory, src_mask, need_weights=need_weights)
        return (logits, weights) if need_weights else logits

    # --- decoding

    def _step_logits(self, ys, memory, src_mask, cache):
        """Logits [B, V] for the next token after ys [B, t]; with a cache only the newest token is fed.
        PAD and BOS are never targets, so they are never chosen (an untrained model would otherwise emit them)."""
        if cache is None:
            logits = self.decode(ys, memory, src_mask)[0][:, -1]
        else:
            logits = self.decode(ys[:, cache.length :], memory, src_mask, cache)[0][:, -1]
        return logits.index_fill(-1, torch.tensor([PAD, BOS], device=logits.device), float("-inf"))

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_len: int | None = None, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Target ids [B, <= max_len] (BOS first; EOS then PAD once a row is done), one token at a time.

        temperature 0 is greedy (argmax); otherwise temperature, then top-k, then top-p, then a draw
        (the semantics of `genlab generate`).
        """
        max_len = self.config.max_tgt_len if max_len is None else min(max_len, self.config.max_tgt_len)
        check_sampling_args(max_len, temperature, top_k, top_p)
        memory, src_mask = self.encode(src)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        cache = DecoderCache(len(self.decoder)) if use_cache else None
        while ys.size(1) < max_len and not done.all():
            logits = self._step_logits(ys, memory, src_mask, cache)
            nxt = sample_next(logits, temperature, top_k, top_p, generator).squeeze(1)
            nxt = nxt.masked_fill(done, PAD)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= nxt == EOS
        return ys

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, beam: int = 4, max_len: int | None = None,
                    use_cache: bool = True) -> torch.Tensor:
        """The most likely target found by beam search of width `beam` (score: sum of log-probabilities),
        per source row; ids [B, <= max_len] as generate() returns them. Width 1 is greedy decoding.

        A hypothesis that emits EOS is finished; a source is done when it has `beam` finished hypotheses or
        its best finished one scores at least its best open one (scores only fall as a hypothesis grows).
        """
        if beam < 1:
            raise ValueError(f"beam width must be >= 1, got {beam}")
        max_len = self.config.max_tgt_len if max_len is None else min(max_len, self.config.max_tgt_len)
        B, K, dev = src.size(0), beam, src.device
        memory, src_mask = self.encode(src)
        memory, src_mask = memory.repeat_interleave(K, 0), src_mask.repeat_interleave(K, 0)
        ys = torch.full((B * K, 1), BOS, dtype=torch.long, device=dev)
        scores = torch.full((B, K), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all K rows start identical: only the first is open at the start
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        done = [False] * B
        cache = DecoderCache(len(self.decoder)) if use_cache else None
        while ys.size(1) < max_len and not all(done):
            logp = self._step_logits(ys, memory, src_mask, cache).float().log_softmax(-1)  # [B*K, V]
            V = logp.size(-1)
            cand = (scores[:, :, None] + logp.view(B, K, V)).view(B, K * V)
            top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=-1)
            new_rows, new_tokens, new_scores = [], [], []
            for b in range(B):
                rows, toks, scs = [], [], []
                for s, i in zip(top_scores[b].tolist(), top_idx[b].tolist(), strict=True):
                    if s == float("-inf"):
                        break
                    row, tok = b * K + i // V, i % V
                    if tok == EOS:
                        if not done[b] and len(finished[b]) < K:
                            finished[b].append((s, ys[row, 1:].tolist()))
                    elif len(rows) < K:
                        rows.append(row), toks.append(tok), scs.append(s)
                    if len(rows) == K:
                        break
                if done[b] or not rows:
                    done[b] = True
                    rows, toks, scs = [b * K] * K, [PAD] * K, [float("-inf")] * K
                else:
                    pad = K - len(rows)
                    rows, toks, scs = rows + [rows[0]] * pad, toks + [toks[0]] * pad, scs + [float("-inf")] * pad
                    best_finished = max((f[0] for f in finished[b]), default=float("-inf"))
                    done[b] = len(finished[b]) >= K or best_finished >= scs[0]
                new_rows += rows
                new_tokens += toks
                new_scores.append(scs)
            index = torch.tensor(new_rows, device=dev)
            ys = torch.cat([ys.index_select(0, index), torch.tensor(new_tokens, device=dev)[:, None]], dim=1)
            scores = torch.tensor(new_scores, device=dev)
            if cache is not None:
                cache.reorder(index)
        best = []
        for b in range(B):
            if finished[b]:
                seq = max(finished[b], key=lambda f: f[0])[1] + [EOS]
            else:  # nothing finished within max_len: the best open hypothesis
                seq = ys[b * K + int(scores[b].argmax()), 1:].tolist()
            best.append([BOS] + seq)
        width = max(len(s) for s in best)
        return torch.tensor([s + [PAD] * (width - len(s)) for s in best], dtype=torch.long, device=dev)


__all__ = ["PAD", "BOS", "EOS", "N_SPECIAL", "Seq2SeqConfig", "MultiHeadAttention", "DecoderCache", "Seq2Seq",
           "attention_weights", "causal_mask", "sample_next", "check_sampling_args", "sinusoidal_positions"]
