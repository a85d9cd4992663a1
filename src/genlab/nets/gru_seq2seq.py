"""A GRU encoder-decoder translator with attention (the course's first translator), in plain torch.

The model of TensorFlow's "Neural machine translation with attention" tutorial, in the Luong et al. (2015) form:

  encoder    source embeddings -> a bidirectional GRU of n_enc_layer layers; both directions' outputs at each
             source position, projected to d_model, are the memory the decoder attends over. The sources are
             packed (pack_padded_sequence), so PAD feeds neither direction: the backward GRU starts at the last
             real token, and each final state is the one after the real tokens.
  bridge     the decoder's initial state (each of its layers) = tanh(Linear([forward final; backward final]))
             of the encoder's top layer.
  decoder    target embeddings -> a GRU of n_dec_layer layers -> its output h_t attends over the memory
             (one head, scaled dot-product of W_a h_t with each memory vector, PAD positions masked: Luong's
             "general" score) -> context c_t -> attentional state tanh(W_c [c_t; h_t]) -> logits through the
             target embedding matrix (tied head, as in the transformer).

No input feeding (the previous attentional state is not fed back into the GRU, as in the TensorFlow tutorial):
teacher-forced training then runs the decoder GRU over the whole target in one call instead of a Python loop per
target token, which is what a wall-clock comparison with the transformer needs. The cache of incremental
decoding is therefore only the decoder GRU's hidden state.

Same interface as the transformer (genlab.nets.decoding.TranslationNet): forward(src, tgt) -> logits, generate,
beam_search, cross_attention_maps (one map per net, as one "head": [B, 1, T, S]). Sources are right-padded
(PAD only after the tokens), as genlab's data and Translator make them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from genlab.nets.decoding import PAD, TranslationNet
from genlab.nets.transformer import attention_weights


@dataclass
class GRUSeq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128  # embeddings, GRU states (each direction) and the attention's width
    n_enc_layer: int = 2
    n_dec_layer: int = 2
    dropout: float = 0.0  # on embeddings, between GRU layers and on the attentional state
    max_src_len: int = 64  # not a limit of the GRU (it reads any length); kept so every translator has one
    max_tgt_len: int = 32  # target tokens including BOS and EOS (the longest generate writes)

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_enc_layer", "n_dec_layer", "max_src_len",
                     "max_tgt_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class DecoderState:
    """The cache of incremental decoding: the decoder GRU's hidden state [n_dec_layer, B, C] after the first
    `length` target tokens (None before the first step: the bridge's initial state)."""

    def __init__(self):
        self.h: torch.Tensor | None = None
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        if self.h is not None:
            self.h = self.h.index_select(1, index)


class GRUSeq2Seq(TranslationNet):
    """Source ids [B, S] (right-padded with PAD) and target ids [B, T] (BOS first) -> next-token logits
    [B, T, V_tgt]."""

    def __init__(self, cfg: GRUSeq2SeqConfig):
        super().__init__()
        self.config = cfg
        C = cfg.d_model
        self.src_emb = nn.Embedding(cfg.src_vocab_size, C)
        self.tgt_emb = nn.Embedding(cfg.tgt_vocab_size, C)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.GRU(C, C, cfg.n_enc_layer, batch_first=True, bidirectional=True,
                              dropout=cfg.dropout if cfg.n_enc_layer > 1 else 0.0)
        self.memory_proj = nn.Linear(2 * C, C)  # both directions' outputs -> what the decoder attends over
        self.bridge = nn.Linear(2 * C, cfg.n_dec_layer * C)  # encoder's final states -> decoder's initial ones
        self.decoder = nn.GRU(C, C, cfg.n_dec_layer, batch_first=True,
                              dropout=cfg.dropout if cfg.n_dec_layer > 1 else 0.0)
        self.query = nn.Linear(C, C, bias=False)  # W_a of Luong's "general" score
        self.combine = nn.Linear(2 * C, C)  # W_c: [context; GRU output] -> attentional state
        self.head = nn.Linear(C, cfg.tgt_vocab_size, bias=False)
        self.head.weight = self.tgt_emb.weight  # tied: the same matrix reads and writes target tokens
        for emb in (self.src_emb, self.tgt_emb):  # the GRUs and Linears keep torch's defaults
            nn.init.normal_(emb.weight, mean=0.0, std=0.02)

    def encode(self, src: torch.Tensor):
        """src [B, S] -> memory ((outputs [B, S, C], initial decoder state [B, n_dec_layer, C]), source mask
        [B, 1, S] (True at non-padding positions)."""
        src_mask = src != PAD
        lengths = src_mask.sum(1).clamp(min=1).cpu()  # an all-PAD row reads one PAD rather than failing
        packed = pack_padded_sequence(self.drop(self.src_emb(src)), lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.encoder(packed)  # h_n [2 * n_enc_layer, B, C], in the batch's order
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        h0 = torch.tanh(self.bridge(torch.cat([h_n[-2], h_n[-1]], dim=-1)))  # top layer: forward, backward
        return (self.memory_proj(out), h0.view(src.size(0), self.config.n_dec_layer, -1)), src_mask[:, None, :]

    def decode(self, tgt: torch.Tensor, memory, src_mask, h: torch.Tensor | None = None):
        """tgt [B, T] from decoder state h (None: the initial state) -> logits [B, T, V], the attention
        weights [B, T, S] and the decoder state after tgt."""
        keys, h0 = memory
        if h is None:
            h = h0.transpose(0, 1).contiguous()
        out, h = self.decoder(self.drop(self.tgt_emb(tgt)), h)
        weights = attention_weights(self.query(out), keys, src_mask)
        attentional = torch.tanh(self.combine(torch.cat([weights @ keys, out], dim=-1)))
        return self.head(self.drop(attentional)), weights, h

    def forward(self, src, tgt) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        return self.decode(tgt, memory, src_mask)[0]

    @torch.no_grad()
    def cross_attention_maps(self, src, tgt) -> list[torch.Tensor]:
        """The attention weights [B, 1, T, S] of each target position over the source (one map, as one head)."""
        memory, src_mask = self.encode(src)
        return [self.decode(tgt, memory, src_mask)[1][:, None]]

    # --- the decoding hooks (generate and beam_search: genlab.nets.decoding.TranslationNet)

    def step_logits(self, ys, memory, src_mask, cache: DecoderState | None):
        if cache is None:
            return self.decode(ys, memory, src_mask)[0][:, -1]
        logits, _, cache.h = self.decode(ys[:, cache.length :], memory, src_mask, cache.h)
        cache.length = ys.size(1)
        return logits[:, -1]

    def new_cache(self, batch: int) -> DecoderState:
        return DecoderState()


__all__ = ["GRUSeq2SeqConfig", "GRUSeq2Seq", "DecoderState"]
