"""A translator without cross-attention: one causal transformer stack over the source followed by the target.

The sequence the layers read is `source tokens, BOS, target tokens`: the target input already starts with BOS,
which is the separator (no extra token). Source and target ids keep their own embedding tables (their
vocabularies are separate id spaces, as in the encoder-decoder); the head is tied to the target table. Positions
(learned, or sinusoidal) run over max_src_len + max_tgt_len: source token s at position s, target token t at
max_src_len + t, so a target's positions do not depend on its source's length.

Every position attends causally to the positions before it; source PAD positions are masked out as keys
(sources are PAD-padded on the right, as the data makes them), so a row's logits do not change when it is batched
with a longer source. The loss-bearing outputs are the target positions only: forward(src, tgt) returns logits
[B, T, V_tgt] aligned with tgt exactly like the encoder-decoder's, so the same training code serves both.

The layers are the translator's own (genlab.nets.seq2seq's EncoderLayer: pre-LayerNorm self-attention and
feed-forward, the attention maths of genlab.nets.transformer) under a causal mask, with the shared KV cache for
decoding: the first step runs source + BOS through the stack once (prefill); each later step feeds one token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genlab.nets.decoding import PAD, TranslationNet
from genlab.nets.seq2seq import EncoderLayer, Seq2Seq
from genlab.nets.transformer import KVCache, LayerKV, causal_mask, check_config, sinusoidal_positions


@dataclass
class DecoderOnlyConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128
    n_head: int = 4
    n_layer: int = 4  # build_translation_net gives it n_enc_layer + n_dec_layer: the encoder-decoder's depth
    d_ff: int | None = None  # width of the feed-forward layer; None: 4 * d_model
    dropout: float = 0.0
    positional: str = "learned"  # "learned" | "sinusoidal"
    max_src_len: int = 64
    max_tgt_len: int = 32  # target tokens including BOS and EOS

    def __post_init__(self):
        check_config(self, "d_model", ("src_vocab_size", "tgt_vocab_size", "d_model", "n_head", "n_layer",
                                       "max_src_len", "max_tgt_len"))
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model


class CausalLayer(EncoderLayer):
    """x + self_attn(ln(x)) under the given mask, then x + ff(ln(x)); with `kv`, x holds the positions after
    those cached there."""

    def forward(self, x, mask, kv: LayerKV | None = None):
        h = self.ln1(x)
        cached = None if kv is None else kv.update(*self.attn.project_kv(h))
        x = x + self.drop(self.attn(h, value=h, mask=mask, kv=cached))
        return x + self.ff(self.ln2(x))

    def weights(self, x, mask) -> torch.Tensor:
        """The attention weights [B, H, T, T] that forward applies to x."""
        h = self.ln1(x)
        return self.attn.weights(h, value=h, mask=mask)


def attention_mask(key_ok: torch.Tensor, tq: int) -> torch.Tensor:
    """[B, 1, tq, Tk]: query i (the last tq of the Tk positions) may see key j <= its own position where
    key_ok [B, Tk] holds (False at source PAD), and always itself (so a PAD query, whose output nothing reads,
    still has a key)."""
    tk = key_ok.size(1)
    causal = causal_mask(tq, tk, key_ok.device)
    itself = causal & ~torch.ones_like(causal).tril(diagonal=tk - tq - 1)
    return (causal & key_ok[:, None, None, :]) | itself


class DecoderOnlyTranslator(TranslationNet):
    """Source ids [B, S] (PAD-padded on the right) and target ids [B, T] (BOS first) -> next-token logits
    [B, T, V_tgt] at the target positions."""

    def __init__(self, cfg: DecoderOnlyConfig):
        super().__init__()
        self.config = cfg
        self.src_emb = nn.Embedding(cfg.src_vocab_size, cfg.d_model)
        self.tgt_emb = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model)
        n_pos = cfg.max_src_len + cfg.max_tgt_len
        if cfg.positional == "learned":
            self.pos = nn.Embedding(n_pos, cfg.d_model)
        else:  # fixed, so a buffer rebuilt from the config, not saved
            self.register_buffer("pe", sinusoidal_positions(n_pos, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList([CausalLayer(cfg) for _ in range(cfg.n_layer)])
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.tgt_vocab_size, bias=False)
        self.head.weight = self.tgt_emb.weight  # tied: the same matrix reads and writes target tokens
        self.apply(Seq2Seq._init_weights)

    def _positions(self, side: str, start: int, n: int, device) -> torch.Tensor:
        limit = self.config.max_src_len if side == "src" else self.config.max_tgt_len
        if start + n > limit:
            what = "source" if side == "src" else "target"
            raise ValueError(f"{what} of {start + n} tokens is longer than max_{side}_len={limit}")
        idx = torch.arange(start, start + n, device=device) + (0 if side == "src" else self.config.max_src_len)
        return self.pos(idx) if self.config.positional == "learned" else self.pe[idx]

    def _embed(self, src: torch.Tensor | None, tgt: torch.Tensor, tgt_start: int = 0) -> torch.Tensor:
        """Embeddings + positions of `src` (None: none) followed by tgt, whose first token is target position
        tgt_start."""
        x = self.tgt_emb(tgt) + self._positions("tgt", tgt_start, tgt.size(1), tgt.device)
        if src is not None:
            x = torch.cat([self.src_emb(src) + self._positions("src", 0, src.size(1), src.device), x], dim=1)
        return self.drop(x)

    @staticmethod
    def _key_ok(src: torch.Tensor, n_tgt: int) -> torch.Tensor:
        return torch.cat([src != PAD, src.new_ones(src.size(0), n_tgt, dtype=torch.bool)], dim=1)

    def forward(self, src, tgt) -> torch.Tensor:
        x = self._embed(src, tgt)
        mask = attention_mask(self._key_ok(src, tgt.size(1)), x.size(1))
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(self.ln(x[:, src.size(1) :]))

    @torch.no_grad()
    def cross_attention_maps(self, src, tgt) -> list[torch.Tensor]:
        """Each layer's attention weights [B, H, T, S] of the target positions over the source positions: a slice
        of its self-attention, so a row sums to the share of attention that goes to the source (the rest goes
        to earlier target positions)."""
        x, S = self._embed(src, tgt), src.size(1)
        mask = attention_mask(self._key_ok(src, tgt.size(1)), x.size(1))
        maps = []
        for layer in self.layers:
            maps.append(layer.weights(x, mask)[:, :, S:, :S])
            x = layer(x, mask)
        return maps

    # --- the decoding hooks (generate and beam_search: genlab.nets.decoding.TranslationNet)

    def encode(self, src: torch.Tensor):
        """Nothing is computed before the first step (the prefill runs the source with BOS): the memory is the
        source ids themselves, the mask [B, S] True at non-padding positions."""
        if src.size(1) > self.config.max_src_len:
            raise ValueError(f"source of {src.size(1)} tokens is longer than max_src_len={self.config.max_src_len}")
        return src, src != PAD

    def step_logits(self, ys, memory, src_mask, cache: KVCache | None):
        """Logits [B, V] for the next token after ys [B, t]. Without a cache, or at the first step with one,
        source + ys run through the stack; later steps feed the tokens after those cached."""
        src = memory
        key_ok = torch.cat([src_mask, src_mask.new_ones(ys.size(0), ys.size(1))], dim=1)
        if cache is None or cache.length == 0:
            x = self._embed(src, ys)
        else:
            fed = cache.length - src.size(1)  # target tokens already in the cache
            x = self._embed(None, ys[:, fed:], fed)
        mask = attention_mask(key_ok, x.size(1))
        for layer, kv in zip(self.layers, cache.layers if cache is not None else [None] * len(self.layers),
                             strict=True):
            x = layer(x, mask, kv)
        return self.head(self.ln(x[:, -1]))

    def new_cache(self, batch: int) -> KVCache:
        """One LayerKV per layer for source + target positions; .length counts both."""
        return KVCache(len(self.layers), self.config.max_src_len + self.config.max_tgt_len)


__all__ = ["DecoderOnlyConfig", "DecoderOnlyTranslator", "CausalLayer", "attention_mask"]
