"""Per-epoch wall times and validation metrics from an offline W&B run (no network, no wandb API).

    python scripts/wandb_epoch_times.py wandb/offline-run-*/run-*.wandb     (or the run folder)

Reads the run's history rows with genlab.loggers.read_offline_run, keeps those that carry `val/acc`, and prints one
CSV line per epoch: epoch, step, runtime_s (since the logger started), epoch_s, val/acc, val/loss. Used for the
classifier training figures in reports/evaluator/README.md, where other jobs shared the CPU during some epochs.
"""

import sys
from pathlib import Path

from genlab.loggers import read_offline_run


def main(path: str) -> None:
    run = Path(path)
    print("epoch,step,runtime_s,epoch_s,val_acc,val_loss")
    previous = None
    for row in read_offline_run(run.parent if run.is_file() else run):
        if "val/acc" not in row:
            continue
        runtime = row["_runtime"]
        took = "" if previous is None else f"{runtime - previous:.1f}"
        previous = runtime
        print(f"{row['epoch']},{row['trainer/global_step']},{runtime:.1f},{took},{row['val/acc']:.4f},{row['val/loss']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
