"""An encoder-decoder transformer for translation, in plain torch (no Lightning).

Layout of this file:
  PAD, BOS, EOS              the special token ids shared by both sides (characters start at N_SPECIAL), from
                             genlab.nets.decoding
  Seq2SeqConfig              sizes and switches of the network
  MultiHeadAttention         (query, value, key=None, mask): key defaults to value, as in Keras; .weights
  EncoderLayer, DecoderLayer, Seq2Seq   the modules; Seq2Seq.cross_attention_maps and the decoding hooks
  build_translation_net      any of genlab's three translator nets by name ("transformer", "gru", "decoder_only")
The attention maths, masks, KV cache, positions and sampling rules are genlab.nets.transformer's, shared with
the GPT; generate (greedy / sampling) and beam_search are genlab.nets.decoding.TranslationNet's, shared with the
GRU and decoder-only translators.

The encoder's self-attention is bidirectional (every source position sees every non-padding source position).
The decoder's self-attention is causal; its cross-attention takes its queries from the target side and its keys
and values from the encoder's outputs, so target position t sees every source position but no target position
after t. Pre-LayerNorm blocks, as in the LM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genlab.nets.decoding import BOS, EOS, N_SPECIAL, PAD, TranslationNet
from genlab.nets.transformer import (
    KVCache,
    LayerKV,
    attention_weights,
    causal_mask,
    check_config,
    merge_heads,
    sinusoidal_positions,
    split_heads,
)


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


class Seq2Seq(TranslationNet):
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

    # --- the decoding hooks (generate and beam_search: genlab.nets.decoding.TranslationNet)

    def step_logits(self, ys, memory, src_mask, cache):
        """Logits [B, V] for the next token after ys [B, t]; with a cache only the tokens after it are fed."""
        return self.decode(ys if cache is None else ys[:, cache.length :], memory, src_mask, cache)[:, -1]

    def new_cache(self, batch: int) -> KVCache:
        return KVCache(len(self.decoder), self.config.max_tgt_len)  # its buffers are allocated at the first step


ARCHITECTURES = ("transformer", "gru", "decoder_only")


def build_translation_net(architecture: str, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 128,
                          n_head: int = 4, n_enc_layer: int = 2, n_dec_layer: int = 2, d_ff: int | None = None,
                          dropout: float = 0.0, positional: str = "learned", max_src_len: int = 64,
                          max_tgt_len: int = 32) -> TranslationNet:
    """The translator net `architecture` with these sizes, each with the same interface (TranslationNet):

    "transformer"   Seq2Seq: encoder-decoder transformer with cross-attention (every argument)
    "gru"           GRUSeq2Seq: bidirectional GRU encoder of n_enc_layer layers, GRU decoder of n_dec_layer
                    layers with attention over the encoder's outputs (n_head, d_ff and positional are not used)
    "decoder_only"  DecoderOnlyTranslator: one causal transformer stack of n_enc_layer + n_dec_layer layers over
                    source + target, no cross-attention (the same depth as the transformer)
    """
    if architecture == "transformer":
        return Seq2Seq(Seq2SeqConfig(src_vocab_size, tgt_vocab_size, d_model, n_head, n_enc_layer, n_dec_layer, d_ff,
                                     dropout, positional, max_src_len, max_tgt_len))
    if architecture == "gru":
        from genlab.nets.gru_seq2seq import GRUSeq2Seq, GRUSeq2SeqConfig

        return GRUSeq2Seq(GRUSeq2SeqConfig(src_vocab_size, tgt_vocab_size, d_model, n_enc_layer, n_dec_layer, dropout,
                                           max_src_len, max_tgt_len))
    if architecture == "decoder_only":
        from genlab.nets.decoder_only import DecoderOnlyConfig, DecoderOnlyTranslator

        return DecoderOnlyTranslator(DecoderOnlyConfig(src_vocab_size, tgt_vocab_size, d_model, n_head,
                                                       n_enc_layer + n_dec_layer, d_ff, dropout, positional,
                                                       max_src_len, max_tgt_len))
    raise ValueError(f"unknown architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)}")


__all__ = ["PAD", "BOS", "EOS", "N_SPECIAL", "Seq2SeqConfig", "MultiHeadAttention", "EncoderLayer", "DecoderLayer",
           "Seq2Seq", "ARCHITECTURES", "build_translation_net"]
