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


def test_invalid_sweep_is_rejected_with_wandbs_reason(tmp_path):
    bad = tiny_sweep(tmp_path / "bad.yaml", surprise=1)
    with pytest.raises(SweepConfigError, match="surprise"):
        load_sweep(bad)
    with pytest.raises(SweepConfigError, match="max-runs"):
        enumerate_runs({**load_sweep(tiny_sweep(tmp_path / "ok.yaml")), "method": "random"})


@pytest.mark.usefixtures("data_root")
def test_two_point_sweep_runs_resumes_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the runs are subprocesses; they import tiny_models
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
