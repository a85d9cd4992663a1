"""What a trained language model writes: one sample per temperature from a fixed prompt and seed."""

from __future__ import annotations

from genlab.runtime import eval_mode

# The fixed text whose attention the LM logs at each validation, and `genlab attention`'s default: the first line
# of Tiny Shakespeare, 60 characters (readable on one heat map).
ATTENTION_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak."


def sample_rows(model, prompt: str, temperatures: list[float], max_new_tokens: int, seed: int) -> list[list]:
    """[[temperature, prompt + sample], ...] from a LanguageModel, in eval mode (its mode restored afterwards).

    The same seed for every temperature, so the rows differ by the temperature alone.
    """
    with eval_mode(model):
        return [[t, model.generate_text(prompt, max_new_tokens, t, seed=seed)] for t in temperatures]


def token_label(ch: str) -> str:
    """A character as an axis label: whitespace made visible."""
    return {"\n": "\\n", " ": "␣", "\t": "\\t"}.get(ch, ch)


def attention_figure(weights, text: str, title: str = ""):
    """One heat map per layer (rows) and head (columns) of attention weights [n_layer, n_head, T, T] over `text`
    (T characters): query position on the vertical axis, key position on the horizontal one, both labelled with
    the characters. Sized so that each character keeps about 0.12 inch, readable at ~64 characters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    w = weights.detach().float().cpu()
    n_layer, n_head, t, _ = w.shape
    labels = [token_label(c) for c in text]
    side = max(3.0, 0.17 * t + 1.2)
    fig, axes = plt.subplots(n_layer, n_head, figsize=(side * n_head + 1.5, side * n_layer + 0.6), squeeze=False,
                             layout="constrained")
    font = 8 if t <= 48 else 7
    # a square-root colour scale: the small weights spread over many keys stay visible next to a sharp peak
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            im = ax.imshow(w[layer, head], cmap="viridis", norm=norm, interpolation="nearest")
            ax.set_title(f"layer {layer}, head {head}", fontsize=11)
            ax.set_xticks(range(t), labels, fontsize=font, fontfamily="monospace")
            ax.set_yticks(range(t), labels, fontsize=font, fontfamily="monospace")
            ax.tick_params(length=0, pad=1)
            ax.set_xlabel("key (attended to)", fontsize=9)
            ax.set_ylabel("query (predicting the next character)", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.4, label="attention weight (square-root scale)")
    fig.suptitle(title or "attention weights softmax(QK^T/sqrt(d)), causal: each row sums to 1", fontsize=12)
    return fig


def temperature_probs(logits, temperature: float):
    """softmax(z / T) over the vocabulary for logits z [V]; T = 0 is greedy: all mass on the argmax."""
    import torch

    z = logits.detach().double().cpu()
    if temperature == 0:
        return torch.nn.functional.one_hot(z.argmax(), z.numel()).double()
    return torch.softmax(z / temperature, dim=-1)


def entropy_bits(probs) -> float:
    """Shannon entropy of a distribution, in bits (0 log 0 = 0)."""
    import torch

    p = probs.double()
    return float(-(torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p))).sum())


def temperature_figure(logits, chars: str, temperatures: list[float], prompt: str, top: int = 20):
    """For the next character after `prompt`: bar charts of the `top` most likely characters at each temperature
    (softmax(z/T) of the logits z [V]), and the distribution's entropy in bits against T from 0.1 to 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    n = len(temperatures)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * (n + 1), 4.0), squeeze=False)
    top = min(top, len(chars))
    for ax, t in zip(axes[0], temperatures, strict=False):
        p = temperature_probs(logits, t)
        values, ids = torch.topk(p, top)
        ax.bar(range(top), values.numpy(), color="tab:blue")
        ax.set_xticks(range(top), [token_label(chars[i]) for i in ids.tolist()], fontfamily="monospace")
        ax.set_ylim(0, 1)
        ax.set_title(f"T = {t:g}" + (" (greedy)" if t == 0 else "") + f": entropy {entropy_bits(p):.2f} bits")
        ax.set_ylabel(f"probability (top {top})")
    ax = axes[0][n]
    ts = torch.linspace(0.1, 2.0, 96).tolist()
    ax.plot(ts, [entropy_bits(temperature_probs(logits, t)) for t in ts], color="tab:red")
    for t in temperatures:
        if 0.1 <= t <= 2.0:
            ax.plot([t], [entropy_bits(temperature_probs(logits, t))], "o", color="tab:blue")
    ax.axhline(torch.log2(torch.tensor(float(len(chars)))).item(), ls="--", color="gray",
               label=f"uniform over {len(chars)} characters")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("entropy of softmax(z/T) (bits)")
    ax.set_title("entropy against temperature")
    ax.legend(loc="lower right", fontsize=8)
    shown = prompt if len(prompt) <= 40 else "..." + prompt[-37:]
    fig.suptitle(f"next character after {shown!r}", fontsize=12)
    fig.tight_layout()
    return fig


def text_attention(model, text: str):
    """Attention weights [n_layer, n_head, T, T] of a LanguageModel over `text` (eval mode, mode restored)."""
    import torch

    if not text:
        raise ValueError("the text must contain at least one character")
    if len(text) > model.config.block_size:
        raise ValueError(f"the text has {len(text)} characters, more than the model's context of "
                         f"{model.config.block_size}; shorten it")
    ids = torch.tensor([model.encode(text)], dtype=torch.long, device=model.device)
    _, weights = model.model.attention_maps(ids)
    return weights[:, 0]


def next_char_logits(model, prompt: str):
    """The logits [V] for the character after `prompt` (its last block_size characters), in eval mode."""
    import torch

    if not prompt:
        raise ValueError("the prompt must contain at least one character (e.g. '\\n')")
    ids = torch.tensor([model.encode(prompt)[-model.config.block_size:]], dtype=torch.long, device=model.device)
    with eval_mode(model), torch.no_grad():
        logits, _ = model.model(ids)
    return logits[0, -1].float()
