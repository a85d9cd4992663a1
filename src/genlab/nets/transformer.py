"""What genlab's transformers share (the GPT in nets/gpt.py, the translator in nets/seq2seq.py, and the
decoder-only translator in nets/decoder_only.py): their config checks, positions, the attention maths and masks, the KV cache of
incremental decoding, and the next-token sampling rules.

Attention is softmax(Q K^T / sqrt(d_k)) V per head. `attention_weights` writes the softmax out (for pictures and
for the translator, which applies it itself); `causal_attention` is the same maths with a causal mask in
torch's fused scaled_dot_product_attention, which never forms the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_config(config, width: str, sizes: tuple[str, ...]) -> None:
    """The checks every transformer config makes, each a ValueError naming the field: `sizes` >= 1, a known
    `positional` ("learned" | "sinusoidal"; sinusoidal needs an even width), n_head dividing the `width` field,
    dropout in [0, 1)."""
    if config.positional not in ("learned", "sinusoidal"):
        raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {config.positional!r}")
    for name in sizes:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    d = getattr(config, width)
    if d % config.n_head:
        raise ValueError(f"{width}={d} must be divisible by n_head={config.n_head}")
    if config.positional == "sinusoidal" and d % 2:
        raise ValueError(f"sinusoidal positions need an even {width}, got {d}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """The fixed encoding of 'Attention is all you need': PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe.float()


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """[B, T, C] -> [B, H, T, C / H]: each head attends with its own C / H features."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """[B, H, T, D] -> [B, T, H * D]: the heads' outputs side by side."""
    B, H, T, D = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, H * D)


def causal_mask(tq: int, tk: int, device=None) -> torch.Tensor:
    """[Tq, Tk] True where query i (the last Tq of Tk positions) may see key j: j <= Tk - Tq + i."""
    return torch.ones(tq, tk, dtype=torch.bool, device=device).tril(diagonal=tk - tq)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) over the keys: q [..., Tq, D], k [..., Tk, D] -> [..., Tq, Tk], each row a
    distribution; mask (broadcastable, True = may attend) sets the others to 0."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """attention_weights(q, k, causal_mask) @ v in the fused kernel; q [B, H, Tq, D] are the last Tq of the
    Tk positions of k, v (Tq < Tk after cached keys). Dropout on the weights applies to Tq == Tk (training)."""
    tq, tk = q.size(-2), k.size(-2)
    if tq == tk:  # training, or a prefill into an empty cache
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    mask = None if tq == 1 else causal_mask(tq, tk, q.device)  # one new query sees every cached key
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class LayerKV:
    """One layer's keys and values of the positions decoded so far, in a [B, H, capacity, D] buffer allocated at
    the first update (with the keys' batch, device and dtype); `memory`: the layer's cross-attention keys and
    values of a fixed sequence (the encoder's outputs), computed once."""

    def __init__(self, capacity: int):
        self.capacity, self.length = capacity, 0
        self.k = self.v = None
        self.memory: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' k, v [B, H, T, D]; return every key and value so far."""
        end = self.length + k.size(-2)
        if end > self.capacity:
            raise ValueError(f"KV cache overflow: {end} positions > its capacity of {self.capacity}")
        if self.k is None:
            shape = (*k.shape[:-2], self.capacity, k.size(-1))
            self.k, self.v = k.new_zeros(shape), v.new_zeros(shape)
        self.k[..., self.length : end, :] = k
        self.v[..., self.length : end, :] = v
        self.length = end
        return self.k[..., :end, :], self.v[..., :end, :]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index`, in that order (beam search's surviving hypotheses)."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)
        if self.memory is not None:
            self.memory = (self.memory[0].index_select(0, index), self.memory[1].index_select(0, index))


class KVCache:
    """What incremental decoding keeps: one LayerKV per layer, each up to `capacity` positions."""

    def __init__(self, n_layer: int, capacity: int):
        self.layers = [LayerKV(capacity) for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """Positions cached so far (every layer holds the same ones)."""
        return self.layers[0].length

    def reorder(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            layer.reorder(index)


def check_sampling_args(max_new_tokens, temperature, top_k, top_p) -> None:
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no limit), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {top_p}")


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of logits [B, V] -> [B, 1]: temperature, then top-k, then top-p, then a draw."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the most likely one always stays)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
