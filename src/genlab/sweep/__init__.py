"""`genlab sweep` and `genlab sweep-report`: grids or random samples of ordinary genlab training runs.

A sweep file is a W&B sweep definition (`program`, `method`, `metric`, `parameters`, `command`), validated with
W&B's own sweep engine (the `sweeps` package), so `wandb sweep FILE` and `wandb agent` can drive it unchanged on
a team's machines. Locally, `genlab sweep -c FILE` enumerates the same runs with that engine and runs each as
`genlab fit ... --<parameter>=<value>` (W&B's own `${args}` formatting), in its own run folder with its own
logger run and checkpoints. A run is finished when its summary.json exists beside a stamp of the same full command
(and the contents of the config files it names): an interrupted sweep resumes where it stopped (an interrupted run
from its last.ckpt), and runs made by another command or config are moved to <out>/stale/ and run again.

Early termination: with W&B's `early_terminate: {type: hyperband, ...}` in the file, `genlab sweep` runs a
successive-halving ladder of budgets ("rungs", see `plan_rungs`): every run trains to the first rung, the best
1/eta of them by the sweep's metric continue from their own last.ckpt to the next rung, and so on to the full
budget; the rest stop. The rungs are in the unit of the budget the file fixes as a constant parameter: minutes of
`trainer.max_time` or epochs of `trainer.max_epochs`. A run's result at each rung is kept in <run>/rungs/, so an
interrupted ladder resumes without training a finished rung again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARGS_MACRO, ENV_MACRO = "${args}", "${env}"


class SweepConfigError(ValueError):
    """A sweep file that W&B would reject, or that genlab cannot run locally."""


def load_sweep(path: str | Path) -> dict:
    """The sweep definition, validated (and filled with defaults) by W&B's sweep engine."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepConfigError(f"sweep file not found: {path}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SweepConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise SweepConfigError(f"{path}: a sweep file is a YAML mapping (method, metric, parameters, command)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jsonschema
        from sweeps.config import schema

        parameters = config.get("parameters")
        if not isinstance(parameters, dict) or not parameters:  # the sweeps package fails on it with AttributeError
            raise SweepConfigError(f"{path}: `parameters` must map each setting to its values, e.g. "
                                   "parameters: {model.init_args.lr: {values: [0.001, 0.0003]}}")
        try:
            filled = schema.fill_validate_schema(config)
        except jsonschema.ValidationError as err:
            raise SweepConfigError(f"{path} is not a valid W&B sweep definition:\n{err.message}") from None
    command = filled.get("command")
    if not command or ARGS_MACRO not in command or "fit" not in command:
        raise SweepConfigError(
            f"{path}: `command` must run genlab's training with W&B's argument macro, e.g. "
            f"[{ENV_MACRO}, genlab, fit, -c, configs/dcgan_mnist.yaml, {ARGS_MACRO}]"
        )
    return filled


def enumerate_runs(sweep: dict, max_runs: int | None = None, seed: int = 0) -> list[dict]:
    """The parameter sets of the sweep, in W&B's order: every grid point, or `max_runs` random draws."""
    import numpy as np
    from sweeps import RunState, next_run

    max_runs = max_runs or sweep.get("run_cap")  # W&B's own cap on a sweep's runs
    if sweep["method"] == "random" and not max_runs:
        raise SweepConfigError("a random sweep needs --max-runs or `run_cap` in the file (it has no end of its own)")
    if sweep["method"] not in ("grid", "random"):
        raise SweepConfigError(f"method {sweep['method']!r} runs under `wandb agent` only; locally use grid or random")
    state = np.random.get_state()
    np.random.seed(seed)  # W&B's random search draws from numpy's global generator
    try:
        runs = []
        while max_runs is None or len(runs) < max_runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = next_run(sweep, runs)
            if run is None:
                break
            run.state = RunState.finished
            runs.append(run)
    finally:
        np.random.set_state(state)
    return [{k: _plain(v["value"]) for k, v in run.config.items()} for run in runs]


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def run_id(params: dict) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def run_command(command: list, params: dict, run_dir: Path) -> list[str]:
    """A sweep's command with W&B's macros filled in the way `wandb agent` fills them."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    flags = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args"]
    argv: list[str] = []
    for part in command:
        if part == ENV_MACRO:
            continue
        if part == ARGS_MACRO:
            argv += flags
        else:
            argv.append(str(part))
    if argv[0] == "genlab":  # run this genlab, in this Python
        argv = [sys.executable, "-m", "genlab.cli", *argv[1:]]
    return [*argv, f"--trainer.default_root_dir={run_dir}"]


STAMP, LOCK = "stamp.json", "sweep.lock"


def command_stamp(argv: list[str]) -> dict:
    """What defines a run: its command line (this Python's path left out) and the contents of files it names.

    A config file edited between two sweeps changes the stamp as much as a changed flag does, so results made by
    an older definition are never reported under the new one.
    """
    args = argv[3:] if argv[:3] == [sys.executable, "-m", "genlab.cli"] else argv
    files = {}
    for arg in args:
        value = arg.split("=", 1)[-1]
        if value.endswith((".yaml", ".yml", ".json")) and Path(value).is_file():
            files[value] = hashlib.sha256(Path(value).read_bytes()).hexdigest()
    digest = hashlib.sha256(json.dumps([args, files], sort_keys=True).encode()).hexdigest()
    return {"hash": digest, "command": args, "files": files}


def _stamp_matches(run_dir: Path, stamp: dict) -> bool:
    try:
        return json.loads((run_dir / STAMP).read_text()).get("hash") == stamp["hash"]
    except (OSError, ValueError, AttributeError):
        return False


def _set_aside(run_dir: Path) -> Path:
    """Move a run made by another definition to <sweep>/stale/, where reports do not read it; nothing is deleted."""
    stale = run_dir.parent / "stale"
    stale.mkdir(exist_ok=True)
    n = 0
    while (stale / f"{run_dir.name}-{n}").exists():
        n += 1
    return Path(shutil.move(str(run_dir), str(stale / f"{run_dir.name}-{n}")))


def _lock(run_dir: Path):
    """An exclusive lock on <run>/sweep.lock, or None when another process holds it (the OS frees it at exit)."""
    import fcntl

    f = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _die_with_parent() -> None:  # in the child, before exec: a runner killed with SIGKILL takes its runs with it
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def _in_use(run_dir: Path) -> int:
    print(f"[sweep] {run_dir.name}: in use by another process ({run_dir / LOCK} is locked); not training it twice: "
          "wait for that sweep to end or stop it", flush=True)
    return 75  # EX_TEMPFAIL: try again later


class _Children:
    """The runs in flight: SIGINT/SIGTERM to the runner go to them, and no new run starts after one."""

    def __init__(self):
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.signal: int | None = None

    def handle(self, signum, frame) -> None:
        self.signal = signum
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signum)


# early termination (the rungs) and the report live beside the runner, in genlab.sweep.rungs and .report
from genlab.sweep.rungs import (  # noqa: E402,F401  (they use SweepConfigError, defined above)
    BUDGET_KEYS,
    RECORDS,
    Rung,
    RungPlan,
    _fmt,
    ladder,
    plan_rungs,
    promote,
    read_record,
    run_ladder,
    write_record,
)


def execute(command: list, jobs: list[tuple[dict, Path]], parallel: int = 1, dry_run: bool = False,
            rung: Rung | None = None) -> list[int]:
    """Run `command` once per (params, run folder), skipping finished runs; returns the exit codes of those run.

    With a `rung`, each run trains up to that rung's budget (continuing from its last.ckpt when it has one), a run
    is finished at that rung when it holds the rung's record, and the record is written when the run exits.
    """
    todo = []
    for params, run_dir in jobs:
        stamp = command_stamp(run_command(command, params, run_dir))
        if rung is None:
            finished = (run_dir / "summary.json").is_file() and _stamp_matches(run_dir, stamp)
        else:
            finished = _stamp_matches(run_dir, stamp) and read_record(run_dir, rung, stamp) is not None
        if finished:
            print(f"[sweep] {run_dir.name} finished{f' rung {rung.title}' if rung else ''} earlier, skipping: "
                  f"{params}", flush=True)
        else:
            todo.append((params, run_dir, stamp))
    at = f" at rung {rung.title}" if rung else ""
    print(f"[sweep] {len(jobs)} runs{at}, {len(jobs) - len(todo)} already finished, {len(todo)} to run", flush=True)
    children = _Children()

    def launch(item):
        params, run_dir, stamp = item
        if children.signal is not None:
            return 128 + children.signal
        run_dir.mkdir(parents=True, exist_ok=True)
        if not _stamp_matches(run_dir, stamp) and any(p.name != LOCK for p in run_dir.iterdir()):
            probe = _lock(run_dir)  # checked before moving: a folder in use stays where its run writes
            if probe is None:
                return _in_use(run_dir)
            probe.close()
            moved = _set_aside(run_dir)  # made by another definition (or before stamps): kept, out of the way
            print(f"[sweep] {run_dir.name}: made by another command or config, moved to {moved}", flush=True)
            run_dir.mkdir(parents=True)
        lock = _lock(run_dir)
        if lock is None:
            return _in_use(run_dir)
        try:
            # same definition, interrupted (or, with rungs, promoted to a larger budget): continue it
            resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
            (run_dir / "params.json").write_text(json.dumps(params, indent=1))
            (run_dir / STAMP).write_text(json.dumps(stamp, indent=1))
            budget = [f"--{rung.key}={rung.value}"] if rung else []
            argv = run_command(command, params, run_dir) + budget + (["--ckpt_path=last"] if resume else [])
            print(f"[sweep] {run_dir.name}: {'resuming ' if resume else ''}{' '.join(argv[3:])}", flush=True)
            if dry_run:
                return 0
            with open(run_dir / "log.txt", "a" if resume else "w") as log, children.lock:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
                                        pass_fds=(lock.fileno(),), preexec_fn=_die_with_parent)
                children.procs.add(proc)  # the lock fd is inherited: the folder stays locked while the run lives
            code = proc.wait()
            with children.lock:
                children.procs.discard(proc)
            if rung is not None:
                write_record(run_dir, rung, stamp, code)
        finally:
            lock.close()
        print(f"[sweep] {run_dir.name} {'finished' if code == 0 else f'FAILED (exit {code}), see its log.txt'}",
              flush=True)
        return code

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, children.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            codes = list(pool.map(launch, todo))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if children.signal is not None:
        print(f"[sweep] stopped by signal {children.signal}; its runs saved their state: rerun the same command to "
              "resume them", flush=True)
        raise SweepInterrupted(children.signal)
    if any(codes) and rung is None:
        print(f"[sweep] {sum(1 for c in codes if c)} run(s) failed; rerun the same command to retry them", flush=True)
    elif failed := sum(1 for c in codes if 0 < c < 128 and c != 75):  # the ones write_record marked failed
        print(f"[sweep] {failed} run(s) failed at rung {rung.title} (see their log.txt): they leave the ladder "
              f"(to retry one, delete its {RECORDS}/{rung.label}.json and rerun)", flush=True)
    return codes


class SweepInterrupted(Exception):
    """SIGINT or SIGTERM reached the runner; its runs were passed the signal and have exited."""


def run_sweep(sweep: dict, out: Path, parallel: int = 1, max_runs: int | None = None, seed: int = 0,
              dry_run: bool = False, rungs: list[float] | None = None) -> list[int]:
    plan = plan_rungs(sweep, rungs)
    runs = enumerate_runs(sweep, max_runs, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1, default=str))
    if plan is None:
        return execute(sweep["command"], [(p, out / f"run-{run_id(p)}") for p in runs], parallel, dry_run)
    key = plan.rungs[0].key  # the budget is the rung's, so it is no part of a run's definition or folder
    jobs = [(q, out / f"run-{run_id(q)}") for q in ({k: v for k, v in p.items() if k != key} for p in runs)]
    return run_ladder(sweep, plan, jobs, out, parallel, dry_run)



def _budgets(text: str) -> list[float]:
    try:
        return [float(b) for b in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 3,10,30; got {text!r}") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="genlab sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="a W&B sweep YAML, e.g. configs/sweeps/dcgan_discriminator.yaml")
    parser.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<sweep name>)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="cap on runs (default the file's run_cap; a random sweep needs one of them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random search (default 0)")
    parser.add_argument("--rungs", type=_budgets, default=None,
                        help="explicit early-termination budgets, e.g. 3,10,30, in the unit of the budget the file "
                             "fixes (minutes of trainer.max_time or epochs of trainer.max_epochs); replaces "
                             "early_terminate's bands, keeps its eta")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.config)
        out = Path(args.out or Path("runs/sweeps") / sweep.get("name", Path(args.config).stem))
        run_sweep(sweep, out, args.parallel, args.max_runs, args.seed, args.dry_run, args.rungs)
        if not args.dry_run:
            files = write_report(out)
            print(f"[sweep] report: {', '.join(str(p) for p in files.values())}")
    except SweepConfigError as err:
        print(f"genlab sweep: {err}", file=sys.stderr)
        return 2
    except SweepInterrupted as stop:
        return 128 + stop.args[0]
    return 0


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="genlab sweep-report",
                                     description="Rebuild a sweep's results.csv, summary.md and plots from its finished runs.")
    parser.add_argument("dir", help="the sweep folder (holds run-*/summary.json)")
    args = parser.parse_args(argv)
    try:
        files = write_report(Path(args.dir))
    except SweepConfigError as err:
        print(f"genlab sweep-report: {err}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in files.values()))
    return 0



from genlab.sweep.report import collect, rung_status, write_report  # noqa: E402,F401  (uses the runner's names)
