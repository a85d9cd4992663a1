"""W&B logging that works with no account and no network.

With no API key and no WANDB_MODE, genlab logs offline to ./wandb (upload later with `wandb sync`) and says so
once. With a key but an unreachable service, it falls back to offline instead of crashing or hanging.
"""

from __future__ import annotations

import netrc
import os

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

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


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger, offline by default without a key, and never fatal when the service is down.

    Args:
        project: W&B project name.
        name: run name (genlab's CLI fills in the config's run folder name).
        save_dir: parent of the `wandb/` folder.
        offline: force offline mode (default: offline when no API key is set).
        **kwargs: passed on to Lightning's WandbLogger and `wandb.init`.
    """

    def __init__(self, project: str = "genlab", name: str | None = None, save_dir: str = ".",
                 offline: bool | None = None, **kwargs):
        mode = resolve_wandb_mode()
        if offline is None:
            offline = mode in ("offline", "dryrun")
        if not offline and "settings" not in kwargs:
            import wandb

            kwargs["settings"] = wandb.Settings(init_timeout=INIT_TIMEOUT_S)
        # absolute, because W&B's service process keeps the working directory it started in
        save_dir = os.path.abspath(save_dir)
        super().__init__(project=project, name=name, save_dir=save_dir, offline=offline, **kwargs)

    @property
    def experiment(self):
        try:
            return super().experiment
        except Exception as err:  # wandb raises its own CommError / UsageError / timeouts
            if self._offline:
                raise
            rank_zero_warn(
                f"W&B could not be reached ({type(err).__name__}: {err}); logging offline to ./wandb instead. "
                "Upload later with `wandb sync wandb/offline-run-*`."
            )
            self._offline = True
            self._wandb_init["mode"] = "offline"
            self._wandb_init.pop("settings", None)
            os.environ["WANDB_MODE"] = "offline"
            return super().experiment


def finish_wandb_run() -> None:
    """Close the current W&B run, if any, so the next run in this process starts a run of its own.

    The teardown also stops W&B's service process, which is what flushes an offline run file to disk.
    """
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
        wandb.teardown()


def read_offline_run(run_dir: str | os.PathLike) -> list[dict]:
    """The history rows (metric name -> value) of an offline W&B run folder, e.g. wandb/offline-run-*/.

    The run file is a LevelDB-style log of protobuf records (32 KiB blocks, 7-byte record headers) after a 7-byte
    W&B header; the protobuf classes ship with wandb. Used to check offline runs without uploading them.
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
    rows = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows
