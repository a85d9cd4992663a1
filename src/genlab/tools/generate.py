"""`genlab generate --ckpt X --prompt "ROMEO:" --temperature 0.2 0.8 1.2`: text from a language-model checkpoint."""

from __future__ import annotations

import argparse

from genlab.tools.checks import ToolArgumentError, argument, says_input_errors, torch_device


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
    p.add_argument("--show-distribution", metavar="OUT.png", default=None,
                   help="also draw the prompt's next-character distribution: the top 20 probabilities "
                        "softmax(z/T) at each --temperature, and its entropy (bits) against T from 0.1 to 2")
    p.add_argument("--wandb-project", default=None,
                   help="with --show-distribution: also log the picture to a new W&B run in this project")
    return p


@says_input_errors("generate")
def main(argv: list[str] | None = None) -> int:
    parser = _build_generate_parser()
    args = parser.parse_args(argv)
    from genlab.nets.transformer import check_sampling_args

    with argument():
        for t in args.temperature:  # each one: min() would pass over a NaN
            check_sampling_args(args.max_new_tokens, t, args.top_k, args.top_p)
    if not args.prompt:
        raise ToolArgumentError("--prompt is empty; give at least one character, e.g. --prompt $'\\n'")
    torch_device(args.device)
    from genlab.checkpoints import load_module
    from genlab.models.lm import LanguageModel

    model = load_module(args.ckpt, expected=LanguageModel)
    with argument("--prompt"):
        model.encode(args.prompt)
    model.to(args.device)
    if args.show_distribution:
        from genlab.figures.lm import next_char_logits, temperature_figure
        from genlab.reporting import save_figure
        from genlab.tools.attention import log_to_wandb

        figure = temperature_figure(next_char_logits(model, args.prompt), model.vocab.chars, args.temperature,
                                    args.prompt)
        path = save_figure(figure, args.show_distribution)
        print(f"wrote {path} (next-character distribution at T = {', '.join(f'{t:g}' for t in args.temperature)})")
        log_to_wandb("temperature", path, args.wandb_project, caption=args.prompt)
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

