"""Stands in for `genlab fit` in sweep tests: writes a summary, or sleeps until a signal (recorded) stops it.

Each call is appended to <run>/calls.txt. With `--flaky=B`, the first call whose trainer.max_epochs is B exits as a
run stopped by SIGTERM would (143), without a summary; the next one finishes.
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
flaked = root / "flaked"
if "flaky" in args and args["flaky"] == args.get("trainer.max_epochs") and not flaked.exists():
    flaked.write_text("")
    sys.exit(143)
(root / "summary.json").write_text(json.dumps({"metrics": {"x": float(args.get("x", 0))}, "wall_s": 0.0}))
