"""Export a trained Classifier checkpoint as genlab's shipped FID-judge weights (plain state_dict + SHA-256)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from genlab.tools.checks import ToolArgumentError, says_input_errors


@says_input_errors("export-classifier")
def main(argv: list[str] | None = None) -> int:
    """`genlab export-classifier --ckpt CKPT --dataset mnist [--out PATH]`.

    Loads a Classifier checkpoint, measures its accuracy on the full official test set, and writes the weights
    file and its .sha256 (default: the shipped location inside the package).
    """
    parser = argparse.ArgumentParser(
        prog="genlab export-classifier", description="Export a trained Classifier checkpoint as genlab's shipped weights."
    )
    parser.add_argument("--ckpt", required=True, help="Classifier checkpoint, e.g. runs/classifier_mnist/checkpoints/best.ckpt")
    parser.add_argument("--dataset", required=True, choices=("mnist", "fashion_mnist"))
    parser.add_argument("--out", default=None, help="weights file to write (default: the shipped one in the package)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    args = parser.parse_args(argv)

    import torch

    from genlab.checkpoints import load_module
    from genlab.data import load_images
    from genlab.metrics.classifier import accuracy, export_weights, weights_path
    from genlab.models.classifier import Classifier

    module = load_module(args.ckpt, expected=Classifier)
    if module.hparams.dataset != args.dataset:
        raise ToolArgumentError(f"{args.ckpt} was trained on {module.hparams.dataset!r}, not {args.dataset!r}: "
                                f"pass --dataset {module.hparams.dataset}")
    torch.set_grad_enabled(False)
    x, y = load_images(args.dataset, "test", args.data_root)
    t0 = time.perf_counter()
    acc = accuracy(module.net.eval(), x, y)
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    out = Path(args.out) if args.out else weights_path(args.dataset)
    extra = {"test_accuracy": acc, "epoch": int(ckpt.get("epoch", -1)), "global_step": int(ckpt.get("global_step", -1))}
    digest = export_weights(module, out, extra)
    result = {"dataset": args.dataset, "test_accuracy": acc, "weights": str(out), "sha256": digest,
              "bytes": out.stat().st_size, "accuracy_seconds": round(time.perf_counter() - t0, 2), **extra}
    print(json.dumps(result))
    return 0
