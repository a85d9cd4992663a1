"""The `genlab` command: Lightning's CLI for training, plus the lab's tools.

`genlab fit|validate|test|predict -c configs/<name>.yaml` is LightningCLI: the model and data classes come from
the config (`class_path`) and every argument can be overridden on the command line. The other subcommands are
small argparse programs, imported only when called, so `genlab precision` does not pay for Lightning's import.
"""

from __future__ import annotations

import importlib
import sys

LIGHTNING_COMMANDS = {
    "fit": "train a model from a config: genlab fit -c configs/vae_mnist.yaml",
    "validate": "run the validation loop on a checkpoint: genlab validate -c CONFIG --ckpt_path CKPT",
    "test": "run the test loop on a checkpoint: genlab test -c CONFIG --ckpt_path CKPT",
    "predict": "run prediction on a checkpoint: genlab predict -c CONFIG --ckpt_path CKPT",
}

TOOL_COMMANDS = {
    "vae-figures": ("genlab.tools.vae_figures:main",
                    "render the VAE's latent grid, scatter, interpolation, reconstructions, samples"),
    "evaluate": ("genlab.tools.evaluate:main", "FID, KID, class coverage of a VAE/DCGAN checkpoint, or the real-data floor"),
    "sample": ("genlab.tools.sample:main", "write a grid of samples from a VAE or DCGAN checkpoint"),
    "generate": ("genlab.tools.generate:main", "generate text from a language-model checkpoint at chosen temperatures"),
    "attention": ("genlab.tools.attention:main",
                  "heat maps of every layer's and head's attention over a text, from a language-model checkpoint"),
    "translate": ("genlab.tools.translate:main", "translate text with a seq2seq checkpoint: greedy, sampled or beam search"),
    "data": ("genlab.tools.data:main", "prepare a corpus once: bible-eng-spa (English/Spanish verse pairs, split by book)"),
    "sweep": ("genlab.sweep:main", "run a sweep of training runs over a grid or random sample of settings"),
    "sweep-report": ("genlab.sweep:report_main", "rebuild a sweep's CSV, summary and plots from finished runs"),
    "precision": ("genlab.tools.precision:main", "half/bfloat16/single/double (float16/32/64) limits; why fp16 loses tiny updates"),
    "export-classifier": ("genlab.tools.export_classifier:main",
                          "export a trained judge classifier as the shipped FID weights (+ SHA-256)"),
}


def usage() -> str:
    width = max(map(len, [*LIGHTNING_COMMANDS, *TOOL_COMMANDS]))
    lines = ["usage: genlab <command> [options]    (genlab <command> --help for its options)", "",
             "training (PyTorch Lightning's CLI, configs in configs/):"]
    lines += [f"  {name:<{width}}  {text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += ["", "tools:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in TOOL_COMMANDS.items()]
    return "\n".join(lines)


def run_lightning(args: list[str]):
    """LightningCLI with genlab's defaults: W&B logger (offline without a key), best+last checkpoints."""
    from genlab.lightning_cli import GenlabCLI

    return GenlabCLI(args=args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from genlab import __version__

        print(f"genlab {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_COMMANDS:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from genlab.lightning_cli import USER_ERRORS

        try:
            run_lightning(argv)
        except SIGTERMException:  # Lightning stops at SIGTERM after saving state, with status 0 of its own
            return 128 + 15  # a shell's code for "terminated": schedulers and sweeps see an unfinished run
        except USER_ERRORS as err:
            print(f"genlab {command}: {err}", file=sys.stderr)
            return 1 if isinstance(err, RuntimeError) else 2  # a failed run (NaN loss) or a bad input
        return 0
    if command not in TOOL_COMMANDS:
        print(f"genlab: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function_name = TOOL_COMMANDS[command][0].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
