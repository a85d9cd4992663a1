"""A decoder-only transformer character language model (GPT), in the spirit of nanoGPT's model.py.

Layout of this file:
  GPTConfig                 sizes and switches of the network
  attention_reference       the readable attention maths, softmax(Q K^T / sqrt(d_k)) V with a causal mask
  Dropout                   dropout whose CPU mask comes from random bytes (nn.Dropout is slow on a CPU)
  KVCache                   keys and values of past positions, for incremental decoding
  CausalSelfAttention, MLP, Block, GPT   the nn.Modules; GPT.generate samples text
  MuonWithAdamW             optional optimizer: torch.optim.Muon on the hidden matrices, AdamW on the rest
  LanguageModel             the LightningModule: AdamW or Muon, warmup + cosine, logging, vocabulary in the checkpoint
  TextSamplesCallback       a table of samples (one row per temperature) at every validation
  generate_main             `genlab generate --ckpt X --prompt "ROMEO:" --temperature 0.2 0.8 1.2`

Sliding window (generation past the context window): the next token is always predicted from the last
`block_size` tokens, with positions 0 .. block_size-1 (as in nanoGPT). Positions are absolute (learned or
sinusoidal), so once the window slides every kept token gets a new position and the cached keys and values no
longer match what the model would compute; the cached path then re-encodes the window (one full forward per
new token, the cost of the uncached path). The cache therefore speeds up generation while prompt + output fit
in the window, and is token-for-token identical to the uncached path everywhere.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from genlab.models.base import GenlabModule

# --------------------------------------------------------------------------------------------------------------
# The network


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


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V with a causal mask, written out.

    q: [B, H, Tq, D]; k, v: [B, H, Tk, D] with Tk >= Tq: the queries are the LAST Tq of the Tk positions
    (Tq < Tk when earlier keys come from a KV cache), so query i may attend keys 0 .. Tk - Tq + i.
    """
    tq, tk = q.size(-2), k.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # [B, H, Tq, Tk]
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v


class Dropout(nn.Module):
    """Inverted dropout that, on a CPU, draws its mask from random bytes: one 64-bit draw covers 8 elements.

    On a CPU, nn.Dropout's cost is drawing one random number per element: for a 16 x 256 x 256 bf16 activation,
    forward + backward took 11-16 ms against 4.5 ms this way (2 cores, scripts/bench_dropout.py), and with nine
    dropouts a step it cost 15-30% of this small model's training tokens/s (measured in 15-minute runs). The
    drop rate is a whole number of 256ths (0.1 -> 26/256 = 0.102) and the kept values are scaled by
    256 / (256 - that), so the expectation is unchanged. Other devices use F.dropout (fused and cheap there).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.drop_256ths = round(p * 256)  # an element is dropped when its random byte is below this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or not 1 <= self.drop_256ths <= 255:  # (p not a usable number of 256ths)
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty(-(-n // 8), dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self.drop_256ths
        return x * keep.to(x.dtype).mul_(256 / (256 - self.drop_256ths))

    def extra_repr(self) -> str:
        return f"p={self.p} (on CPU {self.drop_256ths}/256)"


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
        # plain math path (measured: half the training throughput), hence a separate knob.
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        self.q_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.k_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.v_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # output projection
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, reference: bool = False):
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))  # each [B, H, T, D]
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if reference:
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
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

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

    def forward(self, x, cache=None, layer=0, reference=False):
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
        self.drop = Dropout(config.dropout)
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

    def forward(self, idx, targets=None, cache: KVCache | None = None, reference: bool = False):
        """idx [B, T] token ids -> logits [B, T, vocab] (and the mean cross-entropy if targets are given).

        With a cache, idx holds the positions after those already cached.
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
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, reference)
        if cache is not None:
            cache.length += T
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """Continue `prompt_ids` ([T] or [B, T] ids) by `max_new_tokens` tokens; returns prompt + continuation.

        temperature: logits are divided by it; 0 means greedy (argmax), < 1 sharpens, > 1 flattens.
        top_k: keep only the k most likely tokens; top_p: keep the smallest set whose probability reaches p.
        Applied in that order: temperature, then top-k, then top-p. `seed` makes sampling reproducible.
        """
        check_sampling_args(max_new_tokens, temperature, top_k, top_p)
        idx = torch.as_tensor(prompt_ids, dtype=torch.long, device=self.wte.weight.device)
        squeeze = idx.dim() == 1
        idx = idx[None] if squeeze else idx
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"prompt_ids must be a non-empty [T] or [B, T] sequence, got shape {tuple(idx.shape)}")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ValueError(f"prompt ids must be in [0, {self.config.vocab_size}), got {idx.min()}..{idx.max()}")
        gen = None
        if seed is not None:
            gen = torch.Generator(device=idx.device).manual_seed(seed)
        bs = self.config.block_size
        cache = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = self(idx[:, -bs:])
            elif cache is not None and idx.size(1) <= bs:  # the window has not slid: feed only the new token
                logits, _ = self(idx[:, -1:], cache=cache)
            else:  # first step, or the window slid (positions changed): encode the window afresh
                cache = KVCache(self.config, idx.size(0), idx.device, self.wte.weight.dtype)
                logits, _ = self(idx[:, -bs:], cache=cache)
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, gen)
            idx = torch.cat([idx, next_id], dim=1)
        return idx[0] if squeeze else idx


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


# --------------------------------------------------------------------------------------------------------------
# Training


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon on the blocks' weight matrices, AdamW on the rest, stepped as one optimizer.

    Muon orthogonalises each matrix's momentum (Newton-Schulz), which trains small transformers in fewer steps;
    it is meant for hidden matrices only, so the embeddings (and the head tied to them), biases and norms stay
    with AdamW. One Optimizer object, so Lightning's automatic optimization, gradient clipping, checkpoints and
    the shared learning-rate schedule work unchanged. `adjust_lr_fn="match_rms_adamw"` scales Muon's update to
    the size of AdamW's, so one learning rate and one weight decay serve both.
    """

    def __init__(self, muon_params: list, adamw_groups: list[dict], lr: float, betas: tuple[float, float],
                 weight_decay: float):
        self.muon = torch.optim.Muon(muon_params, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas)
        super().__init__([p for g in self.muon.param_groups + self.adamw.param_groups for p in g["params"]],
                         {"lr": lr})
        # the inner optimizers' own groups, so a learning rate set here is the one they use
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError("this optimizer state is not MuonWithAdamW's (was the checkpoint trained with "
                             "optimizer: adamw?)")
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups


class LanguageModel(GenlabModule):
    """A character-level GPT with its vocabulary, so a checkpoint alone can generate text.

    Args:
        vocab: the characters, in id order. None: taken from the datamodule (`datamodule.vocab.chars`) at setup
            and then stored in the hyper-parameters, hence in every checkpoint.
        block_size, n_layer, n_head, n_embd, dropout, bias, positional, attn_dropout: see GPTConfig.
        learning_rate: peak learning rate, reached after `warmup_steps` linear steps, then cosine decay to
            `min_lr_ratio * learning_rate` at the end of training.
        lr_decay: where "the end" is: "auto" = the Trainer's max_steps if set, else its max_time (the decay then
            follows the wall clock, so a time-budgeted run ends at the lowest rate), else the estimated total
            steps; "steps" / "time" force one; "none" keeps the peak after warmup.
        weight_decay: decoupled weight decay (AdamW's, and Muon's), applied to matrices (Linear weights,
            embeddings) only, not biases or norms.
        betas: AdamW betas.
        optimizer: "adamw" (the default), or "muon": torch.optim.Muon on the blocks' weight matrices and AdamW
            on embeddings, biases and norms (MuonWithAdamW), with the same learning rate and schedule.
        sample_prompt: the prompt of the sample-text callback.
    """

    def __init__(
        self,
        vocab: str | None = None,
        block_size: int = 256,
        n_layer: int = 6,
        n_head: int = 6,
        n_embd: int = 384,
        dropout: float = 0.0,
        bias: bool = True,
        positional: str = "learned",
        learning_rate: float = 1e-3,
        min_lr_ratio: float = 0.1,
        warmup_steps: int = 100,
        lr_decay: str = "auto",
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.99),
        sample_prompt: str = "ROMEO:",
        attn_dropout: float | None = None,
        optimizer: str = "adamw",
    ):
        super().__init__()
        if lr_decay not in ("auto", "steps", "time", "none"):
            raise ValueError(f"lr_decay must be auto|steps|time|none, got {lr_decay!r}")
        if optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got {optimizer!r}")
        betas = tuple(float(b) for b in betas)
        self.save_hyperparameters()
        self.hparams.betas = list(betas)  # plain list: loads with weights_only=True everywhere
        # validate the sizes now, before any data is read
        GPTConfig(1, block_size, n_layer, n_head, n_embd, dropout, bias, positional, attn_dropout)
        self.vocab: str | None = None
        self.model: GPT | None = None
        if vocab is not None:
            self._build(vocab)
        self._last_batch_time: float | None = None
        self._decay = None  # ("steps", total) or ("time", seconds, timer)

    # --- model and vocabulary

    def _build(self, vocab: str) -> None:
        if not vocab or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be a non-empty string of distinct characters")
        hp = self.hparams
        self.vocab = vocab
        self.hparams.vocab = vocab
        self.stoi = {c: i for i, c in enumerate(vocab)}
        self.config = GPTConfig(len(vocab), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout, hp.bias,
                                hp.positional, hp.get("attn_dropout"))
        self.model = GPT(self.config)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        dm_vocab = getattr(getattr(dm, "vocab", None), "chars", None)
        if self.model is None:
            if dm_vocab is None:
                raise ValueError("LanguageModel(vocab=None) needs a datamodule with a `vocab` (CharTextDataModule) "
                                 "or an explicit `vocab` string")
            self._build(dm_vocab)
        elif dm_vocab is not None and dm_vocab != self.vocab:
            raise ValueError(f"the data's vocabulary ({len(dm_vocab)} chars) differs from the model's "
                             f"({len(self.vocab)} chars): ids would mean different characters")
        dm_block = getattr(dm, "block_size", None)
        if dm_block is not None and dm_block > self.config.block_size:
            raise ValueError(f"data block_size {dm_block} > model block_size {self.config.block_size}")

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"{len(unknown)} character(s) not in the model's vocabulary: "
                             f"{', '.join(repr(c) for c in unknown)}. The vocabulary is {self.vocab!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def generate_text(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> str:
        """prompt + continuation as text."""
        if not prompt:
            raise ValueError("the prompt must contain at least one character (e.g. '\\n')")
        ids = self.model.generate(self.encode(prompt), max_new_tokens, temperature, top_k, top_p, seed, use_cache)
        return self.decode(ids.tolist())

    def forward(self, idx, targets=None):
        return self.model(idx, targets)

    # --- optimisation

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.model.parameters() if p.requires_grad]
        muon = []
        if hp.optimizer == "muon":
            muon = [p for p in self.model.blocks.parameters() if p.requires_grad and p.dim() == 2]
        muon_ids = {id(p) for p in muon}
        decay = [p for p in params if p.dim() >= 2 and id(p) not in muon_ids]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if muon:
            return MuonWithAdamW(muon, groups, hp.learning_rate, tuple(hp.betas), hp.weight_decay)
        return torch.optim.AdamW(groups, lr=hp.learning_rate, betas=tuple(hp.betas))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("optimizer", "adamw")  # checkpoints before the knob: AdamW
        if checkpoint.get("optimizer_states") and saved != self.hparams.optimizer:
            raise ValueError(f"this checkpoint was trained with optimizer: {saved}, the model is configured with "
                             f"optimizer: {self.hparams.optimizer}; its optimizer state cannot be "
                             f"resumed. Set optimizer: {saved} to resume, or start a new run from the weights.")

    def on_train_start(self) -> None:
        self._decay = None
        mode = self.hparams.lr_decay
        timer = next((c for c in self.trainer.callbacks if type(c).__name__ == "Timer"), None)
        max_steps = self.trainer.max_steps
        if mode == "steps" or (mode == "auto" and max_steps and max_steps > 0):
            total = self.trainer.estimated_stepping_batches
            self._decay = ("steps", total) if math.isfinite(total) else None
        elif mode in ("time", "auto") and timer is not None and timer._duration is not None:
            self._decay = ("time", timer._duration, timer)
        elif mode == "auto":
            total = self.trainer.estimated_stepping_batches
            self._decay = ("steps", total) if math.isfinite(total) else None
        if mode in ("steps", "time") and self._decay is None:
            raise ValueError(f"lr_decay={mode!r} needs the Trainer's max_steps/max_epochs (steps) or max_time (time)")

    def lr_at(self, step: int) -> float:
        """Linear warmup to the peak, then cosine decay to min_lr_ratio * peak at the end of training."""
        peak, warm = self.hparams.learning_rate, self.hparams.warmup_steps
        if step < warm:
            return peak * (step + 1) / warm
        if self._decay is None:
            return peak
        if self._decay[0] == "steps":
            progress = (step - warm) / max(1, self._decay[1] - warm)
        else:
            _, duration, timer = self._decay
            progress = timer.time_elapsed("train") / duration
        progress = min(max(progress, 0.0), 1.0)
        lo = peak * self.hparams.min_lr_ratio
        return lo + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - lo)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        lr = self.lr_at(self.global_step)
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        self._lr = lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self._lr)
        now = time.perf_counter()
        if self._last_batch_time is not None:  # time since the previous step: data, forward, backward, update
            self.log("train/tokens_per_s", x.numel() / (now - self._last_batch_time), prog_bar=True)
        self._last_batch_time = now
        return loss

    def on_train_epoch_start(self) -> None:
        self._last_batch_time = None  # do not count validation time as training time

    def on_validation_start(self) -> None:
        self._last_batch_time = None

    def validation_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        # weighted by characters, so the epoch value is the mean over every validation character
        self.log("val/loss", loss, batch_size=y.numel(), sync_dist=True, prog_bar=True)
        self.log("val/bpc", loss / math.log(2), batch_size=y.numel(), sync_dist=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        self.log("test/loss", loss, batch_size=y.numel(), sync_dist=True)
        self.log("test/bpc", loss / math.log(2), batch_size=y.numel(), sync_dist=True)


# --------------------------------------------------------------------------------------------------------------
# Samples at every validation


class TextSamplesCallback(pl.Callback):
    """Logs a table (temperature, sample) from a fixed prompt and seed after every validation.

    W&B shows it as a table (via genlab.callbacks.log_table); other loggers get a Markdown file in figures/.
    """

    def __init__(self, prompt: str | None = None, temperatures: list[float] = (0.5, 1.0, 1.5),
                 max_new_tokens: int = 200, seed: int = 0, key: str = "samples/text"):
        super().__init__()
        self.prompt, self.temperatures = prompt, [float(t) for t in temperatures]
        self.max_new_tokens, self.seed, self.key = max_new_tokens, seed, key
        for t in self.temperatures:
            check_sampling_args(max_new_tokens, t, None, None)

    def rows(self, pl_module: LanguageModel) -> list[list]:
        prompt = self.prompt if self.prompt is not None else pl_module.hparams.sample_prompt
        was_training = pl_module.training
        pl_module.eval()
        try:
            return [[t, pl_module.generate_text(prompt, self.max_new_tokens, t, seed=self.seed)]
                    for t in self.temperatures]
        finally:
            pl_module.train(was_training)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        from genlab.callbacks import log_table

        self.last_rows = self.rows(pl_module)  # genlab's end-of-run report prints the last ones
        log_table(trainer, self.key, ["temperature", "sample"], self.last_rows)


# --------------------------------------------------------------------------------------------------------------
# genlab generate


def _build_generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genlab generate",
        description="Generate text from a trained LanguageModel checkpoint: one sample per temperature. "
                    "The vocabulary is in the checkpoint, so no data set is needed.",
        epilog='example: genlab generate --ckpt runs/lm_shakespeare/checkpoints/last.ckpt --prompt "ROMEO:" '
               "--temperature 0.2 0.8 1.2 --max-new-tokens 400 --seed 0",
    )
    p.add_argument("--ckpt", required=True, help="a LanguageModel checkpoint (.ckpt)")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--temperature", type=float, nargs="+", default=[0.8], metavar="T",
                   help="one or more temperatures; 0 = greedy, <1 safer, >1 wilder (default 0.8)")
    p.add_argument("--max-new-tokens", type=int, default=400, help="characters to generate (default 400)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with probability p")
    p.add_argument("--seed", type=int, default=None, help="random seed (the same seed for every temperature)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context at every step")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def generate_main(argv: list[str] | None = None) -> int:
    parser = _build_generate_parser()
    args = parser.parse_args(argv)
    try:
        check_sampling_args(args.max_new_tokens, min(args.temperature), args.top_k, args.top_p)
    except ValueError as err:
        parser.error(str(err))
    from genlab.checkpoints import CheckpointError, load_module

    try:
        model = load_module(args.ckpt, expected=LanguageModel)
    except CheckpointError as err:
        print(f"genlab generate: error: {err}", file=sys.stderr)
        return 2
    try:
        model.encode(args.prompt)
    except ValueError as err:
        print(f"genlab generate: error: --prompt: {err}", file=sys.stderr)
        return 2
    model.to(args.device)
    for t in args.temperature:
        text = model.generate_text(args.prompt, args.max_new_tokens, t, args.top_k, args.top_p, args.seed,
                                   use_cache=not args.no_cache)
        label = f"temperature {t:g}" + (" (greedy)" if t == 0 else "")
        if args.seed is not None:
            label += f", seed {args.seed}"
        print(f"===== {label} =====")
        print(text)
        print()
    return 0


__all__ = ["GPTConfig", "GPT", "KVCache", "attention_reference", "sample_next", "LanguageModel",
           "TextSamplesCallback", "generate_main"]
