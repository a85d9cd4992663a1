"""Sweeps: W&B-valid definitions, a two-point local sweep of real training runs, resume, and the report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genlab.cli import main
from genlab.sweep import SweepConfigError, enumerate_runs, load_sweep, run_command

TESTS = Path(__file__).resolve().parent
FAKE_RUN = TESTS / "fake_run.py"


def tiny_sweep(path: Path, **extra) -> Path:
    sweep = {
        "name": "tiny",
        "program": "genlab",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {
            "model.init_args.lr": {"values": [0.01, 0.001]},
            "trainer.max_steps": {"value": 4},
            "trainer.limit_val_batches": {"value": 1},
            "data.init_args.train_limit": {"value": 256},
        },
        "command": ["${env}", "genlab", "fit", "--model", "tiny_models.TinyAutoencoder",
                    "--data", "genlab.data.MNISTDataModule", "--checkpoint.monitor", "val/loss",
                    "--trainer.enable_progress_bar", "false", "${args}"],
        **extra,
    }
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_shipped_sweep_files_are_valid_wandb_sweeps(repo):
    files = sorted((repo / "configs" / "sweeps").glob("*.yaml"))
    assert files, "configs/sweeps/ holds the discriminator sweep"
    for path in files:
        sweep = load_sweep(path)  # W&B's own schema validation
        assert sweep["program"] and sweep["metric"]["name"] and sweep["project"] == "genlab"
        runs = enumerate_runs(sweep, max_runs=50)
        assert len(runs) >= 2
        argv = run_command(sweep["command"], runs[0], Path("runs/x"))
        assert argv[1:4] == ["-m", "genlab.cli", "fit"] and any(a.startswith("--model.init_args.") for a in argv)
        if "early_terminate" in sweep:  # W&B's own hyperband code takes it, and genlab reads the same rungs
            from sweeps.hyperband_stopping import hyperband_stop_runs

            from genlab.sweep import plan_rungs

            assert hyperband_stop_runs([], sweep) == []
            assert len(plan_rungs(sweep).rungs) >= 2


def test_invalid_sweep_is_rejected_with_wandbs_reason(tmp_path):
    bad = tiny_sweep(tmp_path / "bad.yaml", surprise=1)
    with pytest.raises(SweepConfigError, match="surprise"):
        load_sweep(bad)
    with pytest.raises(SweepConfigError, match="max-runs"):
        enumerate_runs({**load_sweep(tiny_sweep(tmp_path / "ok.yaml")), "method": "random"})


@pytest.mark.usefixtures("data_root")
def test_two_point_sweep_runs_resumes_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))  # runs import tiny_models
    config = tiny_sweep(tmp_path / "tiny.yaml")
    assert main(["sweep", "-c", str(config), "--out", "sweep"]) == 0
    runs = sorted(Path("sweep").glob("run-*/summary.json"))
    assert len(runs) == 2
    lrs = sorted(json.loads((p.parent / "params.json").read_text())["model.init_args.lr"] for p in runs)
    assert lrs == [0.001, 0.01]
    for path in runs:
        summary = json.loads(path.read_text())
        assert summary["global_step"] == 4 and "val/loss" in summary["metrics"]
        assert (path.parent / "checkpoints" / "last.ckpt").is_file()
    rows = list(csv.DictReader(open("sweep/results.csv")))
    assert len(rows) == 2 and {"model.init_args.lr", "val/loss", "wall_s"} <= set(rows[0])
    assert "val/loss" in Path("sweep/summary.md").read_text()
    assert list(Path("sweep").glob("val_loss_vs_lr.png"))
    capsys.readouterr()
    assert main(["sweep", "-c", str(config), "--out", "sweep"]) == 0  # resumed: nothing left to run
    assert "0 to run" in capsys.readouterr().out
    Path("sweep/results.csv").unlink()
    assert main(["sweep-report", "sweep"]) == 0 and Path("sweep/results.csv").is_file()


def test_collect_reads_finished_runs_in_any_named_folder(tmp_path):
    """Sweeps name their runs run-NNN; scripts/discriminator_strength.py names them by variant. Both are collected;
    a folder without summary.json (unfinished) or params.json (not a sweep run) is skipped."""
    import json

    from genlab.sweep import collect

    def run(name, files):
        d = tmp_path / name
        d.mkdir()
        for f in files:
            content = {"metrics": {"quality/fid": 1.0}, "wall_s": 2.0} if f == "summary.json" else {"d_lr": 1e-4}
            (d / f).write_text(json.dumps(content))

    run("run-000", ["summary.json", "params.json"])
    run("strong+r1_gamma_1", ["summary.json", "params.json"])
    run("unfinished", ["params.json"])
    run("wandb", [])
    rows, _ = collect(tmp_path)
    assert [r["run"] for r in rows] == ["run-000", "strong+r1_gamma_1"]
    assert rows[1]["quality/fid"] == 1.0 and rows[1]["d_lr"] == 1e-4 and rows[1]["wall_s"] == 2.0


def test_a_sweep_yaml_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters: {lr: [1, 2\n")
    with pytest.raises(SweepConfigError, match=r"not valid YAML \(line \d+, column \d+\)") as err:
        load_sweep(bad)
    assert "\n" not in str(err.value)


def test_a_run_is_finished_only_for_the_same_command_and_config(tmp_path, monkeypatch, capsys):
    """A finished run of an older command or base config is moved to stale/ and run again, not reported as new."""
    from genlab.sweep import execute

    monkeypatch.chdir(tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text("trainer: {max_epochs: 1}\n")
    command = [sys.executable, str(FAKE_RUN), "fit", "-c", str(base), "${args}"]
    run = tmp_path / "sweep" / "run-a"
    assert execute(command, [({"x": 1}, run)]) == [0]
    assert json.loads((run / "summary.json").read_text())["metrics"]["x"] == 1
    assert execute(command, [({"x": 1}, run)]) == []  # same definition: finished
    base.write_text("trainer: {max_epochs: 2}\n")  # the base config changed
    assert execute(command, [({"x": 1}, run)]) == [0]
    assert (tmp_path / "sweep" / "stale" / "run-a-0" / "summary.json").is_file()
    assert execute([*command[:2], "fit", "--extra=1", *command[3:]], [({"x": 1}, run)]) == [0]  # command changed
    assert (tmp_path / "sweep" / "stale" / "run-a-1" / "summary.json").is_file()


def test_a_folder_in_use_is_refused(tmp_path, monkeypatch, capsys):
    import fcntl

    from genlab.sweep import LOCK, execute

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "sweep" / "run-a"
    run.mkdir(parents=True)
    with open(run / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        codes = execute([sys.executable, str(FAKE_RUN), "fit", "${args}"], [({"x": 1}, run)])
    assert codes != [0] and "in use by another process" in capsys.readouterr().out
    assert not (run / "summary.json").exists()


def test_the_runner_passes_sigterm_to_its_run_and_waits_for_it(tmp_path):
    sweep = {"name": "slow", "program": "genlab", "method": "grid", "parameters": {"sleep": {"values": [60, 61]}},
             "command": [sys.executable, str(FAKE_RUN), "fit", "${args}"]}
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(sweep))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])}
    runner = subprocess.Popen([sys.executable, "-m", "genlab.cli", "sweep", "-c", str(config), "--out", "out"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("out/run-*/started")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (started,) = tmp_path.glob("out/run-*/started")
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 143, out
    assert (started.parent / "got-signal").read_text() == str(int(signal.SIGTERM))
    assert len(list(tmp_path.glob("out/run-*/started"))) == 1  # no new run started after the signal


# ------------------------------------------------------------------------------------------- early termination
def ladder_sweep(path: Path, budget: dict, early_terminate: dict | None = None, **parameters) -> dict:
    """A W&B sweep file over fake runs (tests/fake_run.py, metric x) with early termination; loaded as genlab
    loads it, through W&B's own validation."""
    sweep = {"name": "ladder", "program": "genlab", "method": "grid", "metric": {"name": "x", "goal": "minimize"},
             "parameters": {**{k: {"values": v} for k, v in parameters.items()}, **{k: {"value": v} for k, v in budget.items()}},
             "command": [sys.executable, str(FAKE_RUN), "fit", "${args}"]}
    if early_terminate is not None:
        sweep["early_terminate"] = {"type": "hyperband", **early_terminate}
    path.write_text(yaml.safe_dump(sweep))
    return load_sweep(path)


def test_rungs_come_from_wandbs_early_terminate_keys(tmp_path):
    from genlab.sweep import plan_rungs

    def budgets(budget, terminate=None, rungs=None):
        plan = plan_rungs(ladder_sweep(tmp_path / "s.yaml", budget, terminate, x=[1, 2]), rungs)
        return [r.budget for r in plan.rungs], plan.rungs[0].unit, plan.eta

    thirty = {"trainer.max_time": "00:00:30:00"}
    assert budgets(thirty, {"max_iter": 30, "s": 2, "eta": 3}) == ([3, 10, 30], "min", 3)  # W&B's bands
    assert budgets(thirty, {"min_iter": 3, "eta": 3}) == ([3, 9, 27, 30], "min", 3)
    assert budgets(thirty, {"min_iter": 5}) == ([5, 15, 30], "min", 3)  # W&B's default eta
    assert budgets({"trainer.max_epochs": 4}, {"min_iter": 1, "eta": 2}) == ([1, 2, 4], "epochs", 2)
    assert budgets(thirty, {"min_iter": 3, "eta": 2}, rungs=[2, 10]) == ([2, 10, 30], "min", 2)  # --rungs
    plan = plan_rungs(ladder_sweep(tmp_path / "s.yaml", thirty, {"min_iter": 3}, x=[1]))
    assert [r.value for r in plan.rungs] == ["00:00:03:00", "00:00:09:00", "00:00:27:00", "00:00:30:00"]
    assert plan_rungs(ladder_sweep(tmp_path / "s.yaml", thirty, None, x=[1])) is None  # no early_terminate: as before
    with pytest.raises(SweepConfigError, match="one full budget, fixed in `parameters`"):
        plan_rungs(ladder_sweep(tmp_path / "s.yaml", {}, {"min_iter": 3}, x=[1]))
    with pytest.raises(SweepConfigError, match="fixes both"):
        plan_rungs(ladder_sweep(tmp_path / "s.yaml", {**thirty, "trainer.max_epochs": 3}, {"min_iter": 3}, x=[1]))
    with pytest.raises(SweepConfigError, match=r"max_iter \(20\) is the last rung"):
        plan_rungs(ladder_sweep(tmp_path / "s.yaml", thirty, {"max_iter": 20, "s": 2}, x=[1]))
    with pytest.raises(SweepConfigError, match="increasing budgets"):
        plan_rungs(ladder_sweep(tmp_path / "s.yaml", thirty, {"min_iter": 3}, x=[1]), rungs=[10, 40])
    with pytest.raises(SweepConfigError, match="DD:HH:MM:SS"):
        plan_rungs(ladder_sweep(tmp_path / "s.yaml", {"trainer.max_time": "30 minutes"}, {"min_iter": 3}, x=[1]))
    with pytest.raises(SweepConfigError, match="min_iter"):  # W&B's own schema: min_iter >= 1
        ladder_sweep(tmp_path / "s.yaml", thirty, {"min_iter": 0}, x=[1])


def test_promotion_keeps_the_best_fraction_by_the_sweeps_goal():
    from genlab.sweep import promote

    results = {"a": 5.0, "b": 1.0, "c": None, "d": 3.0, "e": 1.0, "f": 2.0}
    assert promote(results, eta=3) == ["b", "e"]  # 6 / 3 = 2 runs; a tie goes to the earlier run
    assert promote(results, eta=3, goal="maximize") == ["a", "d"]
    assert promote(results, eta=2) == ["b", "e", "f"]
    assert promote(results, eta=10) == ["b"]  # at least one goes on
    assert promote({"a": None, "b": None}, eta=2) == []  # failed runs (no metric) never go on
    kept = [len(promote({str(i): float(i) for i in range(n)}, eta=3)) for n in (16, 5, 2, 1)]
    assert kept == [5, 2, 1, 1]  # 16 runs -> 5 -> 2: n / eta rounded


def test_ladder_promotes_and_resumes_an_interrupted_sweep_without_redoing_rungs(tmp_path, monkeypatch, capsys):
    """Six fake runs, rungs 1, 3, 4 epochs, eta 3: the best two go on to 3, the best one to 4. The promoted runs are
    stopped (exit 143, as by SIGTERM) on their first try at rung 3; the next `genlab sweep` trains only them, from
    rung 3 on; a third one trains nothing. The report shows where each run stopped and its metric at each rung."""
    from genlab.sweep import run_sweep, write_report

    monkeypatch.chdir(tmp_path)
    sweep = ladder_sweep(tmp_path / "s.yaml", {"trainer.max_epochs": 4, "flaky": "3"}, {"min_iter": 1, "eta": 3},
                         x=[5, 1, 4, 2, 3, 6])
    out = tmp_path / "out"

    def calls():
        return {json.loads((d / "params.json").read_text())["x"]: (d / "calls.txt").read_text().split()
                for d in out.glob("run-*")}

    codes = run_sweep(sweep, out)
    assert sorted(codes) == [0] * 6 + [143, 143]
    assert "2 run(s) did not finish" in capsys.readouterr().out
    assert calls() == {5: ["1"], 1: ["1", "3"], 4: ["1"], 2: ["1", "3"], 3: ["1"], 6: ["1"]}
    assert run_sweep(sweep, out) == [0, 0, 0]  # rung 3 for the two promoted runs, rung 4 for the best
    printed = capsys.readouterr().out
    assert "6 runs at rung 1 epochs, 6 already finished, 0 to run" in printed
    assert calls() == {5: ["1"], 1: ["1", "3", "3", "4"], 4: ["1"], 2: ["1", "3", "3"], 3: ["1"], 6: ["1"]}
    assert run_sweep(sweep, out) == []  # everything finished
    assert calls()[1] == ["1", "3", "3", "4"]

    write_report(out)
    rows = {float(r["x"]): r for r in csv.DictReader(open(out / "results.csv"))}
    assert rows[1]["status"] == "finished" and rows[1]["rung"] == "4 epochs"
    assert rows[2]["status"] == "stopped at 3 epochs" and rows[2]["x @ 3epochs"] == "2.0"
    assert all(rows[x]["status"] == "stopped at 1 epochs" and rows[x]["x @ 3epochs"] == "" for x in (3, 4, 5, 6))
    table = (out / "summary.md").read_text().split("## Rungs")[1]
    assert "| 1 epochs | 3 epochs | 4 epochs | status |" in table
    assert "| 1 (2.0x) | 1 (2.0x) | 1 (2.0x) | finished |" in table  # the metric, and its multiple of x_floor
    assert (out / "rungs.png").is_file()


def test_a_run_that_fails_at_a_rung_leaves_the_ladder(tmp_path, monkeypatch, capsys):
    """The best run (x 1) fails at the first rung: the next best goes on in its place, the report says where it
    failed, and rerunning does not train it again (a failure is a result; a signal is not)."""
    from genlab.sweep import run_sweep, write_report

    monkeypatch.chdir(tmp_path)
    sweep = ladder_sweep(tmp_path / "s.yaml", {"trainer.max_epochs": 2, "fail_x": "1"}, {"min_iter": 1, "eta": 3},
                         x=[1, 2, 3])
    out = tmp_path / "out"
    assert sorted(run_sweep(sweep, out)) == [0, 0, 0, 1]
    assert "1 run(s) failed at rung 1 epochs" in capsys.readouterr().out
    assert run_sweep(sweep, out) == []
    write_report(out)
    rows = {float(r["x"]): r["status"] for r in csv.DictReader(open(out / "results.csv"))}
    assert rows == {2.0: "finished", 3.0: "stopped at 1 epochs"}  # x 1 has no summary: not a finished run
    table = (out / "summary.md").read_text().split("## Rungs")[1]
    assert table.count("| stopped at 1 epochs |") == 1 and table.count("|  |  | failed at 1 epochs (exit 1) |") == 1


def test_a_time_ladder_passes_each_rungs_max_time(tmp_path, monkeypatch, capsys):
    from genlab.sweep import run_sweep

    monkeypatch.chdir(tmp_path)
    sweep = ladder_sweep(tmp_path / "s.yaml", {"trainer.max_time": "00:00:30:00"}, {"max_iter": 30, "s": 2}, x=[1, 2])
    run_sweep(sweep, tmp_path / "out", dry_run=True)
    printed = capsys.readouterr().out
    assert "rungs 3 min, 10 min, 30 min (trainer.max_time)" in printed
    assert printed.count("--trainer.max_time=00:00:03:00") == 2 and "00:00:30:00" not in printed


@pytest.mark.usefixtures("data_root")
def test_a_promoted_run_continues_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """A real two-run ladder (1 then 2 epochs, eta 2): the better run goes on from its own last.ckpt, so its global
    step continues from where rung 1 left it; the other stops after one epoch."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))  # runs import tiny_models
    config = tiny_sweep(tmp_path / "tiny.yaml", early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    sweep = yaml.safe_load(config.read_text())
    del sweep["parameters"]["trainer.max_steps"]
    sweep["parameters"]["trainer.max_epochs"] = {"value": 2}
    config.write_text(yaml.safe_dump(sweep))
    assert main(["sweep", "-c", str(config), "--out", "sweep"]) == 0
    assert "resuming" in capsys.readouterr().out
    records = {d.name: {r.stem: json.loads(r.read_text()) for r in (d / "rungs").glob("*.json")}
               for d in Path("sweep").glob("run-*")}
    (best,) = [name for name, rungs in records.items() if "2epochs" in rungs]
    (stopped,) = [name for name in records if name != best]
    first, second = records[best]["1epochs"], records[best]["2epochs"]
    assert first["global_step"] > 0 and second["global_step"] == 2 * first["global_step"]
    assert second["epochs"] == 2 and records[stopped]["1epochs"]["global_step"] == first["global_step"]
    assert first["metrics"]["val/loss"] <= records[stopped]["1epochs"]["metrics"]["val/loss"]
    summary = json.loads((Path("sweep") / best / "summary.json").read_text())
    assert summary["global_step"] == second["global_step"]
    table = Path("sweep/summary.md").read_text()
    assert "stopped at 1 epochs" in table and "finished" in table
