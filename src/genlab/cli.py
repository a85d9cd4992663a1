"""The `genlab` command: Lightning's CLI for training, plus the lab's tools.

`genlab fit|validate|test|predict -c configs/<name>.yaml` is LightningCLI (genlab.lightning_cli): the model and data
classes come from the config (`class_path`) and every argument can be overridden on the command line. The other
subcommands are small argparse programs, imported only when called, so `genlab precision` does not pay for Lightning.
"""

from __future__ import annotations

import importlib
import sys

TRAINING = {
    "fit": "train a model from a config: genlab fit -c configs/vae_mnist.yaml",
    "validate": "run the validation loop on a checkpoint: genlab validate -c CONFIG --ckpt_path CKPT",
    "test": "run the test loop on a checkpoint: genlab test -c CONFIG --ckpt_path CKPT",
    "predict": "run prediction on a checkpoint: genlab predict -c CONFIG --ckpt_path CKPT",
}
TOOLS = {  # each runs genlab.tools.<name>.main(argv) unless MAINS names another function
    "vae-figures": "render the VAE's latent grid, scatter, interpolation, reconstructions, samples",
    "evaluate": "FID, KID, class coverage of a VAE/DCGAN checkpoint, or the real-data floor",
    "sample": "write a grid of samples from a VAE or DCGAN checkpoint",
    "generate": "generate text from a language-model checkpoint at chosen temperatures",
    "attention": "heat maps of every layer's and head's attention over a text, from a language-model checkpoint",
    "translate": "translate text with a seq2seq checkpoint: greedy, sampled or beam search",
    "data": "prepare a corpus once: bible-eng-spa (English/Spanish verse pairs, split by book)",
    "sweep": "run a sweep of training runs over a grid or random sample of settings",
    "sweep-report": "rebuild a sweep's CSV, summary and plots from finished runs",
    "precision": "half/bfloat16/single/double (float16/32/64) limits; why fp16 loses tiny updates",
    "export-classifier": "export a trained judge classifier as the shipped FID weights (+ SHA-256)",
}
MAINS = {"sweep": "genlab.sweep:main", "sweep-report": "genlab.sweep:report_main"}


def usage() -> str:
    width = max(map(len, [*TRAINING, *TOOLS]))
    groups = {"training (PyTorch Lightning's CLI, configs in configs/):": TRAINING, "tools:": TOOLS}
    return "\n".join(["usage: genlab <command> [options]    (genlab <command> --help for its options)"] + [
        line for title, table in groups.items() for line in ["", title, *(f"  {n:<{width}}  {t}" for n, t in table.items())]])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from genlab import __version__

        print(f"genlab {__version__}")
        return 0
    if argv[0] in TRAINING:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from genlab.errors import say
        from genlab.lightning_cli import GenlabCLI

        try:
            GenlabCLI(args=argv)
        except SIGTERMException:  # Lightning stops at SIGTERM after saving state, with status 0 of its own
            return 128 + 15  # a shell's code for "terminated": schedulers and sweeps see an unfinished run
        except Exception as err:
            if (status := say(argv[0], err)) is None:
                raise  # a bug: its traceback
            return status
        return 0
    if argv[0] not in TOOLS:
        print(f"genlab: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, _, function = MAINS.get(argv[0], f"genlab.tools.{argv[0].replace('-', '_')}:main").partition(":")
    return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
