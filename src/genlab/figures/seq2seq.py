"""Pictures of a translator: its cross-attention, one heat map per decoder layer and head."""

from __future__ import annotations


def cross_attention_figure(source: str, hypothesis: str, weights: list, src_labels: list[str] | None = None,
                           tgt_labels: list[str] | None = None):
    """A matplotlib Figure from Translator.cross_attention: one heat map per decoder layer (rows) and head
    (columns) of weights [H, T_out + 1, S], output tokens (with the end token) down, source tokens across.
    src_labels, tgt_labels: the tokens' labels (subword pieces); None: the characters of source and hypothesis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layer, n_head = len(weights), weights[0].size(0)
    cols = list(source) if src_labels is None else list(src_labels)
    rows = [*(hypothesis if tgt_labels is None else tgt_labels), "</s>"]
    fig, axes = plt.subplots(n_layer, n_head, figsize=(0.22 * len(cols) * n_head + 1, 0.25 * len(rows) * n_layer + 1),
                             squeeze=False)
    for layer, w in enumerate(weights):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(w[head, : len(rows), : len(cols)].float().cpu().numpy(), cmap="viridis", vmin=0, vmax=1,
                      aspect="auto")
            ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=90 if src_labels is not None else 0)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_title(f"layer {layer + 1} head {head + 1}", fontsize=8)
    fig.suptitle(f"cross-attention: {source!r} -> {hypothesis!r}", fontsize=9)
    fig.tight_layout()
    return fig
