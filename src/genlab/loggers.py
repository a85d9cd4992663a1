"""W&B logging that works with no account and no network.

With no API key and no WANDB_MODE, genlab logs offline to ./wandb (upload later with `wandb sync`) and says so
once. With a key but an unreachable service, it falls back to offline instead of crashing or hanging.
"""

from __future__ import annotations

import netrc
import os
import warnings

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

INIT_TIMEOUT_S = 30


def _netrc_has_wandb_key() -> bool:
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode() -> str:
    """The W&B mode genlab runs in, choosing offline (and exporting WANDB_MODE) when no key is available."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY") or _netrc_has_wandb_key():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    rank_zero_info(
        "W&B: no API key found (WANDB_API_KEY, `wandb login`), so logging offline to ./wandb; "
        "upload later with `wandb sync wandb/offline-run-*`."
    )
    return "offline"


# Metrics W&B should summarise by their best value, not their last (it ranks runs by the summary).
SUMMARY_GOALS = {"val/loss": "min", "val/bpc": "min", "val/neg_elbo": "min", "quality/fid": "min",
                 "quality/kid": "min", "val/acc": "max", "test/loss": "min", "test/acc": "max"}


class OfflineFirstWandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger, offline by default without a key, and never fatal when the service is down.

    genlab opens the W&B run itself with `wandb.init` (public API) and hands it to Lightning's logger, which
    adopts a run in progress: that way the init timeout and the offline fallback are genlab's own arguments,
    and Lightning's deprecated `anonymous` argument never reaches W&B.

    Args:
        project: W&B project name.
        name: run name (genlab's CLI fills in the config's run folder name).
        save_dir: parent of the `wandb/` folder.
        offline: force offline mode (default: offline when no API key is set).
        log_model: upload checkpoints as W&B artifacts (Lightning's option: True at the end, "all" at every save).
        **kwargs: passed on to Lightning's WandbLogger and `wandb.init`.
    """

    def __init__(self, project: str = "genlab", name: str | None = None, save_dir: str = ".",
                 offline: bool | None = None, log_model: bool | str = False, **kwargs):
        mode = resolve_wandb_mode()
        if offline is None:
            offline = mode in ("offline", "dryrun", "disabled")
        # absolute, because W&B's service process keeps the working directory it started in
        save_dir = os.path.abspath(save_dir)
        # jsonargparse lists every wandb.init argument (as None) in kwargs; keep those that are set, minus the
        # arguments that belong to Lightning's logger rather than to wandb.init
        lightning_only = {"version", "dir", "id", "anonymous", "experiment", "prefix", "checkpoint_name",
                          "add_file_policy"}
        init = {k: v for k, v in kwargs.items() if v is not None and k not in lightning_only}
        run_id = kwargs.get("version") or kwargs.get("id")
        self._genlab_init = {"project": project, "name": name, "dir": save_dir, **init,
                             **({"id": run_id} if run_id else {})}
        self._genlab_offline = offline
        self.run_dir: str | None = None  # the local W&B run folder, once the run is open
        super().__init__(project=project, name=name, save_dir=save_dir, offline=offline, log_model=log_model,
                         **kwargs)

    def _open_run(self) -> None:
        import wandb

        init = dict(self._genlab_init)
        if init.get("settings") is None:
            init["settings"] = wandb.Settings(init_timeout=INIT_TIMEOUT_S, quiet=True)
        init.setdefault("resume", "allow")
        mode = "offline" if self._genlab_offline else init.pop("mode", None) or os.environ.get("WANDB_MODE", "online")
        try:
            run = wandb.init(mode=mode, **init)
        except Exception as err:  # wandb raises its own CommError / UsageError / timeouts
            if mode == "offline":
                raise
            rank_zero_warn(
                f"W&B could not be reached ({type(err).__name__}: {err}); logging offline to ./wandb instead. "
                "Upload later with `wandb sync wandb/offline-run-*`."
            )
            os.environ["WANDB_MODE"] = "offline"
            self._genlab_offline = True
            run = wandb.init(mode="offline", **init)
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        for key, goal in SUMMARY_GOALS.items():
            run.define_metric(key, step_metric="trainer/global_step", summary=goal)
        self.run_dir = os.path.dirname(run.dir)

    @property
    def experiment(self):
        import wandb

        if rank_zero_only.rank == 0 and wandb.run is None:
            self._open_run()
        with warnings.catch_warnings():  # "a wandb run already in progress ... will reuse this run": ours
            warnings.filterwarnings("ignore", message="There is a wandb run already in progress")
            return super().experiment

    def log_hyperparams(self, params) -> None:
        # Lightning's CLI adds `_instantiator` (and `_class_path`) to a module's hparams for its own reloading
        if isinstance(params, dict):
            params = {k: v for k, v in params.items() if not str(k).startswith("_")}
        super().log_hyperparams(params)

    def define_summary(self, key: str, goal: str) -> None:
        """Summarise `key` by its best value ("min" or "max") in W&B's run table."""
        if goal in ("min", "max"):
            self.experiment.define_metric(key, step_metric="trainer/global_step", summary=goal)


# The class's former name, which the config.yaml of earlier runs names (`genlab.loggers.WandbLogger`): kept so
# that those files still load; new configs name OfflineFirstWandbLogger.
WandbLogger = OfflineFirstWandbLogger


def finish_wandb_run(discard: bool = False) -> None:
    """Close the current W&B run, if any, so the next run in this process starts a run of its own; `discard` deletes
    its offline run folder (a fit refused before training logged nothing).

    The teardown also stops W&B's service process, which is what flushes an offline run file to disk.
    """
    import shutil
    import sys
    from pathlib import Path

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        folder = Path(wandb.run.dir).parent
        wandb.finish()
        wandb.teardown()
        if discard and folder.name.startswith("offline-run-"):
            shutil.rmtree(folder, ignore_errors=True)


def read_offline_records(run_dir: str | os.PathLike) -> dict:
    """What an offline W&B run folder (wandb/offline-run-*/) holds: history rows, config, summary, metric goals.

    Returns {"run": {"id", "name", "project"}, "history": [{metric: value}, ...], "config": {key: value}, "summary": {key: value},
    "metrics": {name: {"summary": [...goals]}}}. The run file is a LevelDB-style log of protobuf records (32 KiB
    blocks, 7-byte record headers) after a 7-byte W&B header; the protobuf classes ship with wandb. W&B has no
    public reader for it, and reading it lets tests check offline runs without uploading them.
    """
    import json
    import struct
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    data, block, header = files[0].read_bytes(), 32768, 7
    records, partial, pos = [], b"", header
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if kind == 0 and length == 0:  # zero-filled rest of a block
            pos += left
            continue
        chunk, pos = data[pos + header : pos + header + length], pos + header + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        elif kind == 4:
            records.append(partial + chunk)

    def key_of(item) -> str:
        return item.key or "/".join(item.nested_key)

    out: dict = {"run": {}, "history": [], "config": {}, "summary": {}, "metrics": {}}
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = {"id": record.run.run_id, "name": record.run.display_name, "project": record.run.project}
        elif kind == "history":
            out["history"].append({key_of(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "config":
            out["config"].update({key_of(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out["summary"].update({key_of(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "metric" and record.metric.name:
            goals = [g for g in ("min", "max", "last", "mean", "best") if getattr(record.metric.summary, g, False)]
            out["metrics"][record.metric.name] = {"summary": goals}
    return out


def read_offline_run(run_dir: str | os.PathLike) -> list[dict]:
    """The history rows (metric name -> value) of an offline W&B run folder, e.g. wandb/offline-run-*/."""
    return read_offline_records(run_dir)["history"]
