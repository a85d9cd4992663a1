"""A decoder-only transformer character language model (GPT), in the spirit of nanoGPT's model.py.

Read top to bottom: GPTConfig (sizes and switches), attention_reference (the attention maths written out),
KVCache (past keys and values for incremental decoding), CausalSelfAttention, MLP, Block, GPT, then sampling:
sample_next picks one token, generate continues a prompt.

Sliding window (generation past the context window): the next token is always predicted from the last
`block_size` tokens, with positions 0 .. block_size-1 (as in nanoGPT). Positions are absolute (learned or
sinusoidal), so once the window slides every kept token gets a new position and the cached keys and values no
longer match what the model would compute; the cached path then re-encodes the window (one full forward per
new token, the cost of the uncached path). The cache therefore speeds up generation while prompt + output fit
in the window, and is token-for-token identical to the uncached path everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genlab.runtime import eval_mode  # torch only: the one "eval, then the caller's mode back" helper


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 256  # the longest context the model sees (positions 0 .. block_size-1)
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms
    positional: str = "learned"  # "learned" | "sinusoidal"
    attn_dropout: float | None = None  # dropout on the attention weights; None: the same as `dropout`
    fast_dropout: bool = True  # on a CPU, draw dropout masks from random bytes (nets/fast_dropout.py); False: nn.Dropout

    def __post_init__(self):
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.positional == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"sinusoidal positions need an even n_embd, got {self.n_embd}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attn_dropout is not None and not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"attn_dropout must be in [0, 1) or None, got {self.attn_dropout}")

def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """The fixed encoding of 'Attention is all you need': PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe.float()


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) with a causal mask: [B, H, Tq, Tk], each row a distribution over the keys.

    q: [B, H, Tq, D]; k: [B, H, Tk, D] with Tk >= Tq: the queries are the LAST Tq of the Tk positions
    (Tq < Tk when earlier keys come from a KV cache), so query i may attend keys 0 .. Tk - Tq + i.
    """
    tq, tk = q.size(-2), k.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # [B, H, Tq, Tk]
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V with a causal mask, written out (shapes as in `attention_weights`)."""
    return attention_weights(q, k) @ v


def make_dropout(config: GPTConfig) -> nn.Module:
    """nn.Dropout, or with `fast_dropout` the same maths with a cheaper random mask on a CPU."""
    if config.fast_dropout:
        from genlab.nets.fast_dropout import ByteMaskDropout

        return ByteMaskDropout(config.dropout)
    return nn.Dropout(config.dropout)


class KVCache:
    """Keys and values of the positions seen so far, one preallocated [B, H, block_size, D] pair per layer."""

    def __init__(self, config: GPTConfig, batch_size: int, device, dtype):
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' k, v (not yet counted in `length`); return all keys and values so far."""
        end = self.length + k.size(-2)
        if end > self.k.size(-2):
            raise ValueError(f"KV cache overflow: {end} positions > block_size {self.k.size(-2)}")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with explicit query, key and value projections."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        # On a CPU, attention-weight dropout pushes scaled_dot_product_attention off its fused kernel onto the
        # plain math path, which is much slower, hence a separate knob.
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        self.q_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.k_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.v_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # output projection
        self.resid_dropout = make_dropout(config)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, reference: bool = False,
                need_weights: bool = False):
        """The attention's output [B, T, C]; with need_weights, (output, weights [B, H, T, Tk]): the weights are
        then computed explicitly (the fused kernel never forms them), by the same maths as `attention_reference`."""
        B, T, C = x.shape
        H = self.n_head

        def heads(t):  # [B, T, C] -> [B, H, T, D]: each head attends with its own D = C / H features
            return t.view(B, T, H, C // H).transpose(1, 2)

        q = heads(self.q_proj(x))  # queries: what each position looks for
        k = heads(self.k_proj(x))  # keys: what each position offers
        v = heads(self.v_proj(x))  # values: what each position passes on
        if cache is not None:
            k, v = cache.update(layer, k, v)
        # y = softmax(q @ k^T / sqrt(D)) @ v over the allowed (causal) keys: attention_reference writes it out,
        # scaled_dot_product_attention computes the same maths in one fused kernel.
        weights = None
        if need_weights:
            weights = attention_weights(q, k)
            y = weights @ v
        elif reference:
            y = attention_reference(q, k, v)
        else:
            tq, tk = q.size(-2), k.size(-2)
            if tq == tk:  # training, or a prefill into an empty cache
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                   dropout_p=self.dropout if self.training else 0.0)
            else:  # new queries after cached keys: query i sees keys 0 .. tk - tq + i
                mask = None if tq == 1 else torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        out = self.resid_dropout(self.c_proj(y))
        return (out, weights) if need_weights else out


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = make_dropout(config)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0, reference=False, need_weights=False):
        if need_weights:
            a, weights = self.attn(self.ln_1(x), cache, layer, reference, need_weights=True)
            x = x + a
            return x + self.mlp(self.ln_2(x)), weights
        x = x + self.attn(self.ln_1(x), cache, layer, reference)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positional == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        else:  # fixed, so not a parameter and not saved: rebuilt from the config
            self.register_buffer("pe", sinusoidal_positions(config.block_size, config.n_embd), persistent=False)
        self.drop = make_dropout(config)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: the same matrix reads and writes characters
        # GPT-2 initialisation: N(0, 0.02) everywhere, zero biases, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * n_layer) so its variance does not grow with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters; without position embeddings by default (the token embedding is the tied head)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.positional == "learned":
            n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self, T: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), as in the PaLM paper / nanoGPT: 6N + 12 L H Q T."""
        cfg = self.config
        T = T or cfg.block_size
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_embd * T

    @torch.no_grad()
    def attention_maps(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, T, vocab], attention weights [n_layer, B, n_head, T, T]) for idx [B, T], in eval mode:
        the same blocks as training, each attention asked for its softmax(Q K^T / sqrt(d)) weights."""
        with eval_mode(self):
            return self.forward(idx, need_weights=True)

    def forward(self, idx, targets=None, cache: KVCache | None = None, reference: bool = False,
                need_weights: bool = False):
        """idx [B, T] token ids -> logits [B, T, vocab] (and the mean cross-entropy if targets are given).

        With a cache, idx holds the positions after those already cached. With need_weights, returns
        (logits, attention weights [n_layer, B, n_head, T, Tk]) instead.
        """
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.config.block_size}")
        x = self.wte(idx)
        if self.config.positional == "learned":
            x = x + self.wpe(torch.arange(start, start + T, device=idx.device))
        else:
            x = x + self.pe[start : start + T].to(x.dtype)
        x = self.drop(x)
        maps = []
        for i, block in enumerate(self.blocks):
            if need_weights:
                x, weights = block(x, cache, i, reference, need_weights=True)
                maps.append(weights)
            else:
                x = block(x, cache, i, reference)
        if cache is not None:
            cache.length += T
        logits = self.lm_head(self.ln_f(x))
        if need_weights:
            return logits, torch.stack(maps)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """See the module-level `generate`."""
        return generate(self, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache)


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


@torch.no_grad()
def generate(model: GPT, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> torch.Tensor:
    """Continue `prompt_ids` ([T] or [B, T] ids) by `max_new_tokens` tokens; returns prompt + continuation.

    temperature: logits are divided by it; 0 means greedy (argmax), < 1 sharpens, > 1 flattens.
    top_k: keep only the k most likely tokens; top_p: keep the smallest set whose probability reaches p.
    Applied in that order: temperature, then top-k, then top-p. `seed` makes sampling reproducible.
    """
    check_sampling_args(max_new_tokens, temperature, top_k, top_p)
    idx = torch.as_tensor(prompt_ids, dtype=torch.long, device=model.wte.weight.device)
    squeeze = idx.dim() == 1
    idx = idx[None] if squeeze else idx
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"prompt_ids must be a non-empty [T] or [B, T] sequence, got shape {tuple(idx.shape)}")
    if idx.min() < 0 or idx.max() >= model.config.vocab_size:
        raise ValueError(f"prompt ids must be in [0, {model.config.vocab_size}), got {idx.min()}..{idx.max()}")
    gen = None
    if seed is not None:
        gen = torch.Generator(device=idx.device).manual_seed(seed)
    bs = model.config.block_size
    cache = None
    for _ in range(max_new_tokens):
        if not use_cache:
            logits, _ = model(idx[:, -bs:])
        elif cache is not None and idx.size(1) <= bs:  # the window has not slid: feed only the new token
            logits, _ = model(idx[:, -1:], cache=cache)
        else:  # first step, or the window slid (positions changed): encode the window afresh
            cache = KVCache(model.config, idx.size(0), idx.device, model.wte.weight.dtype)
            logits, _ = model(idx[:, -bs:], cache=cache)
        next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, gen)
        idx = torch.cat([idx, next_id], dim=1)
    return idx[0] if squeeze else idx
