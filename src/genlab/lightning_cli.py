"""genlab's LightningCLI: defaults every experiment shares, set once here instead of in every config."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genlab.callbacks.checkpoint import LatestLastCheckpoint
from genlab.callbacks.guards import FiniteLossGuard, NonFiniteLossError
from genlab.callbacks.summary import RunSummary
from genlab.checkpoint_io import AtomicCheckpointIO
from genlab.checkpoints import CheckpointError, read_checkpoint
from genlab.loggers import finish_wandb_run
from genlab.models.base import flush_denormals

DEFAULT_ROOT = "runs/default"


class RunFolderError(ValueError):
    """Fitting from scratch into a folder that already holds a run, which would mix the two runs' files."""


# errors of a genlab command's own making: `genlab` prints them as one line instead of a traceback
USER_ERRORS = (CheckpointError, RunFolderError, NonFiniteLossError)


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
        parser.add_argument("--overwrite_run", type=bool, default=False,
                            help="fit from scratch into a run folder that already holds a run, deleting its "
                                 "checkpoints and summary.json (without it such a fit is refused)")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads --ckpt_path's hyper-parameters right after parsing: check the file first, so that a
        # broken or unsafe checkpoint is refused with one line (unless the user opted out with --weights_only false)
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        ckpt = config.get("ckpt_path")
        if ckpt and Path(ckpt).is_file() and config.get("weights_only") is not False:
            read_checkpoint(ckpt)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(root / "checkpoints")
        if config.get("weights_only", False) is None:  # resume without unpickling code, whatever the environment says
            config.weights_only = True
        if self.subcommand == "fit" and config.get("ckpt_path") is None:
            self._refuse_existing_run(root, Path(config.checkpoint.dirpath), config.overwrite_run)
        if "overwrite_run" in config:
            config.overwrite_run = False  # acted on; config.yaml must not repeat it when reused
        logger = config.trainer.logger
        if getattr(logger, "class_path", "") == "genlab.loggers.WandbLogger" and logger.init_args.get("name") is None:
            logger.init_args["name"] = root.name

    @staticmethod
    def _refuse_existing_run(root: Path, ckpt_dir: Path, overwrite: bool) -> None:
        """Refuse to start a second run in a run folder: its config.yaml and summary.json would be replaced while the
        old checkpoints stay, and Lightning would write the new last.ckpt as last-v1.ckpt, so the folder would
        silently mix two runs. Refusing loses nothing and the way on is one flag away."""
        old = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
        if not old:
            return
        if not overwrite:
            raise RunFolderError(
                f"{root} already holds a run ({', '.join(p.name for p in old)} in {ckpt_dir}): resume it with "
                f"`--ckpt_path last`, train into a new folder with `--trainer.default_root_dir runs/<new name>`, "
                f"or delete that run and start over with `--overwrite_run true`"
            )
        for path in old:
            path.unlink(missing_ok=True)  # every process of a multi-process run gets here
        (root / "summary.json").unlink(missing_ok=True)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(FiniteLossGuard())
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own CheckpointIO plugin is kept
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


