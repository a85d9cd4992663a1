"""genlab's LightningCLI: defaults every experiment shares, set once here instead of in every config."""

from __future__ import annotations

import inspect
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Literal, Union

from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genlab.callbacks.checkpoint import LatestLastCheckpoint
from genlab.callbacks.guards import FiniteLossGuard, NonFiniteLossError
from genlab.callbacks.summary import RunSummary
from genlab.checkpoint_io import AtomicCheckpointIO
from genlab.checkpoints import CheckpointError, read_checkpoint
from genlab.console import (
    class_of,
    end_of_run_report,
    explain_instantiation_error,
    explain_parse_error,
    quiet_third_party,
    short_warning,
)
from genlab.data.paths import DataError, DataNotFoundError
from genlab.hardware import resolve_channels_last, resolve_precision
from genlab.loggers import WandbLogger, finish_wandb_run
from genlab.models.base import flush_denormals

DEFAULT_ROOT = "runs/default"
SUBCOMMANDS = ("fit", "validate", "test", "predict")

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


class RunFolderError(ValueError):
    """Fitting from scratch into a folder that already holds a run, which would mix the two runs' files."""


class ConfigError(ValueError):
    """Settings that parse one by one but contradict each other."""


# errors of a genlab command's own making: `genlab` prints them as one line instead of a traceback
USER_ERRORS = (CheckpointError, RunFolderError, ConfigError, NonFiniteLossError, DataError, DataNotFoundError)


class SaveConfigToRunFolder(SaveConfigCallback):
    """Writes the resolved config to <default_root_dir>/config.yaml (the W&B logger has no log_dir of its own)."""

    def __init__(self, *args, **kwargs):
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        path = Path(trainer.default_root_dir) / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
        # the whole resolved config (trainer, model, data, callbacks, checkpoint), as W&B users expect to see it
        config = self.parser.dump(self.config, skip_none=False, format="yaml")
        import yaml

        resolved = {k: v for k, v in yaml.safe_load(config).items() if k not in ("config", "ckpt_path")}
        checkpoint = trainer.checkpoint_callback
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_hyperparams(resolved)
                if checkpoint is not None and getattr(checkpoint, "monitor", None):
                    logger.define_summary(checkpoint.monitor, checkpoint.mode)


class GenlabCLI(LightningCLI):
    """Model and data from the config's `class_path`; W&B logging; checkpoints under the run folder.

    A run folder is `trainer.default_root_dir` (each config sets runs/<name>): checkpoints/ (best and
    last.ckpt, so `--ckpt_path last` resumes), figures/, config.yaml, summary.json. W&B's files go to ./wandb.
    """

    def __init__(self, args: list[str] | None = None, extra_callbacks=(), **kwargs):
        self._extra_callbacks = list(extra_callbacks)  # a benchmark's timers, added to the config's callbacks
        if args is None or isinstance(args, (list, tuple)):
            args = with_bases(list(sys.argv[1:] if args is None else args))
        flush_denormals()  # before torch starts its worker threads, which inherit the setting
        quiet_third_party()
        warnings.formatwarning = short_warning
        trainer_defaults = {
            "default_root_dir": DEFAULT_ROOT,
            "logger": {"class_path": "genlab.loggers.WandbLogger", "init_args": {"project": "genlab"}},
        }
        # genlab's own entry point hands LightningCLI the arguments it parsed from sys.argv: not a mistake
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
        # parse errors come back as exceptions, so that genlab can say them in one line (see parse_arguments)
        parser_kwargs = {"exit_on_error": False, **{name: {"exit_on_error": False} for name in SUBCOMMANDS}}
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
                parser_kwargs=parser_kwargs,
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
        from jsonargparse import ArgumentError

        args, print_options = _without_print_config(args)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:  # parser_kwargs' exit_on_error=False brings config mistakes here
            sys.stderr.write(f"genlab: {explain_parse_error(str(err), parser)}\n")
            raise SystemExit(2) from None
        if print_options is not None:  # printed here, after genlab's own settings, so it shows what will run
            subcommand = self.config.get("subcommand")
            config = self.config[subcommand] if subcommand else self.config
            share_data_settings(config)
            sys.stdout.write(self._parser(subcommand).dump(config, skip_validation=True, **print_options))
            raise SystemExit(0)
        # LightningCLI reads --ckpt_path's hyper-parameters right after parsing: check the file first, so that a
        # broken or unsafe checkpoint is refused with one line (unless the user opted out with --weights_only false)
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        ckpt = config.get("ckpt_path")
        if ckpt and Path(ckpt).is_file():
            loaded = read_checkpoint(ckpt) if config.get("weights_only") is not False else None
            self._check_checkpoint_hparams(ckpt, config, loaded)

    def _check_checkpoint_hparams(self, ckpt: str, config, loaded: dict | None = None) -> None:
        """LightningCLI then parses the checkpoint's hyper-parameters over the config: refuse a class outside genlab
        (parsing would import its module) and hyper-parameters that do not parse, in one line each, and name the
        values that replace the config's and the command line's."""
        import copy

        import torch

        if loaded is None:  # not read yet (the user turned the safety check off): its hyper-parameters only
            loaded = torch.load(ckpt, map_location="cpu", weights_only=True)
        hparams = dict(loaded.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        class_path = hparams.get("_class_path")
        chosen = str(getattr(config.model, "class_path", "") or "")
        if class_path is not None and not str(class_path).startswith("genlab.") and class_path != chosen:
            raise CheckpointError(
                f"{ckpt} names the model class {class_path!r}, outside genlab: refusing to import it (a checkpoint's "
                f"hyper-parameters choose the class that is built); resume from a checkpoint genlab wrote")
        if not hparams:
            return
        hparams.pop("_class_path", None)
        payload = {"class_path": class_path, "dict_kwargs": dict(hparams)} if class_path else dict(hparams)
        subcommand = self.config.get("subcommand")
        try:
            self.parser.parse_object({subcommand: {"model": payload}} if subcommand else {"model": payload},
                                     copy.deepcopy(self.config))
        except (Exception, SystemExit) as err:  # noqa: BLE001  (jsonargparse's errors vary by type and version)
            raise CheckpointError(f"{ckpt} holds hyper-parameters its model does not accept: "
                                  f"{explain_instantiation_error(err)}") from None
        given = getattr(config.model, "init_args", None) or {}
        changed = [f"{key} {value!r} (given {given[key]!r})" for key, value in hparams.items()
                   if key in given and _plain(given[key]) != _plain(value)]
        if changed:
            sys.stderr.write(f"genlab: model hyper-parameters from the checkpoint {ckpt} replace the config's and "
                             f"the command line's: {', '.join(changed)}\n")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:  # a constructor's own check (latent_dim 0, batch_size 0), wrapped by jsonargparse
            sys.stderr.write(f"genlab: {explain_instantiation_error(err)}\n")
            raise SystemExit(2) from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
        logger = config.trainer.logger
        is_wandb = getattr(logger, "class_path", "") == "genlab.loggers.WandbLogger"
        sweep_id, wandb_run_id = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
        if sweep_id and wandb_run_id:
            # a run started by `wandb agent`: every run of the sweep gets its own folder and name
            root = root / f"sweep-{sweep_id}" / wandb_run_id
            config.trainer.default_root_dir = str(root)
            if is_wandb:
                logger.init_args["name"] = f"{root.parent.parent.name}-{wandb_run_id}"
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(root / "checkpoints")
        if config.get("weights_only", False) is None:  # resume without unpickling code, whatever the environment says
            config.weights_only = True
        if self.subcommand == "fit" and config.get("ckpt_path") is None:
            self._refuse_existing_run(root, Path(config.checkpoint.dirpath), config.overwrite_run)
        if "overwrite_run" in config:
            config.overwrite_run = False  # acted on; config.yaml must not repeat it when reused
        if is_wandb and logger.init_args.get("name") is None:
            logger.init_args["name"] = root.name
        resolve_auto_settings(config)
        share_data_settings(config)
        if config.trainer.strategy == "ddp" and getattr(_model_class(config), "ddp_find_unused_parameters", False):
            # Lightning's registered name for DDP that tolerates parameters a backward pass leaves unused
            config.trainer.strategy = "ddp_find_unused_parameters_true"

    def after_fit(self) -> None:
        if self.trainer.is_global_zero:
            print(end_of_run_report(self.trainer, self.model), flush=True)

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
        trainer.callbacks.extend(self._extra_callbacks)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own CheckpointIO plugin is kept
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def _plain(value):
    """A value as the checkpoint stores it (lists, not tuples), for comparing it with the config's."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


_OVERRIDE_HEADER = re.compile(r"# Override of (?:\S*/)?(\S+\.yaml)")


def _base_of(path: Path) -> Path | None:
    """The base config an override file names on its first line ("# Override of configs/X.yaml"), in its folder."""
    try:
        with open(path, encoding="utf-8") as file:
            match = _OVERRIDE_HEADER.match(file.readline())
    except OSError:  # not a readable file: the parser says so
        return None
    return path.parent / match.group(1) if match else None


def with_bases(args: list[str]) -> list[str]:
    """Put each override file's base config before it unless it was given: `-c configs/vae_fashion_mnist.yaml`
    alone then means `-c configs/vae_mnist.yaml -c configs/vae_fashion_mnist.yaml`."""
    out: list[str] = []
    given: set[Path] = set()
    i = 0
    while i < len(args):
        flag, value = args[i], None
        if flag in ("-c", "--config") and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif flag.startswith("--config="):
            flag, value, i = "--config", flag.partition("=")[2], i + 1
        else:
            out.append(flag)
            i += 1
            continue
        path = Path(value)
        base = _base_of(path)
        if base is not None and base.resolve() not in given:
            out += [flag, str(base)]
            given.add(base.resolve())
        out += [flag, value]
        given.add(path.resolve())
    return out


def _without_print_config(args):
    """`--print_config[=flags]` taken out of the arguments: (the rest, jsonargparse's dump options, or None).
    jsonargparse would print during parsing, before the model takes block_size and the data set from the data."""
    if args is None or isinstance(args, dict) or not any(str(a).startswith("--print_config") for a in args):
        return args, None
    names = {"skip_default": "skip_default", "skip_unset": "skip_unset", "skip_null": "skip_unset",
             "comments": "with_comments"}  # jsonargparse's flags
    rest, options = [], {"skip_unset": False}
    for arg in args:
        flag, _, value = str(arg).partition("=")
        if flag != "--print_config":
            rest.append(arg)
            continue
        for option in filter(None, value.split(",")):
            if option not in names:
                raise ConfigError(f"--print_config takes {', '.join(names)} (comma-separated), got {option!r}")
            options[names[option]] = True
    return rest, options


def _model_class(config):
    """The model class a parsed config names (already imported by the parser), or None."""
    return class_of(getattr(config.model, "class_path", ""))


def share_data_settings(config) -> None:
    """Values the model and the data must agree on, stated once: in the data's config (block_size) or by the data
    module's class (dataset). The model's value is filled in when it is left at its default; a model value set to
    something else is an error, not a silent mismatch."""
    model_args, data_args = getattr(config.model, "init_args", None), getattr(config.data, "init_args", None)
    model_cls, data_cls = _model_class(config), class_of(getattr(config.data, "class_path", ""))
    if model_args is None or model_cls is None:
        return
    shared = {}
    if data_args is not None and data_args.get("block_size") is not None:
        shared["block_size"] = data_args.get("block_size")
    if getattr(data_cls, "dataset_name", None):
        shared["dataset"] = data_cls.dataset_name
    defaults = {k: p.default for k, p in inspect.signature(model_cls.__init__).parameters.items()}
    for key, value in shared.items():
        if key not in model_args:
            continue
        if model_args[key] in (None, defaults.get(key), value):
            model_args[key] = value
        else:
            raise ConfigError(
                f"model.init_args.{key} is {model_args[key]!r} but the data gives {value!r}: set it once, in the "
                f"data's config (the model takes it from there)"
            )


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
