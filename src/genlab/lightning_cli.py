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
import shutil
import sys
from argparse import SUPPRESS
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from jsonargparse import ArgumentError, Namespace
from pytorch_lightning import Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities import rank_zero_info

from genlab import errors
from genlab.callbacks.guards import FiniteLossGuard
from genlab.callbacks.last_checkpoint import LatestLastCheckpoint
from genlab.callbacks.summary import RunSummary
from genlab.checkpoints import AtomicCheckpointIO, CheckpointError, check_resumable
from genlab.console import end_of_run_report, quiet_third_party
from genlab.hardware import resolve_channels_last, resolve_precision
from genlab.loggers import OfflineFirstWandbLogger, finish_wandb_run
from genlab.runtime import flush_denormals

DEFAULT_ROOT = "runs/default"
# Lightning's own types of these arguments, read from Trainer's signature so that they follow Lightning
_LIGHTNING_PRECISION, PLUGINS = (inspect.signature(Trainer.__init__).parameters[k].annotation for k in ("precision", "plugins"))
PRECISION = Union[Literal["auto"], _LIGHTNING_PRECISION]  # noqa: UP007  (a runtime value: no `|` on typing forms)


class GenlabTrainer(Trainer):
    """Lightning's Trainer that takes `precision="auto"` (genlab.hardware's rule for this machine) and writes its
    checkpoint files atomically (AtomicCheckpointIO, unless a CheckpointIO plugin is given). LightningCLI's
    `trainer_class` is its one way to widen the type that `--trainer.precision` is checked against."""

    def __init__(self, *args, precision: PRECISION = None, plugins: PLUGINS = None, **kwargs):
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [] if plugins is None else [plugins]
        plugins += [] if any(isinstance(p, CheckpointIO) for p in plugins) else [AtomicCheckpointIO()]
        precision = resolve_precision(precision, kwargs.get("accelerator", "auto"))[0]
        super().__init__(*args, precision=precision, plugins=plugins, **kwargs)


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
        logger = {"class_path": "genlab.loggers.OfflineFirstWandbLogger", "init_args": {"project": "genlab"}}
        refused, self._argv = False, list(sys.argv[1:] if args is None else args)
        try:  # parse errors come back as exceptions (exit_on_error=False), to be said in one line
            super().__init__(
                save_config_callback=SaveConfigToRunFolder, save_config_kwargs={"save_to_log_dir": False},
                trainer_class=GenlabTrainer, seed_everything_default=0, args=with_bases(args),
                trainer_defaults={"default_root_dir": DEFAULT_ROOT, "logger": logger,
                                  "callbacks": [FiniteLossGuard(), *extra_callbacks]},  # a benchmark's timers
                parser_kwargs={"exit_on_error": False, **{name: {"exit_on_error": False} for name in self.subcommands()}},
                **kwargs)
        except ArgumentError as err:  # not the command line's (parse_arguments says those): the checkpoint's
            refused = True
            raise CheckpointError(f"{self.resumed} holds hyper-parameters its model does not accept: "
                                  f"{errors.explain_instantiation_error(err)}") from None
        except Exception as err:
            trainer = getattr(self, "trainer", None)
            refused = errors.user_error(err) is not None and (trainer is None or trainer.global_step == 0)
            raise
        finally:
            wandb = sys.modules.get("wandb")
            run_dir = Path(wandb.run.dir).parent if refused and getattr(wandb, "run", None) is not None else None
            finish_wandb_run()  # one W&B run per command, also when commands run in one process (tests, notebooks)
            if run_dir is not None and run_dir.name.startswith("offline-run-"):
                shutil.rmtree(run_dir, ignore_errors=True)  # a fit refused before training logged nothing

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
        root, logger = Path(config.trainer.default_root_dir or DEFAULT_ROOT), config.trainer.logger
        named = isinstance(logger, Namespace) and "name" in logger.get("init_args", {})  # a logger with a run name
        sweep, run_id = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
        if sweep and run_id:  # a run started by `wandb agent`: every run of the sweep gets its own folder and name
            root = root / f"sweep-{sweep}" / run_id
            config.trainer.default_root_dir = str(root)
            if named:
                logger.init_args.name = f"{root.parent.parent.name}-{run_id}"
        if named and logger.init_args.name is None:
            logger.init_args.name = root.name
        config.checkpoint.dirpath = config.checkpoint.dirpath or str(root / "checkpoints")
        if self.subcommand == "fit" and config.ckpt_path is None:
            refuse_existing_run(root, Path(config.checkpoint.dirpath), config.overwrite_run)
        if config.get("weights_only", False) is None:  # resume without unpickling code, whatever the environment says
            config.weights_only = True
        config.overwrite_run = False  # acted on: config.yaml must not repeat it when reused
        changed = [f"{key} {value!r} (given {self.given[key]!r})" for key, value in config.model.init_args.items()
                   if key in self.given and self.given[key] != value]
        if changed:
            sys.stderr.write(f"genlab: model hyper-parameters from the checkpoint {self.resumed} replace the "
                             f"config's and the command line's: {', '.join(changed)}\n")
        resolve_auto_settings(config)
        if config.trainer.strategy == "ddp" and getattr(pydoc.locate(config.model.class_path), "ddp_find_unused_parameters",
                                                        False):  # Lightning's name for DDP that tolerates unused parameters
            config.trainer.strategy = "ddp_find_unused_parameters_true"

    def before_fit(self) -> None:
        if isinstance(self.trainer.checkpoint_callback, LatestLastCheckpoint):
            self.trainer.checkpoint_callback.resume_command = resume_command(self._argv)

    def after_fit(self) -> None:
        if self.trainer.num_training_batches == 0 and self.trainer.global_step == 0:  # Lightning returns quietly
            loader = self.trainer.train_dataloader
            # what one epoch draws: the sampler's count (a text corpus samples windows), else the data set's size
            sampler = getattr(loader, "sampler", None)
            size = len(sampler if hasattr(sampler, "__len__") else getattr(loader, "dataset", ())) if loader else 0
            batch = getattr(loader, "batch_size", None)
            raise errors.ConfigError(f"no training batch: {size} training examples in batches of {batch} (incomplete "
                                     "batches dropped) make 0 steps; give a smaller --data.init_args.batch_size"
                                     + (f" (at most {size})" if size else ""))
        if self.trainer.is_global_zero:
            print(end_of_run_report(self.trainer, self.model), flush=True)


def resume_command(args: list[str]) -> str:
    """`genlab fit` with the same arguments, resuming from last.ckpt (any --ckpt_path or --overwrite_run dropped)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.split("=")[0] in ("--ckpt_path", "--overwrite_run"):
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join(["genlab", *kept, "--ckpt_path", "last"])


def with_bases(args: list[str] | None) -> list[str]:
    """The arguments with each config file's `base:` put before it, unless given already."""
    out, given = [], set()
    for arg in sys.argv[1:] if args is None else args:
        inline = arg.startswith("--config=")
        if not (inline or out[-1:] in (["-c"], ["--config"])):
            out.append(arg)
            continue
        path, flag = Path(arg.partition("=")[2] if inline else arg), "--config" if inline else out.pop()
        try:
            base = path.parent / (yaml.safe_load(path.read_text()) or {})["base"]
        except yaml.YAMLError as err:  # jsonargparse would name neither the file nor the line
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise errors.ConfigError(f"{path}{where} is not valid YAML: {problem}; fix that line "
                                     "(indentation, an unclosed bracket or quote)") from None
        except (OSError, TypeError, KeyError):  # no base, or not a YAML mapping
            base = None
        if base and base.resolve() not in given:
            out += [flag, str(base)]
            given.add(base.resolve())
        out += [arg] if inline else [flag, arg]
        given.add(path.resolve())
    return out


def refuse_existing_run(root: Path, ckpt_dir: Path, overwrite: bool) -> None:
    """Refuse to start a second run in a run folder: its config.yaml and summary.json would be replaced while the
    old checkpoints stay, and Lightning would write the new last.ckpt as last-v1.ckpt, so the folder would
    silently mix two runs. Refusing loses nothing and the way on is one flag away."""
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
