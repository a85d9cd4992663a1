"""`genlab sample`: a grid of images from any genlab image model (VAE or DCGAN) checkpoint."""

from __future__ import annotations

import argparse
import math

from genlab.tools.checks import ToolArgumentError, output_file, says_input_errors


@says_input_errors("sample")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genlab sample", description=__doc__)
    parser.add_argument("--ckpt", required=True, help="a VAE or DCGAN checkpoint (.ckpt)")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", default="samples.png", help="PNG file to write (default samples.png)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--nrow", type=int, default=None, help="images per row (default: a square grid)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    output_file(args.out)

    from torchvision.utils import save_image

    from genlab.checkpoints import load_module

    model = load_module(args.ckpt)
    if not hasattr(model, "sample"):
        raise ToolArgumentError(f"{args.ckpt} holds a {type(model).__name__}, which does not generate images")
    images = model.sample(args.n, seed=args.seed)
    save_image(images, args.out, nrow=args.nrow or math.ceil(math.sqrt(args.n)), padding=2)
    print(f"wrote {args.n} samples from {args.ckpt} to {args.out}")
    return 0
