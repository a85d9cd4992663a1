"""`genlab vae-figures --ckpt X --out DIR`: a VAE checkpoint's five pictures as PNG files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Render the five pictures of a VAE checkpoint into a folder (PNG files named by their keys)."""
    parser = argparse.ArgumentParser(
        prog="genlab vae-figures",
        description="Render a VAE checkpoint's pictures (latent_grid, latent_scatter, interpolation, "
        "reconstructions, samples) from the test set into --out as PNG files.",
    )
    parser.add_argument("--ckpt", required=True, help="a genlab VAE checkpoint (e.g. runs/vae_mnist/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, help="folder for the PNG files (created)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    parser.add_argument("--grid-size", type=int, default=None, help="latent grid side (default: the model's)")
    parser.add_argument("--scatter-images", type=int, default=10000, help="test images in the scatter (default all)")
    parser.add_argument("--pixels", choices=["continuous", "binarized"], default="continuous",
                        help="test images as stored, or binarized with a fixed seed (as the binarized data module)")
    args = parser.parse_args(argv)
    if args.scatter_images < 1:  # before any loading: the scatter needs at least one image
        print(f"genlab vae-figures: error: --scatter-images must be >= 1, got {args.scatter_images}", file=sys.stderr)
        return 2
    from genlab.tools.checks import ToolArgumentError, output_folder

    try:
        output_folder(args.out)
    except ToolArgumentError as err:
        print(f"genlab vae-figures: error: {err}", file=sys.stderr)
        return 2

    import torch

    from genlab.callbacks import save_figure
    from genlab.checkpoints import CheckpointError, load_module
    from genlab.data import load_images
    from genlab.figures.vae import encode_means, latent_scatter_figure, make_figures
    from genlab.models.vae import VAE

    try:
        model = load_module(args.ckpt, expected=VAE)
    except CheckpointError as err:
        print(f"genlab vae-figures: error: {err}", file=sys.stderr)
        return 2
    if args.grid_size is not None:
        if args.grid_size < 1:
            parser.error("--grid-size must be >= 1")
        model.hparams.grid_size = args.grid_size
    try:
        if args.pixels == "binarized":  # the data module's fixed binarization of the test set
            from genlab.data import FashionMNISTDataModule, MNISTDataModule

            cls = FashionMNISTDataModule if model.hparams.dataset == "fashion_mnist" else MNISTDataModule
            test = cls(root=args.data_root, pixels="binarized").split("test")
            x, y = test.x, test.y
        else:
            x, y = load_images(model.hparams.dataset, "test", args.data_root)
    except (FileNotFoundError, ValueError) as err:
        print(f"genlab vae-figures: error: {err}", file=sys.stderr)
        return 2
    x, y = x[: max(1, args.scatter_images)], y[: max(1, args.scatter_images)]
    torch.manual_seed(0)
    mu = encode_means(model, x)
    names = None
    if model.hparams.dataset == "fashion_mnist":
        names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    figs = make_figures(model, x[:512], y[:512], mu, y, split="test")
    if names is not None:
        figs["latent_scatter"] = (latent_scatter_figure(mu, y, "test", names), figs["latent_scatter"][1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    for key, (image, caption) in figs.items():
        path = out / f"{key}.png"
        save_figure(image, path)
        print(f"{path}: {caption}")
    plt.close("all")
    return 0
