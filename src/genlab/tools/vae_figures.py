"""`genlab vae-figures --ckpt X --out DIR`: a VAE checkpoint's five pictures as PNG files and its latent explorer."""

from __future__ import annotations

import argparse

from genlab.tools.checks import ToolArgumentError, argument, output_folder, says_input_errors


@says_input_errors("vae-figures")
def main(argv: list[str] | None = None) -> int:
    """Render the five pictures of a VAE checkpoint into a folder (PNG files named by their keys) and the latent
    explorer (latent_explorer.html)."""
    parser = argparse.ArgumentParser(
        prog="genlab vae-figures",
        description="Render a VAE checkpoint's pictures (latent_grid, latent_scatter, interpolation, "
        "reconstructions, samples) from the test set into --out as PNG files, and the interactive latent "
        "explorer as latent_explorer.html.",
    )
    parser.add_argument("--ckpt", required=True, help="a genlab VAE checkpoint (e.g. runs/vae_mnist/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, help="folder for the PNG files (created)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    parser.add_argument("--grid-size", type=int, default=None, help="latent grid side (default: the model's)")
    parser.add_argument("--scatter-images", type=int, default=10000, help="test images in the scatter (default all)")
    parser.add_argument("--pixels", choices=["continuous", "binarized"], default="continuous",
                        help="test images as stored, or binarized with a fixed seed (as the binarized data module)")
    parser.add_argument("--from", dest="cls_from", default=None, metavar="CLASS",
                        help="interpolate from a representative test image of this class (label or class name; "
                        "default: the model's interpolate_from)")
    parser.add_argument("--to", dest="cls_to", default=None, metavar="CLASS",
                        help="... to a representative test image of this class (default: the model's interpolate_to)")
    parser.add_argument("--from-index", type=int, default=None, metavar="I",
                        help="interpolate from test image number I instead (with --to-index)")
    parser.add_argument("--to-index", type=int, default=None, metavar="J", help="... to test image number J")
    parser.add_argument("--no-explorer", action="store_true", help="skip latent_explorer.html")
    args = parser.parse_args(argv)
    if (args.from_index is None) != (args.to_index is None):
        parser.error("--from-index and --to-index go together: give both, or neither")
    if args.from_index is not None and (args.cls_from is not None or args.cls_to is not None):
        parser.error("give the interpolation's ends either as classes (--from/--to) or as images "
                     "(--from-index/--to-index), not both")
    if args.scatter_images < 1:  # before any loading: the scatter needs at least one image
        raise ToolArgumentError(f"--scatter-images must be >= 1, got {args.scatter_images}")
    out = output_folder(args.out)  # created now, refused now if it cannot be

    import torch

    from genlab.checkpoints import load_module
    from genlab.data import class_index, load_images
    from genlab.figures.vae import encode_means, explorer_page, make_figures
    from genlab.models.vae import VAE
    from genlab.reporting import save_figure

    model = load_module(args.ckpt, expected=VAE)
    if args.grid_size is not None:
        if args.grid_size < 1:
            parser.error("--grid-size must be >= 1")
        model.hparams.grid_size = args.grid_size
    dataset = model.hparams.dataset
    try:
        pair = (class_index(dataset, args.cls_from if args.cls_from is not None else str(model.hparams.interpolate_from)),
                class_index(dataset, args.cls_to if args.cls_to is not None else str(model.hparams.interpolate_to)))
    except ValueError as err:
        parser.error(str(err))
    with argument():
        if args.pixels == "binarized":  # the data module's fixed binarization of the test set
            from genlab.data import FashionMNISTDataModule, MNISTDataModule

            cls = FashionMNISTDataModule if dataset == "fashion_mnist" else MNISTDataModule
            test = cls(root=args.data_root, pixels="binarized").split("test")
            x, y = test.x, test.y
        else:
            x, y = load_images(dataset, "test", args.data_root)
    x, y = x[: args.scatter_images], y[: args.scatter_images]
    indices = None
    if args.from_index is not None:
        indices = (args.from_index, args.to_index)
        if not all(0 <= i < len(x) for i in indices):
            parser.error(f"--from-index/--to-index must be test image numbers 0-{len(x) - 1}, got {indices[0]}, {indices[1]}")
    elif not all((y == c).any() for c in pair):
        parser.error(f"the {len(x)} test images hold no image of class {[c for c in pair if not (y == c).any()][0]}: "
                     "raise --scatter-images")
    torch.manual_seed(0)
    mu = encode_means(model, x)
    figs = make_figures(model, x, y, mu, y, split="test", pair=pair, indices=indices)
    import matplotlib.pyplot as plt

    for key, (image, caption) in figs.items():
        path = out / f"{key}.png"
        save_figure(image, path)
        print(f"{path}: {caption}")
    plt.close("all")
    if not args.no_explorer:
        page = out / "latent_explorer.html"
        page.write_text(explorer_page(model, mu, y, split="test"), encoding="utf-8")
        print(f"{page}: the latent explorer, {page.stat().st_size / 1e3:.0f} kB (open it in a browser)")
    return 0
