"""Start a run from Python exactly as `genlab fit` does (config composition, `precision: auto`, run folder,
checkpoints, W&B, run summary), so that the figures of benchmarks, studies and tests come from the user's path.

    from genlab import launch
    run = launch.fit(["configs/lm_shakespeare.yaml"], {"trainer.max_time": "00:00:05:00"})
    run.trainer.global_step, run.model, run.datamodule
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Overrides = Mapping[str, Any] | Sequence[str]


@dataclass
class Run:
    trainer: Any
    model: Any
    datamodule: Any

    def fit(self) -> Run:
        """Train a run from `build`, closing its W&B run afterwards as the command does."""
        from genlab.loggers import finish_wandb_run

        try:
            self.trainer.fit(self.model, datamodule=self.datamodule)
        finally:
            finish_wandb_run()
        return self


def arguments(configs: Iterable[str | Path], overrides: Overrides = ()) -> list[str]:
    """`-c A -c B --key value ...`: a mapping's values written as the command line takes them (true, null, [1, 2]);
    a sequence passed as it is (already `--key value` pairs)."""
    args = [arg for config in configs for arg in ("-c", str(config))]
    if not isinstance(overrides, Mapping):
        return args + [str(arg) for arg in overrides]
    return args + [a for k, v in overrides.items() for a in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]


def init_args(items: Iterable[str]) -> dict[str, str]:
    """A benchmark's `--set KEY=VALUE ...` as overrides: `n_embd=256` sets the model's init_args,
    `data.batch_size=64` the data module's; values stay text, parsed by the command line as `genlab fit` would."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"genlab: --set takes KEY=VALUE (e.g. n_embd=256 or data.batch_size=64), got {item!r}")
        group = "data" if key.startswith("data.") else "model"
        overrides[f"{group}.init_args.{key.removeprefix('data.')}"] = value
    return overrides


def max_time(minutes: float) -> str:
    """A wall-clock budget as Lightning's `max_time` string, DD:HH:MM:SS (whole seconds, at least one)."""
    seconds = max(1, round(minutes * 60))
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _run(args: list[str], callbacks: Sequence, run: bool) -> Run:
    from genlab.errors import user_error
    from genlab.lightning_cli import GenlabCLI

    try:
        cli = GenlabCLI(args=args, extra_callbacks=callbacks, run=run)
    except Exception as err:  # a user's error: the one line `genlab fit` prints, without its traceback
        if (found := user_error(err)) is None:
            raise
        raise SystemExit(f"genlab: {found}") from None
    return Run(cli.trainer, cli.model, cli.datamodule)


def fit(configs: Iterable[str | Path], overrides: Overrides = (), callbacks: Sequence = ()) -> Run:
    """Train as `genlab fit -c CONFIG... --key value...` in this process, with `callbacks` added (e.g. a benchmark's
    timer). A run folder that holds a run is refused as by the command: pass `{"overwrite_run": True}` to start
    afresh."""
    return _run(["fit", *arguments(configs, overrides)], callbacks, run=True)


def build(configs: Iterable[str | Path], overrides: Overrides = (), callbacks: Sequence = ()) -> Run:
    """The trainer, model and data module `fit` would train, built but not trained: change what a study needs,
    then `run.fit()`. Unlike the command, it neither refuses an occupied run folder nor writes config.yaml."""
    return _run(arguments(configs, overrides), callbacks, run=False)
