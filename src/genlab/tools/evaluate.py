"""`genlab evaluate`: sample-quality metrics of a VAE/DCGAN checkpoint, or the real-data floor.

    genlab evaluate --ckpt runs/dcgan_mnist/checkpoints/last.ckpt [--n 10000] [--dataset mnist]
    genlab evaluate --floor --dataset mnist|fashion_mnist

Human-readable lines first; the LAST line is one JSON object with the keys fid, fid_floor, kid, kid_std,
inception_score, classes_covered, min_class_share, max_class_share, confident_fraction (and class_kl_uniform,
class_shares, n, dataset, seconds; the floor adds classifier_test_accuracy). Exit code 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from genlab.tools.checks import ToolArgumentError, argument, output_file, says_input_errors, torch_device

DATASETS = ("mnist", "fashion_mnist")  # = genlab.metrics.classifier.DATASETS (not imported: --help stays fast)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genlab evaluate",
        description=(
            "Score samples of an image model (any genlab checkpoint whose module has sample(n, seed)) with "
            "genlab's own classifier: FID and KID against the 10,000 test images, an Inception-Score analogue, "
            "class coverage and the confident fraction; or, with --floor, the same metrics for 10,000 real "
            "training images (the best a model can be expected to reach). The last line printed is one JSON object."
        ),
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--ckpt", help="checkpoint of a VAE, DCGAN or any module with sample(n, seed)")
    what.add_argument("--floor", action="store_true", help="real-data floor: 10,000 training images vs the test set")
    parser.add_argument("--n", type=int, default=10_000, help="samples to draw (floor: training images, <= 10000); default 10000")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="the judge and the real data (default: the checkpoint's `dataset` hyper-parameter, else mnist)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--value-range", choices=("0,1", "-1,1"), default="0,1",
                        help="range of the model's samples (genlab models return [0,1]); checked")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID: random subsets of 1000 (default 100)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    parser.add_argument("--out", default=None, help="also write the JSON object to this file")
    return parser


@says_input_errors("evaluate")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n must be at least 2, got {args.n}")
    if args.kid_subsets < 1:
        parser.error(f"--kid-subsets must be at least 1, got {args.kid_subsets}")
    if args.floor and args.dataset is None:
        args.dataset = "mnist"
    device = torch_device(args.device)  # before minutes of sampling and scoring
    if args.out:
        output_file(args.out)

    import torch

    from genlab.checkpoints import load_module
    from genlab.metrics.quality import SampleQuality, draw_samples

    value_range = (0, 1) if args.value_range == "0,1" else (-1, 1)
    t0 = time.perf_counter()
    timings = {}
    with argument():
        if args.floor:
            sq = SampleQuality(args.dataset, device=device, root=args.data_root, kid_subsets=args.kid_subsets)
            result = sq.floor(args.n)
            label = f"real-data floor: {min(args.n, 10_000)} {args.dataset} training images vs the 10,000 test images"
        else:
            model = load_module(args.ckpt)
            if not callable(getattr(model, "sample", None)):
                raise ToolArgumentError(f"{args.ckpt} holds a {type(model).__name__}, which has no sample(n, seed) "
                                        "method; evaluate needs an image model (VAE, DCGAN)")
            model_dataset = dict(getattr(model, "hparams", {})).get("dataset")
            dataset = args.dataset or model_dataset or "mnist"
            if args.dataset and model_dataset and args.dataset != model_dataset:
                print(f"note: {args.ckpt} models {model_dataset!r}, judged as {args.dataset!r} (--dataset)")
            sq = SampleQuality(dataset, device=device, root=args.data_root, kid_subsets=args.kid_subsets)
            model = model.to(device).eval()
            t = time.perf_counter()
            with torch.no_grad():
                images = draw_samples(model, args.n, args.seed)
            timings["seconds_sampling"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            result = sq.evaluate(images, value_range)
            timings["seconds_metrics"] = round(time.perf_counter() - t, 2)
            label = f"{args.n} samples of {type(model).__name__} ({args.ckpt}, seed {args.seed}) vs the 10,000 {dataset} test images"
    result.update(timings)
    result["seconds"] = round(time.perf_counter() - t0, 2)

    print(label)
    print(f"  FID {result['fid']:.3f}   (real-data floor at this sample size: {result['fid_floor']:.3f})")
    print(f"  KID {result['kid']:.5f} +- {result['kid_std']:.5f}   IS {result['inception_score']:.3f}")
    print(f"  classes covered (>= 5%): {result['classes_covered']}/10   shares {result['min_class_share']:.3f}.."
          f"{result['max_class_share']:.3f}   KL from uniform {result['class_kl_uniform']:.4f}")
    print(f"  confident fraction (top prob >= 0.9): {result['confident_fraction']:.4f}")
    if "classifier_test_accuracy" in result:
        print(f"  classifier test accuracy: {result['classifier_test_accuracy']:.4f}")
    line = json.dumps(result)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
