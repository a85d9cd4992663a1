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
import csv
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------------- early termination
BUDGET_KEYS = {"trainer.max_time": "min", "trainer.max_epochs": "epochs"}  # the budget parameter -> rung unit
RECORDS = "rungs"


@dataclass(frozen=True)
class Rung:
    """One budget of the ladder: `--key=value` on the command line, `budget` in `unit` (minutes or epochs)."""

    key: str
    budget: float
    unit: str

    @property
    def value(self) -> str | int:
        if self.unit == "min":
            from genlab.launch import max_time

            return max_time(self.budget)
        return int(self.budget)

    @property
    def label(self) -> str:  # names its records (<run>/rungs/<label>.json) and its columns
        return f"{_fmt(self.budget)}{self.unit}"

    @property
    def title(self) -> str:
        return f"{_fmt(self.budget)} {self.unit}"


@dataclass(frozen=True)
class RungPlan:
    """The ladder of a sweep: its rungs in increasing budget and eta (1/eta of a rung's runs go on to the next)."""

    rungs: tuple[Rung, ...]
    eta: float

    def to_json(self) -> dict:
        return {"key": self.rungs[0].key, "unit": self.rungs[0].unit, "budgets": [r.budget for r in self.rungs],
                "eta": self.eta}

    @classmethod
    def from_json(cls, data: dict) -> RungPlan:
        return cls(tuple(Rung(data["key"], b, data["unit"]) for b in data["budgets"]), data["eta"])


def _minutes(value, key: str) -> float:
    """Lightning's max_time string DD:HH:MM:SS in minutes."""
    parts = str(value).split(":")
    try:
        days, hours, minutes, seconds = (float(p) for p in parts)
    except ValueError:
        raise SweepConfigError(f"{key} {value!r}: early_terminate needs the time budget as Lightning's "
                               f"\"DD:HH:MM:SS\" string, e.g. \"00:00:30:00\"") from None
    return days * 1440 + hours * 60 + minutes + seconds / 60


def plan_rungs(sweep: dict, rungs: list[float] | None = None) -> RungPlan | None:
    """The rungs of a sweep with `early_terminate` (None without it and without explicit `rungs`).

    The unit and the full budget come from the one budget parameter the sweep fixes (`value:`): `trainer.max_time`
    gives rungs in minutes, `trainer.max_epochs` in epochs, and its value is the last rung. The rungs below it are
    W&B's hyperband bands: with `min_iter`, min_iter * eta^k below the full budget; with `max_iter` and `s`,
    int(max_iter / eta^k) for k = 1..s (max_iter must then be the full budget). `rungs` (genlab sweep --rungs)
    replaces the bands by an explicit list; eta is early_terminate's (W&B's default 3 without one).
    """
    terminate = sweep.get("early_terminate")
    if terminate is None and rungs is None:
        return None
    terminate = terminate or {}
    if not sweep.get("metric", {}).get("name"):
        raise SweepConfigError("early termination ranks runs by the sweep's metric: add `metric: {name: ..., goal: "
                               "minimize}` to the sweep file")
    fixed = {k: v["value"] for k, v in sweep.get("parameters", {}).items()
             if k in BUDGET_KEYS and isinstance(v, dict) and "value" in v}
    if len(fixed) != 1:
        raise SweepConfigError(
            "early termination needs one full budget, fixed in `parameters`: trainer.max_time: {value: \"00:00:30:00\"} "
            "(rungs in minutes) or trainer.max_epochs: {value: 30} (rungs in epochs)"
            + (f"; this sweep fixes both {' and '.join(fixed)}" if fixed else ""))
    ((key, value),) = fixed.items()
    unit = BUDGET_KEYS[key]
    full = _minutes(value, key) if unit == "min" else float(value)
    if not full > 0:
        raise SweepConfigError(f"{key} {value!r}: early termination needs a full budget above 0")
    eta = float(terminate.get("eta", 3))
    if rungs is not None:
        bands = [float(b) for b in rungs]
        if not bands or any(b <= 0 for b in bands) or bands != sorted(set(bands)) or bands[-1] > full:
            raise SweepConfigError(f"--rungs {','.join(map(_fmt, bands))}: give increasing budgets above 0, at most "
                                   f"the full budget {_fmt(full)} {unit} ({key})")
    elif "max_iter" in terminate:
        if terminate["max_iter"] != full:
            raise SweepConfigError(f"early_terminate.max_iter ({terminate['max_iter']}) is the last rung: set it to "
                                   f"the full budget of {key}, {_fmt(full)} {unit}")
        bands, band = [], float(terminate["max_iter"])
        for _ in range(int(terminate["s"])):  # W&B's hyperband_stopping, bands below max_iter
            band /= eta
            if band < 1:
                break
            bands.append(float(int(band)))
        bands = sorted(set(bands))
    else:
        bands, band = [], float(terminate["min_iter"])
        while band < full:
            bands.append(float(int(band)))
            band *= eta
    bands = [b for b in bands if b < full] + [full]
    return RungPlan(tuple(Rung(key, b, unit) for b in bands), eta)


def read_record(run_dir: Path, rung: Rung, stamp: dict | None = None) -> dict | None:
    """A run's result at a rung (its metrics, or the exit code it failed with), None when it has not finished it.
    With `stamp`, only a record made by that definition counts."""
    try:
        record = json.loads((run_dir / RECORDS / f"{rung.label}.json").read_text())
    except (OSError, ValueError):
        return None
    if stamp is not None and record.get("stamp") != stamp["hash"]:
        return None
    return record


def write_record(run_dir: Path, rung: Rung, stamp: dict, code: int) -> None:
    """The result of a run's training up to a rung, from the summary.json it wrote. A failed run (exit 1 to 127 but
    75, genlab's "in use") is recorded as failed, so the ladder goes on without it; a run stopped by a signal gets
    no record and is resumed by the next `genlab sweep`."""
    if code == 0:
        summary = json.loads((run_dir / "summary.json").read_text())
        record = {"metrics": summary.get("metrics", {}), "global_step": summary.get("global_step"),
                  "epochs": summary.get("epochs"), "wall_s": summary.get("wall_s")}
    elif 0 < code < 128 and code != 75:
        record = {"failed": code}
    else:
        return
    path = run_dir / RECORDS / f"{rung.label}.json"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rung": rung.label, "budget": rung.budget, "unit": rung.unit, "stamp": stamp["hash"],
                               **record}, indent=1))
    tmp.replace(path)


def _score(record: dict | None, metric: str) -> float | None:
    value = (record or {}).get("metrics", {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def promote(results: dict[str, float | None], eta: float, goal: str = "minimize") -> list[str]:
    """The runs that go on from a rung: the best n/eta (rounded, at least one) of the n runs that reached it, by
    their metric there (ties: the earlier run in `results`' order). A run without a value (failed, or the metric
    missing or not finite) never goes on."""
    order = {name: i for i, name in enumerate(results)}
    scored = [(name, v) for name, v in results.items() if v is not None]
    scored.sort(key=lambda item: (item[1] if goal == "minimize" else -item[1], order[item[0]]))
    keep = max(1, int(len(results) / eta + 0.5))
    return [name for name, _ in scored[:keep]]


def ladder(plan: RungPlan, run_dirs: list[Path], metric: str, goal: str = "minimize",
           stamps: dict[str, dict] | None = None) -> list[list[Path]]:
    """The runs at each rung as far as the records decide: all runs at the first rung, then the promoted ones of each
    rung whose runs all hold a record. Computed from the records alone, so a resumed sweep takes the same decisions."""
    members = [list(run_dirs)]
    for rung in plan.rungs[:-1]:
        records = {d: read_record(d, rung, (stamps or {}).get(d.name)) for d in members[-1]}
        if any(r is None for r in records.values()):
            break
        chosen = set(promote({d.name: _score(r, metric) for d, r in records.items()}, plan.eta, goal))
        members.append([d for d in members[-1] if d.name in chosen])
    return members


def run_ladder(sweep: dict, plan: RungPlan, jobs: list[tuple[dict, Path]], out: Path, parallel: int = 1,
               dry_run: bool = False) -> list[int]:
    """Train the jobs rung by rung, promoting the best 1/eta at each rung; returns the exit codes of the runs made."""
    metric, goal = sweep["metric"]["name"], sweep["metric"].get("goal", "minimize")
    (out / "rungs.json").write_text(json.dumps({**plan.to_json(), "runs": [d.name for _, d in jobs]}, indent=1))
    stamps = {d.name: command_stamp(run_command(sweep["command"], p, d)) for p, d in jobs}
    params = {d.name: p for p, d in jobs}
    shown = ", ".join(r.title for r in plan.rungs)
    print(f"[sweep] early termination: rungs {shown} ({plan.rungs[0].key}); the best 1/{_fmt(plan.eta)} by "
          f"{metric} ({goal}) go on at each rung", flush=True)
    codes: list[int] = []
    for i, rung in enumerate(plan.rungs):
        members = ladder(plan, [d for _, d in jobs], metric, goal, stamps)
        if i >= len(members):
            break
        codes += execute(sweep["command"], [(params[d.name], d) for d in members[i]], parallel, dry_run, rung)
        if dry_run:
            print(f"[sweep] (dry run: later rungs depend on the results of rung {rung.title})", flush=True)
            break
        missing = [d.name for d in members[i] if read_record(d, rung, stamps[d.name]) is None]
        if missing:
            print(f"[sweep] rung {rung.title}: {len(missing)} run(s) did not finish ({', '.join(missing)}); rerun "
                  "the same command to resume them before the next rung", flush=True)
            break
        if i + 1 < len(plan.rungs):
            going = ladder(plan, [d for _, d in jobs], metric, goal, stamps)[i + 1]
            print(f"[sweep] rung {rung.title}: {len(going)} of {len(members[i])} runs go on to "
                  f"{plan.rungs[i + 1].title}: {', '.join(d.name for d in going)}", flush=True)
    return codes


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


def rung_status(out: Path, metric: str, goal: str = "minimize") -> tuple[RungPlan, dict[str, dict]] | None:
    """For a sweep with early termination: its plan, and per run its metric at each rung it finished (key
    "<metric> @ <rung>"), the rung it reached, and its status: finished, stopped at a rung, failed, or pending."""
    try:
        data = json.loads((out / "rungs.json").read_text())
    except (OSError, ValueError):
        return None
    plan = RungPlan.from_json(data)
    names = data.get("runs") or sorted(p.name for p in out.glob("run-*") if (p / "params.json").is_file())
    run_dirs = [out / n for n in names if (out / n / "params.json").is_file()]
    stamps = {}
    for d in run_dirs:
        try:
            stamps[d.name] = json.loads((d / STAMP).read_text())
        except (OSError, ValueError):
            stamps[d.name] = {"hash": None}
    members = ladder(plan, run_dirs, metric, goal, stamps)
    status = {}
    for d in run_dirs:
        row: dict = {}
        for i, rung in enumerate(plan.rungs):
            if i >= len(members) or d not in members[i]:
                break
            record = read_record(d, rung, stamps[d.name])
            if record is None:
                row["status"] = f"pending at {rung.title}"
                break
            if "failed" in record:
                row["status"] = f"failed at {rung.title} (exit {record['failed']})"
                break
            value = _score(record, metric)
            floor = _score(record, f"{metric}_floor")
            row[f"{metric} @ {rung.label}"] = value if value is not None else ""
            if value is not None and floor:
                row[f"x floor @ {rung.label}"] = round(value / floor, 2)
            row["rung"] = rung.title
            if i + 1 == len(plan.rungs):
                row["status"] = "finished"
            elif i + 1 < len(members):
                row["status"] = (f"stopped at {rung.title}" if d not in members[i + 1]
                                 else f"pending at {plan.rungs[i + 1].title}")
            else:
                row["status"] = f"waiting at {rung.title} (its rung is not complete)"
        status[d.name] = row
    return plan, status


def collect(out: Path) -> tuple[list[dict], dict]:
    """One row per finished run: its parameters, final metrics, wall seconds; plus the sweep definition. With early
    termination, also the metric at each rung, the rung reached and the run's status (see `rung_status`)."""
    sweep = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
    metric, goal = sweep.get("metric", {}).get("name"), sweep.get("metric", {}).get("goal", "minimize")
    rungs = rung_status(out, metric, goal) if metric else None
    rows = []
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    for run_dir in run_dirs:
        if not (run_dir / "summary.json").is_file() or not (run_dir / "params.json").is_file():
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        params = json.loads((run_dir / "params.json").read_text())
        extra = rungs[1].get(run_dir.name, {}) if rungs else {}
        rows.append({"run": run_dir.name, **params, **extra, **summary["metrics"],
                     "wall_s": round(summary["wall_s"], 1), "_history": summary.get("history", {})})
    return rows, sweep


def write_report(out: Path) -> dict[str, Path]:
    """results.csv, summary.md and one plot of the sweep's metric against each varied parameter; with early
    termination also the rung table (in summary.md) and rungs.png (each run's metric at each rung it reached)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, sweep = collect(out)
    if not rows:
        raise SweepConfigError(f"no finished runs in {out} (a finished run has summary.json)")
    params = [k for k in sweep.get("parameters", {}) if "values" in sweep["parameters"][k]
              or "distribution" in sweep["parameters"][k] and sweep["parameters"][k]["distribution"] != "constant"]
    metric = sweep.get("metric", {}).get("name")
    goal = sweep.get("metric", {}).get("goal", "minimize")
    rungs = rung_status(out, metric, goal) if metric else None
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if not c.startswith("_")]
    files = {"csv": out / "results.csv", "md": out / "summary.md"}
    with open(files["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{c: r.get(c, "") for c in columns} for r in rows])
    worst = float("inf") if goal == "minimize" else float("-inf")
    reached = {r.title: i for i, r in enumerate(rungs[0].rungs)} if rungs else {}

    def rank(r):  # with rungs: the runs that went furthest first, then by the metric at the end of their training
        value = r.get(metric, worst) if isinstance(r.get(metric), (int, float)) else worst
        return (-reached.get(r.get("rung"), -1), value if goal == "minimize" else -value)

    ranked = sorted(rows, key=rank) if metric else rows
    shown = ["run", *params, *(["rung", "status"] if rungs else []), *([metric] if metric else []), "wall_s"]
    lines = [f"# Sweep {sweep.get('name', out.name)}", "",
             f"{len(rows)} finished runs; metric `{metric}` ({goal}). Made by `genlab sweep-report {out}`.", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in ranked:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in shown) + " |")
    if rungs:
        plan, status = rungs
        lines += ["", "## Rungs", "",
                  f"Early termination: every run trains to {plan.rungs[0].title}, then the best 1/{_fmt(plan.eta)} "
                  f"by `{metric}` ({goal}) of each rung go on from their last.ckpt to the next "
                  f"({plan.rungs[0].key}: {', '.join(r.title for r in plan.rungs)}). Cells: `{metric}` at the end of "
                  "the rung (x its real-data floor where the run logs one).", "",
                  "| run | " + " | ".join(r.title for r in plan.rungs) + " | status |",
                  "|---|" + "---|" * (len(plan.rungs) + 1)]
        names = [r["run"] for r in ranked] + [n for n in status if n not in {r["run"] for r in ranked}]
        for name in names:  # the finished runs as ranked above, then those without a summary (failed, pending)
            row = status.get(name, {})
            cells = []
            for rung in plan.rungs:
                value, ratio = row.get(f"{metric} @ {rung.label}", ""), row.get(f"x floor @ {rung.label}")
                cells.append(_fmt(value) + (f" ({ratio:.1f}x)" if ratio else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('status', '')} |")
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for r in ranked:
            row = status.get(r["run"], {})
            points = [(rung.budget, row[f"{metric} @ {rung.label}"]) for rung in plan.rungs
                      if isinstance(row.get(f"{metric} @ {rung.label}"), float)]
            if points:
                ax.plot(*zip(*points, strict=True), "o-", lw=0.8, ms=3, label=r["run"] if len(points) > 1 else None)
        ax.set(xlabel=f"budget ({plan.rungs[0].unit}, {plan.rungs[0].key})", ylabel=metric, xscale="log",
               title=f"{metric} at each rung", xticks=[r.budget for r in plan.rungs],
               xticklabels=[_fmt(r.budget) for r in plan.rungs])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        files["rungs"] = out / "rungs.png"
        fig.savefig(files["rungs"], dpi=100, bbox_inches="tight")
        plt.close(fig)
    files["md"].write_text("\n".join(lines) + "\n")
    if metric:
        first = f"{metric} @ {rungs[0].rungs[0].label}" if rungs else metric  # with rungs: all runs at one budget
        for p in params:
            points = [(r[p], r[first]) for r in rows if p in r and isinstance(r.get(first), (int, float))]
            if not points:
                continue
            fig, ax = plt.subplots(figsize=(4, 3))
            xs = [str(x) if not isinstance(x, (int, float)) else x for x, _ in points]
            ax.scatter(xs, [y for _, y in points])
            ax.set_xlabel(p.split(".")[-1])
            ax.set_ylabel(first)
            ax.set_title(f"{first} vs {p.split('.')[-1]}")
            files[f"plot_{p}"] = out / f"{metric.replace('/', '_')}_vs_{p.split('.')[-1]}.png"
            fig.savefig(files[f"plot_{p}"], dpi=100, bbox_inches="tight")
            plt.close(fig)
    return files


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
