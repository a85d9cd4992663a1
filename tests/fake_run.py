"""Stands in for `genlab fit` in sweep tests: writes a summary, or sleeps until a signal (recorded) stops it."""

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
if "sleep" in args:
    (root / "started").write_text("")
    time.sleep(float(args["sleep"]))
(root / "summary.json").write_text(json.dumps({"metrics": {"x": float(args.get("x", 0))}, "wall_s": 0.0}))
