"""Sweeps: W&B-valid definitions, a two-point local sweep of real training runs, resume, and the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from genlab.cli import main
from genlab.sweep import SweepConfigError, enumerate_runs, load_sweep, run_command

TESTS = Path(__file__).resolve().parent


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
