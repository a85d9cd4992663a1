"""Early termination of a sweep: successive-halving rungs from W&B's `early_terminate: {type: hyperband}`, each
run's result per rung (<run>/rungs/<rung>.json), and who goes on (`promote`, `ladder`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from genlab.sweep import SweepConfigError

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
    from genlab.sweep import command_stamp, execute, run_command  # the runner, which imports this module

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


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

