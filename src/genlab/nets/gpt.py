"""A decoder-only transformer character language model (GPT), in the spirit of nanoGPT's model.py.

Read top to bottom: GPTConfig (sizes and switches), CausalSelfAttention (explicit query, key and value
projections; its `weights` are what the attention maps show), MLP, Block, GPT, then `generate`, which continues a
prompt. The parts the translator shares (attention maths, masks, the KV cache, positions, sampling rules) are
in genlab.nets.transformer.

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

from genlab.nets.transformer import (
    KVCache,
    LayerKV,
    attention_weights,
    causal_attention,
    causal_mask,
    check_config,
    check_sampling_args,
    merge_heads,
    sample_next,
    sinusoidal_positions,
    split_heads,
)
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
        check_config(self, "n_embd", ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))
        if self.attn_dropout is not None and not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"attn_dropout must be in [0, 1) or None, got {self.attn_dropout}")


def make_dropout(config: GPTConfig) -> nn.Module:
    """nn.Dropout, or with `fast_dropout` the same maths with a cheaper random mask on a CPU."""
    if config.fast_dropout:
        from genlab.nets.fast_dropout import ByteMaskDropout

        return ByteMaskDropout(config.dropout)
    return nn.Dropout(config.dropout)


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

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, C] -> queries, keys and values [B, H, T, C / H]."""
        q = split_heads(self.q_proj(x), self.n_head)  # queries: what each position looks for
        k = split_heads(self.k_proj(x), self.n_head)  # keys: what each position offers
        v = split_heads(self.v_proj(x), self.n_head)  # values: what each position passes on
        return q, k, v

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]; with `kv`, x holds the positions after those cached there."""
        q, k, v = self.qkv(x)
        if kv is not None:
            k, v = kv.update(k, v)
        # softmax(q @ k^T / sqrt(D)) @ v over the allowed (causal) keys, in torch's fused kernel
        y = causal_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(merge_heads(y)))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The weights forward applies to x [B, T, C], written out: softmax(Q K^T / sqrt(D)) under the causal
        mask, [B, H, T, T] (the fused kernel never forms them)."""
        q, k, _ = self.qkv(x)
        return attention_weights(q, k, causal_mask(x.size(1), x.size(1), x.device))


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

    def forward(self, x, kv: LayerKV | None = None):
        x = x + self.attn(self.ln_1(x), kv)
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

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings [B, T, C] of idx [B, T] at positions start .. start + T - 1."""
        T = idx.size(1)
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.config.block_size}")
        x = self.wte(idx)
        if self.config.positional == "learned":
            x = x + self.wpe(torch.arange(start, start + T, device=idx.device))
        else:
            x = x + self.pe[start : start + T].to(x.dtype)
        return self.drop(x)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx [B, T] token ids -> (logits [B, T, vocab], the mean cross-entropy over targets, or None).

        With a cache, idx holds the positions after those already cached.
        """
        x = self.embed(idx, cache.length if cache is not None else 0)
        for block, kv in zip(self.blocks, cache.layers if cache is not None else [None] * len(self.blocks),
                             strict=True):
            x = block(x, kv)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, T, vocab], attention weights [n_layer, B, n_head, T, T]) for idx [B, T], in eval mode:
        each block's attention asked for the weights it applies to its input, as forward runs the blocks."""
        with eval_mode(self):
            x, maps = self.embed(idx), []
            for block in self.blocks:
                maps.append(block.attn.weights(block.ln_1(x)))
                x = block(x)
            return self.lm_head(self.ln_f(x)), torch.stack(maps)

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """See the module-level `generate`."""
        return generate(self, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache)


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
            cache = KVCache(model.config.n_layer, bs)
            logits, _ = model(idx[:, -bs:], cache=cache)
        next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, gen)
        idx = torch.cat([idx, next_id], dim=1)
    return idx[0] if squeeze else idx
