"""`genlab sweep-report`: results.csv, summary.md (with the rung table under early termination) and the plots,
rebuilt from a sweep folder's finished runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from genlab.sweep import STAMP, SweepConfigError
from genlab.sweep.rungs import RungPlan, _fmt, _score, ladder, read_record


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
