"""Stands in for `genlab fit` in sweep tests: writes a summary, or sleeps until a signal (recorded) stops it.

Each call is appended to <run>/calls.txt. With `--flaky=B`, the first call whose trainer.max_epochs is B exits as a
run stopped by SIGTERM would (143), without a summary; the next one finishes. With `--fail_x=X`, the run whose x is X
fails (exit 1) every time.
"""

import json
import signal
import sys
import time
from pathlib import Path

args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
root = Path(args["trainer.default_root_dir"])


def stop(signum, frame):
    (root / "got-signal").write_text(str(signum))
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
with open(root / "calls.txt", "a") as calls:
    calls.write(f"{args.get('trainer.max_epochs', '')}\n")
if "sleep" in args:
    (root / "started").write_text("")
    time.sleep(float(args["sleep"]))
if "fail_x" in args and args["fail_x"] == args.get("x"):
    sys.exit(1)
flaked = root / "flaked"
if "flaky" in args and args["flaky"] == args.get("trainer.max_epochs") and not flaked.exists():
    flaked.write_text("")
    sys.exit(143)
metrics = {"x": float(args.get("x", 0)), "x_floor": 0.5}  # a real-data floor, as quality/fid has quality/fid_floor
(root / "summary.json").write_text(json.dumps({"metrics": metrics, "wall_s": 0.0}))
