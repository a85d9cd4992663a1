"""An encoder-decoder transformer for translation, in plain torch (no Lightning).

Layout of this file:
  PAD, BOS, EOS              the special token ids shared by both sides (characters start at N_SPECIAL)
  Seq2SeqConfig              sizes and switches of the network
  MultiHeadAttention         (query, value, key=None, mask): key defaults to value, as in Keras; .weights
  EncoderLayer, DecoderLayer, Seq2Seq   the modules; Seq2Seq.generate (greedy / sampling), .beam_search and
                             .cross_attention_maps
The attention maths, masks, KV cache, positions and sampling rules are genlab.nets.transformer's, shared with
the GPT.

The encoder's self-attention is bidirectional (every source position sees every non-padding source position).
The decoder's self-attention is causal; its cross-attention takes its queries from the target side and its keys
and values from the encoder's outputs, so target position t sees every source position but no target position
after t. Pre-LayerNorm blocks, as in the LM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genlab.nets.transformer import (
    KVCache,
    LayerKV,
    attention_weights,
    causal_mask,
    check_config,
    check_sampling_args,
    merge_heads,
    sample_next,
    sinusoidal_positions,
    split_heads,
)

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
        check_config(self, "d_model", ("src_vocab_size", "tgt_vocab_size", "d_model", "n_head", "n_enc_layer",
                                       "n_dec_layer", "max_src_len", "max_tgt_len"))
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model


class MultiHeadAttention(nn.Module):
    """Multi-head attention over explicit Q, K, V projections: softmax(Q K^T / sqrt(d)) V per head.

    forward(query, value, key=None, mask=None): the queries come from `query`, the keys from `key` and the
    values from `value`; an omitted key is the value (Keras' convention), so self-attention is
    `attn(x, value=x)` and cross-attention `attn(x, value=memory)`.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.n_head = n_head
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def project_kv(self, value: torch.Tensor, key: torch.Tensor | None = None):
        """The heads' keys and values [B, H, Tk, D] of a key/value sequence (computed once for a cached memory)."""
        key = value if key is None else key
        return split_heads(self.k_proj(key), self.n_head), split_heads(self.v_proj(value), self.n_head)

    def weights(self, query, value=None, key=None, mask=None, kv=None) -> torch.Tensor:
        """The attention weights [B, H, Tq, Tk] that forward applies (same arguments)."""
        k = kv[0] if kv is not None else self.project_kv(value, key)[0]
        return attention_weights(split_heads(self.q_proj(query), self.n_head), k, mask)

    def forward(self, query, value=None, key=None, mask=None, kv=None) -> torch.Tensor:
        """query [B, Tq, C], value/key [B, Tk, C] (or `kv`, already projected heads) -> [B, Tq, C].

        mask: boolean, broadcastable to [B, H, Tq, Tk], True where a query may attend a key.
        """
        q = split_heads(self.q_proj(query), self.n_head)
        k, v = kv if kv is not None else self.project_kv(value, key)
        y = self.dropout(attention_weights(q, k, mask)) @ v
        return self.out_proj(merge_heads(y))


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
        x = x + self.drop(self.attn(h, value=h, mask=src_mask))
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

    def attend_self(self, x, kv: LayerKV | None = None):
        """x + causal self-attention; with `kv`, x holds the positions after those cached there."""
        h = self.ln1(x)
        if kv is None:
            return x + self.drop(self.self_attn(h, value=h, mask=causal_mask(x.size(1), x.size(1), x.device)))
        k, v = kv.update(*self.self_attn.project_kv(h))
        return x + self.drop(self.self_attn(h, kv=(k, v), mask=causal_mask(x.size(1), k.size(-2), x.device)))

    def forward(self, x, memory, src_mask, kv: LayerKV | None = None):
        x = self.attend_self(x, kv)
        if kv is not None and kv.memory is None:
            kv.memory = self.cross.project_kv(memory)
        memory_kv = None if kv is None else kv.memory
        x = x + self.drop(self.cross(self.ln2(x), value=memory, mask=src_mask, kv=memory_kv))
        return x + self.ff(self.ln3(x))

    def cross_weights(self, x, memory, src_mask) -> torch.Tensor:
        """The cross-attention weights [B, H, T, S] that forward applies to x."""
        return self.cross.weights(self.ln2(self.attend_self(x)), value=memory, mask=src_mask)


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

    def embed_target(self, tgt: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.drop(self.tgt_emb(tgt) + self._positions("tgt", start, tgt.size(1), tgt.device))

    def decode(self, tgt: torch.Tensor, memory, src_mask, cache: KVCache | None = None) -> torch.Tensor:
        """tgt [B, T] (with a cache: the positions after those cached) -> logits [B, T, V]."""
        x = self.embed_target(tgt, cache.length if cache is not None else 0)
        for layer, kv in zip(self.decoder, cache.layers if cache is not None else [None] * len(self.decoder),
                             strict=True):
            x = layer(x, memory, src_mask, kv)
        return self.head(self.dec_ln(x))

    def forward(self, src, tgt) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        return self.decode(tgt, memory, src_mask)

    @torch.no_grad()
    def cross_attention_maps(self, src, tgt) -> list[torch.Tensor]:
        """Each decoder layer's cross-attention weights [B, H, T, S] when it reads tgt [B, T] for src [B, S]."""
        memory, src_mask = self.encode(src)
        x, maps = self.embed_target(tgt), []
        for layer in self.decoder:
            maps.append(layer.cross_weights(x, memory, src_mask))
            x = layer(x, memory, src_mask)
        return maps

    # --- decoding

    def _step_logits(self, ys, memory, src_mask, cache):
        """Logits [B, V] for the next token after ys [B, t]; with a cache only the newest token is fed.
        PAD and BOS are never targets, so they are never chosen (an untrained model would otherwise emit them)."""
        logits = self.decode(ys if cache is None else ys[:, cache.length :], memory, src_mask, cache)[:, -1]
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
        cache = KVCache(len(self.decoder), self.config.max_tgt_len) if use_cache else None
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
        cache = KVCache(len(self.decoder), self.config.max_tgt_len) if use_cache else None
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


__all__ = ["PAD", "BOS", "EOS", "N_SPECIAL", "Seq2SeqConfig", "MultiHeadAttention", "EncoderLayer", "DecoderLayer",
           "Seq2Seq"]
