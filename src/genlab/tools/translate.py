"""`genlab translate --ckpt X "text" ...`: translate with a Translator checkpoint (greedy, sampled or beam).

The arguments are parsed and checked before torch and Lightning are imported, so --help and argument errors
are instant.
"""

from __future__ import annotations

import argparse
import math
import sys

from genlab.tools.checks import argument, says_input_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genlab translate",
        description="Translate text with a trained seq2seq Translator checkpoint. The tokenizers are in the "
                    "checkpoint, so no data set is needed. Default: greedy decoding.",
        epilog='example: genlab translate --ckpt runs/seq2seq_dates/checkpoints/last.ckpt "3rd of March 1987" '
               '"Tue 4 Jul 2023" --beam 4',
    )
    p.add_argument("--ckpt", required=True, help="a Translator checkpoint (.ckpt)")
    p.add_argument("text", nargs="+", help="one or more texts to translate")
    p.add_argument("--beam", type=int, default=None, metavar="WIDTH", help="beam search of this width")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="0 = greedy (default); > 0 samples: <1 safer, >1 wilder")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with probability p")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole target prefix at every step")
    p.add_argument("--attention", default=None, metavar="PNG",
                   help="also write the cross-attention picture of the first text (per layer and head) here")
    return p


def check_args(parser: argparse.ArgumentParser, args) -> None:
    if args.beam is not None and args.beam < 1:
        parser.error(f"--beam must be >= 1, got {args.beam}")
    if not (args.temperature >= 0 and math.isfinite(args.temperature)):
        parser.error(f"--temperature must be a finite number >= 0 (0 = greedy), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        parser.error(f"--top-p must be in (0, 1], got {args.top_p}")
    sampling = args.temperature > 0 or args.top_k is not None or args.top_p is not None or args.seed is not None
    if args.beam is not None and sampling:
        parser.error("--beam searches for the most likely translation; it cannot be combined with "
                     "--temperature/--top-k/--top-p/--seed (choose one way of decoding)")
    if args.temperature == 0 and (args.top_k is not None or args.top_p is not None):
        parser.error("--top-k/--top-p restrict sampling; give a --temperature > 0 too")


@says_input_errors("translate")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)

    from genlab.checkpoints import load_module
    from genlab.models.seq2seq import Translator

    model = load_module(args.ckpt, expected=Translator)
    with argument():
        outputs = model.translate(args.text, args.beam, args.temperature, args.top_k, args.top_p, args.seed,
                                  use_cache=not args.no_cache)
    for text, out in zip(args.text, outputs, strict=True):
        print(f"{text}\t{out}")
    if args.attention:
        from genlab.reporting import save_figure

        _, figure = model.attention_figure(args.text[0], args.beam)
        print(f"cross-attention picture: {save_figure(figure, args.attention)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
