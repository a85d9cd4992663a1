"""genlab's LightningCLI: defaults every experiment shares, set once here instead of in every config."""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path
from typing import Literal, Union

from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from genlab.callbacks.checkpoint import LatestLastCheckpoint
from genlab.callbacks.summary import RunSummary
from genlab.hardware import resolve_channels_last, resolve_precision
from genlab.loggers import finish_wandb_run
from genlab.models.base import flush_denormals

DEFAULT_ROOT = "runs/default"
# Lightning's own precision values plus "auto", read from Trainer's signature so that they follow Lightning
_LIGHTNING_PRECISION = inspect.signature(Trainer.__init__).parameters["precision"].annotation
PRECISION = Union[Literal["auto"], _LIGHTNING_PRECISION]  # noqa: UP007  (a runtime value: no `|` on typing forms)


class GenlabTrainer(Trainer):
    """Lightning's Trainer that also takes `precision="auto"`: genlab.hardware's rule for this machine.

    The one way LightningCLI offers to widen the type its parser checks `--trainer.precision` against is its
    `trainer_class`; Lightning's Trainer itself rejects "auto". GenlabCLI resolves "auto" before the Trainer is
    built (and prints the choice once); this resolves it for a Trainer built directly from Python.
    """

    def __init__(self, *args, precision: PRECISION = None, **kwargs):
        super().__init__(*args, precision=resolve_precision(precision, kwargs.get("accelerator", "auto"))[0],
                         **kwargs)


class SaveConfigToRunFolder(SaveConfigCallback):
    """Writes the resolved config to <default_root_dir>/config.yaml (the W&B logger has no log_dir of its own)."""

    def __init__(self, *args, **kwargs):
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "config.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)


class GenlabCLI(LightningCLI):
    """Model and data from the config's `class_path`; W&B logging; checkpoints under the run folder.

    A run folder is `trainer.default_root_dir` (each config sets runs/<name>): checkpoints/ (best and
    last.ckpt, so `--ckpt_path last` resumes), figures/, config.yaml, summary.json. W&B's files go to ./wandb.
    """

    def __init__(self, args: list[str] | None = None, **kwargs):
        flush_denormals()  # before torch starts its worker threads, which inherit the setting
        trainer_defaults = {
            "default_root_dir": DEFAULT_ROOT,
            "logger": {"class_path": "genlab.loggers.WandbLogger", "init_args": {"project": "genlab"}},
        }
        if sys.stderr.isatty():
            trainer_defaults["callbacks"] = [{"class_path": "pytorch_lightning.callbacks.RichProgressBar"}]
        # genlab's own entry point hands LightningCLI the arguments it parsed from sys.argv: not a mistake
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
        try:
            super().__init__(
                model_class=None,
                datamodule_class=None,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_callback=SaveConfigToRunFolder,
                trainer_class=GenlabTrainer,
                trainer_defaults=trainer_defaults,
                seed_everything_default=0,
                args=args,
                **kwargs,
            )
        finally:
            finish_wandb_run()  # one W&B run per command, also when commands run in one process (tests, notebooks)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(LatestLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(RunSummary, "summary")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(root / "checkpoints")
        logger = config.trainer.logger
        if getattr(logger, "class_path", "") == "genlab.loggers.WandbLogger" and logger.init_args.get("name") is None:
            logger.init_args["name"] = root.name
        resolve_auto_settings(config)


def resolve_auto_settings(config) -> None:
    """Turns `precision: auto` and a model's `channels_last: auto` into this machine's values (genlab.hardware)
    before the Trainer and model are built, and prints each choice once, on rank 0."""
    from pytorch_lightning.utilities import rank_zero_info

    trainer = config.trainer
    requested = trainer.precision
    trainer.precision, reason = resolve_precision(requested, trainer.accelerator)
    if requested != trainer.precision:
        rank_zero_info(f"precision: {trainer.precision} ({reason})")
    init_args = getattr(config.model, "init_args", None)
    if init_args is not None and init_args.get("channels_last") == "auto":
        init_args["channels_last"], reason = resolve_channels_last("auto", trainer.accelerator, trainer.precision)
        rank_zero_info(f"channels_last: {str(init_args['channels_last']).lower()} ({reason})")


