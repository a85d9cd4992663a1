"""genlab's LightningCLI: the defaults every experiment shares, set once here instead of in every config.

A run folder is `trainer.default_root_dir` (each config sets runs/<name>): checkpoints/ (best and last.ckpt, so
`--ckpt_path last` resumes), figures/, config.yaml, summary.json; W&B's files go to ./wandb. A config that changes
another one names it with a top-level `base:` key (a path relative to its own folder), and genlab reads that base
first: `-c configs/vae_fashion_mnist.yaml` alone means `-c configs/vae_mnist.yaml -c configs/vae_fashion_mnist.yaml`.
"""

from __future__ import annotations

import inspect
import os
import pydoc
import shlex
import sys
from argparse import SUPPRESS
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from jsonargparse import ArgumentError, Namespace
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities import rank_zero_info

from genlab import errors
from genlab.callbacks.guards import FiniteLossGuard
from genlab.callbacks.last_checkpoint import LatestLastCheckpoint
from genlab.callbacks.progress import GenlabProgressBar
from genlab.callbacks.summary import RunSummary
from genlab.checkpoints import AtomicCheckpointIO, CheckpointError, check_resumable
from genlab.console import quiet_third_party
from genlab.hardware import resolve_channels_last, resolve_precision
from genlab.loggers import OfflineFirstWandbLogger, finish_wandb_run
from genlab.runtime import flush_denormals

DEFAULT_ROOT = "runs/default"
# Lightning's own types of these arguments, read from Trainer's signature so that they follow Lightning
_PRECISION, PLUGINS, CALLBACKS = (inspect.signature(Trainer.__init__).parameters[k].annotation
                                  for k in ("precision", "plugins", "callbacks"))
PRECISION = Union[Literal["auto"], _PRECISION]  # noqa: UP007  (a runtime value: no `|` on typing forms)


def _listed(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class GenlabTrainer(Trainer):
    """Lightning's Trainer that takes `precision="auto"` (genlab.hardware's rule for this machine), writes its
    checkpoint files atomically (AtomicCheckpointIO, unless a CheckpointIO plugin is given) and shows genlab's
    progress bar (unless another is given). LightningCLI's `trainer_class` is its one way to widen the type that
    `--trainer.precision` is checked against."""

    def __init__(self, *args, precision: PRECISION = None, plugins: PLUGINS = None, callbacks: CALLBACKS = None,
                 **kwargs):
        plugins, callbacks = _listed(plugins), _listed(callbacks)
        plugins += [] if any(isinstance(p, CheckpointIO) for p in plugins) else [AtomicCheckpointIO()]
        if kwargs.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(GenlabProgressBar())
        precision = resolve_precision(precision, kwargs.get("accelerator", "auto"))[0]
        super().__init__(*args, precision=precision, plugins=plugins, callbacks=callbacks, **kwargs)


class SaveConfigToRunFolder(SaveConfigCallback):
    """The resolved config as <default_root_dir>/config.yaml (the W&B logger has no log_dir of its own) and in W&B."""

    def save_config(self, trainer: Trainer, pl_module, stage: str) -> None:
        text, checkpoint = self.parser.dump(self.config, skip_none=False), trainer.checkpoint_callback
        Path(trainer.default_root_dir).mkdir(parents=True, exist_ok=True)
        (Path(trainer.default_root_dir) / "config.yaml").write_text(text)
        for logger in (lg for lg in trainer.loggers if isinstance(lg, OfflineFirstWandbLogger)):
            logger.log_hyperparams({k: v for k, v in yaml.safe_load(text).items() if k not in ("config", "ckpt_path")})
            if getattr(checkpoint, "monitor", None):
                logger.define_summary(checkpoint.monitor, checkpoint.mode)


def _from_data(key: str):
    """A link's compute_fn: the model's `key` is the data's (its init_args' `block_size`, its class's `dataset_name`);
    a model value set to something else is refused rather than silently replaced."""

    def take(data_value, model_value, model_class_path):
        data_value = getattr(pydoc.locate(data_value), "dataset_name", None) if key == "dataset" else data_value
        default = inspect.signature(pydoc.locate(model_class_path)).parameters[key].default
        if data_value is not None and model_value not in (None, default, data_value):
            raise errors.ConfigError(f"model.init_args.{key} is {model_value!r} but the data gives {data_value!r}: "
                                     "set it once, in the data's config (the model takes it from there)")
        return model_value if data_value is None else data_value

    take.__name__ = f"{key}_from_data"  # how `--help` lists the link
    return take


class GenlabCLI(LightningCLI):
    """LightningCLI with model and data from the config's `class_path`, W&B logging (offline without a key), best
    and last checkpoints and summary.json in the run folder, and each mistake said in one line (genlab.errors)."""

    def __init__(self, args: list[str] | None = None, extra_callbacks=(), **kwargs):
        flush_denormals()  # before torch starts its worker threads, which inherit the setting
        quiet_third_party()
        self.parsers: list[LightningArgumentParser] = []
        self.argv, refused = list(sys.argv[1:] if args is None else args), False
        logger = {"class_path": "genlab.loggers.OfflineFirstWandbLogger", "init_args": {"project": "genlab"}}
        try:  # parse errors come back as exceptions (exit_on_error=False), to be said in one line
            super().__init__(
                save_config_callback=SaveConfigToRunFolder, save_config_kwargs={"save_to_log_dir": False},
                trainer_class=GenlabTrainer, seed_everything_default=0, args=with_bases(self.argv),
                trainer_defaults={"default_root_dir": DEFAULT_ROOT, "logger": logger,
                                  "callbacks": [FiniteLossGuard(), *extra_callbacks]},  # a benchmark's timers
                parser_kwargs={"exit_on_error": False, **{name: {"exit_on_error": False} for name in self.subcommands()}},
                **kwargs)
        except ArgumentError as err:  # not the command line's (parse_arguments says those): the checkpoint's
            refused = True
            raise CheckpointError(f"{self.resumed} holds hyper-parameters its model does not accept: "
                                  f"{errors.explain_instantiation_error(err)}") from None
        except Exception as err:
            refused = errors.user_error(err) is not None and getattr(getattr(self, "trainer", None), "global_step", 0) == 0
            raise
        finally:  # one W&B run per command, also when commands run in one process (tests, notebooks)
            finish_wandb_run(discard=refused)  # a fit refused before training logged nothing

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        self.parsers.append(parser)
        parser.add_lightning_class_args(LatestLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.add_argument("--overwrite_run", type=bool, default=False,
                            help="fit from scratch into a run folder that already holds a run, deleting its "
                                 "checkpoints and summary.json (without it such a fit is refused)")
        # a config file's `base:`, acted on by with_bases before parsing; left out of dumps (SUPPRESS), so that
        # config.yaml and --print_config show a whole config that stands alone
        parser.add_argument("--base", type=Optional[str], default=None, help=SUPPRESS)  # noqa: UP045
        for key, source in (("block_size", "data.init_args.block_size"), ("dataset", "data.class_path")):
            target = f"model.init_args.{key}"
            parser.link_arguments((source, target, "model.class_path"), target, compute_fn=_from_data(key))

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:  # parser_kwargs' exit_on_error=False brings config mistakes here
            flags = sorted({f"--{key}" for p in self.parsers for key in p.get_defaults(skip_validation=True).keys()})
            raise errors.user_error(err) or errors.ConfigError(errors.explain_parse_error(str(err), flags)) from None
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        self.resumed, self.given = config.get("ckpt_path"), Namespace()
        if self.resumed and config.get("overwrite_run"):
            raise errors.ConfigError(f"--overwrite_run true deletes the run that --ckpt_path {self.resumed} resumes: "
                                     "give one of them (resume, or start over)")
        if self.resumed and Path(self.resumed).is_file():  # LightningCLI parses its hyper-parameters next
            saved = dict(check_resumable(self.resumed).get("hyper_parameters") or {}).get("_class_path")
            wanted = getattr(config.model, "class_path", None)
            if saved and wanted and saved != wanted:  # LightningCLI would build the checkpoint's class silently
                raise CheckpointError(f"{self.resumed} is a {saved.rpartition('.')[2]} checkpoint ({saved}) but the "
                                      f"config trains a {wanted.rpartition('.')[2]} ({wanted}): resume with that "
                                      "model's config, or pass this config's own checkpoint")
            self.given = (getattr(config.model, "init_args", None) or self.given).clone()

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:  # a constructor's own check (latent_dim 0, batch_size 0), wrapped by jsonargparse
            raise errors.ConfigError(errors.explain_instantiation_error(err)) from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root, logger, name = Path(config.trainer.default_root_dir or DEFAULT_ROOT), config.trainer.logger, None
        if (sweep := os.environ.get("WANDB_SWEEP_ID")) and (run_id := os.environ.get("WANDB_RUN_ID")):
            # a run started by `wandb agent`: every run of the sweep gets its own folder and name
            name, root = f"{root.name}-{run_id}", root / f"sweep-{sweep}" / run_id
            config.trainer.default_root_dir = str(root)
        if isinstance(logger, Namespace) and "name" in logger.get("init_args", {}):  # a logger with a run name
            logger.init_args.name = name or logger.init_args.name or root.name
        config.checkpoint.dirpath = config.checkpoint.dirpath or str(root / "checkpoints")
        if self.subcommand == "fit" and config.ckpt_path is None:
            refuse_existing_run(root, Path(config.checkpoint.dirpath), config.overwrite_run)
        if config.get("weights_only", False) is None:  # resume without unpickling code, whatever the environment says
            config.weights_only = True
        config.overwrite_run = False  # acted on: config.yaml must not repeat it when reused
        if changed := [f"{key} {value!r} (given {self.given[key]!r})" for key, value in config.model.init_args.items()
                       if key in self.given and self.given[key] != value]:
            sys.stderr.write(f"genlab: model hyper-parameters from the checkpoint {self.resumed} replace the "
                             f"config's and the command line's: {', '.join(changed)}\n")
        resolve_auto_settings(config)
        if config.trainer.strategy == "ddp" and getattr(pydoc.locate(config.model.class_path), "ddp_find_unused_parameters",
                                                        False):  # Lightning's name for DDP that tolerates unused parameters
            config.trainer.strategy = "ddp_find_unused_parameters_true"

    def before_fit(self) -> None:  # the command that resumes this run, said when Ctrl+C or SIGTERM stops it
        if isinstance(self.trainer.checkpoint_callback, LatestLastCheckpoint):
            self.trainer.checkpoint_callback.resume_command = resume_command(self.argv)

    def after_fit(self) -> None:  # the end-of-run report, after the progress bar (on_fit_end is still under it)
        if self.trainer.is_global_zero:
            summary = next(c for c in self.trainer.callbacks if isinstance(c, RunSummary))
            print(summary.report(self.trainer, self.model), flush=True)


def resume_command(args: list[str]) -> str:
    """`genlab fit` with the same arguments, resuming from last.ckpt (any --ckpt_path or --overwrite_run dropped)."""
    drop = ("--ckpt_path", "--overwrite_run")
    kept = [arg for i, arg in enumerate(args) if arg.split("=")[0] not in drop and (i == 0 or args[i - 1] not in drop)]
    return shlex.join(["genlab", *kept, "--ckpt_path", "last"])


def with_bases(args: list[str]) -> list[str]:
    """The arguments with each config file's `base:` put before it, unless given already."""
    out, given = [], set()
    for i, arg in enumerate(args):
        inline = arg.startswith("--config=")
        if inline or (i and args[i - 1] in ("-c", "--config")):
            path = Path(arg.partition("=")[2] if inline else arg)
            base, at = base_of(path), len(out) - (not inline)
            if base and base.resolve() not in given:
                out[at:at] = ["--config" if inline else args[i - 1], str(base)]
                given.add(base.resolve())
            given.add(path.resolve())
        out.append(arg)
    return out


def base_of(path: Path) -> Path | None:
    """The config `path` names with its top-level `base:` key (relative to its folder), or None."""
    try:
        return path.parent / (yaml.safe_load(path.read_text()) or {})["base"]
    except yaml.YAMLError as err:  # jsonargparse would name neither the file nor the line
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise errors.ConfigError(f"{path}{where} is not valid YAML: {getattr(err, 'problem', None) or str(err).splitlines()[0]}"
                                 "; fix that line (indentation, an unclosed bracket or quote)") from None
    except (OSError, TypeError, KeyError):  # no base, or not a YAML mapping
        return None


def refuse_existing_run(root: Path, ckpt_dir: Path, overwrite: bool) -> None:
    """Refuse to start a second run in a run folder: its config.yaml and summary.json would be replaced while the
    old checkpoints stay, and Lightning would write the new last.ckpt as last-v1.ckpt, mixing two runs."""
    old = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if old and not overwrite:
        raise errors.RunFolderError(
            f"{root} already holds a run ({', '.join(p.name for p in old)} in {ckpt_dir}): resume it with "
            f"`--ckpt_path last`, train into a new folder with `--trainer.default_root_dir runs/<new name>`, "
            f"or delete that run and start over with `--overwrite_run true`")
    for path in [*old, root / "summary.json"] if old else []:
        path.unlink(missing_ok=True)  # every process of a multi-process run gets here


def resolve_auto_settings(config) -> None:
    """`precision: auto` and a model's `channels_last: auto` as this machine's values (genlab.hardware), before
    the Trainer and model are built; each choice is said once, on rank 0."""
    trainer, init_args, requested = config.trainer, getattr(config.model, "init_args", None), config.trainer.precision
    trainer.precision, reason = resolve_precision(requested, trainer.accelerator)
    if requested != trainer.precision:
        rank_zero_info(f"precision: {trainer.precision} ({reason})")
    if init_args is not None and init_args.get("channels_last") == "auto":
        init_args.channels_last, reason = resolve_channels_last("auto", trainer.accelerator, trainer.precision)
        rank_zero_info(f"channels_last: {str(init_args.channels_last).lower()} ({reason})")
