"""Per-epoch wall times and validation metrics from an offline W&B run file (no network, no wandb API).

    python scripts/wandb_epoch_times.py wandb/offline-run-*/run-*.wandb

Reads the run's LevelDB-style record log, keeps the history rows that carry `val/acc`, and prints one CSV
line per epoch: epoch, step, runtime_s (since the logger started), epoch_s, val/acc, val/loss. Used for the
classifier training figures in reports/evaluator/README.md, where other jobs shared the CPU during some epochs.
"""

import json
import struct
import sys

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768


def records(path):
    data = open(path, "rb").read()
    pos, buf = 7, b""  # 7-byte file header (":W&B", version)
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
        elif kind == 0 and length == 0 and pos % BLOCK:
            pos += BLOCK - pos % BLOCK


def main(path):
    print("epoch,step,runtime_s,epoch_s,val_acc,val_loss")
    previous = None
    for raw in records(path):
        rec = pb.Record()
        try:
            rec.ParseFromString(raw)
        except Exception:
            continue
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {(it.key or "/".join(it.nested_key)): json.loads(it.value_json) for it in rec.history.item}
        if "val/acc" not in row:
            continue
        runtime = row["_runtime"]
        took = "" if previous is None else f"{runtime - previous:.1f}"
        previous = runtime
        print(f"{row['epoch']},{row['trainer/global_step']},{runtime:.1f},{took},{row['val/acc']:.4f},{row['val/loss']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
