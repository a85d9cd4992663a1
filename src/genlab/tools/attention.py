"""`genlab attention --ckpt LM.ckpt --text "..."`: what every head of a language model attends to, as one picture.

The weights come from the model's own attention blocks (GPT.attention_maps: each block's
CausalSelfAttention.weights, the softmax(QK^T/sqrt(d)) its forward applies), over the characters of the text.
"""

from __future__ import annotations

import argparse
import sys

from genlab.tools.checks import argument, says_input_errors


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genlab attention",
        description="Heat maps of the attention weights of every layer and head of a LanguageModel checkpoint over "
                    "a text (characters on both axes; rows: the query predicting the next character; columns: the "
                    "keys it attends to). Written as one PNG, and logged to W&B when --wandb-project is given.",
        epilog='example: genlab attention --ckpt runs/lm_shakespeare/checkpoints/last.ckpt --text "ROMEO:\\nBut '
               'soft, what light" --out attention.png',
    )
    p.add_argument("--ckpt", required=True, help="a LanguageModel checkpoint (.ckpt)")
    p.add_argument("--text", default=None,
                   help="the text to look at, readable up to ~64 characters (default: Tiny Shakespeare's first line)")
    p.add_argument("--out", default="attention.png", help="the PNG to write (default attention.png)")
    p.add_argument("--wandb-project", default=None,
                   help="also log the picture to a new W&B run in this project (offline without an API key)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


@says_input_errors("attention")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from genlab.checkpoints import load_module
    from genlab.figures.lm import ATTENTION_TEXT, attention_figure, text_attention
    from genlab.models.lm import LanguageModel
    from genlab.reporting import save_figure

    text = ATTENTION_TEXT if args.text is None else args.text
    model = load_module(args.ckpt, expected=LanguageModel)
    model.to(args.device)
    with argument("--text"):
        weights = text_attention(model, text)
    cfg = model.config
    title = (f"attention of {args.ckpt} ({cfg.n_layer} layers x {cfg.n_head} heads, {cfg.positional} positions): "
             "row = query, column = key; each row sums to 1")
    path = save_figure(attention_figure(weights, text, title), args.out)
    print(f"wrote {path} ({cfg.n_layer} layers x {cfg.n_head} heads over {len(text)} characters)")
    log_to_wandb("attention", path, args.wandb_project, caption=text)
    return 0


def log_to_wandb(key: str, path, project: str | None, caption: str | None = None) -> None:
    """Log the PNG to the active W&B run, or to a new one in `project`; nothing when neither exists."""
    if project is None and "wandb" not in sys.modules:
        return
    import wandb

    run, started = wandb.run, False
    if run is None and project is not None:
        run, started = wandb.init(project=project, job_type=key), True
    if run is None:
        return
    run.log({key: wandb.Image(str(path), caption=caption)})
    if started:
        run.finish()
