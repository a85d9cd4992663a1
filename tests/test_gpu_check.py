"""scripts/gpu_check.sh --dry-run: every part of the GPU check runs on the CPU with tiny sizes and reports one
valid JSON line with the machine's cpu, cpu_flags and gpu, so that the script cannot rot between GPU runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ["tests", "lm", "lm_compile", "dcgan_16-mixed", "dcgan_bf16-mixed", "vae", "precision"]
pytestmark = pytest.mark.slow


def test_gpu_check_dry_run(tmp_path):
    reports = sorted((REPO / "reports" / "gpu").glob("*.json")) if (REPO / "reports" / "gpu").is_dir() else []
    before = {p: p.stat().st_mtime for p in reports}
    out = tmp_path / "gpu_check"
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable})
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((out / "logs").glob("*.log")))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    rows = [json.loads(line) for line in done.stdout.splitlines()]  # every stdout line is one JSON object
    assert [row["part"] for row in rows] == PARTS
    for row in rows:
        assert row["ok"] and row["dry_run"] and row["gpu"] is None, row
        assert isinstance(row["cpu"], str) and isinstance(row["cpu_flags"], list), row
        assert json.loads((out / f"{row['part']}.json").read_text()) == row
    by_part = {row["part"]: row for row in rows}
    assert by_part["tests"]["skipped"] > 0 and by_part["tests"].get("failed", 0) == 0  # no CUDA: skipped, with reason
    assert by_part["lm"]["steps"] == 5 and by_part["lm"]["cache_matches_nocache"]
    assert by_part["lm_compile"]["compile"] and not by_part["lm"]["compile"] and by_part["lm_compile"]["steps"] == 3
    assert by_part["vae"]["test_neg_elbo"] > 0 and by_part["dcgan_bf16-mixed"]["fid_over_floor"] > 0
    assert set(by_part["precision"]["dcgan_mnist"]) == {"32-true", "bf16-mixed"}
    assert {p: p.stat().st_mtime for p in reports} == before, "a dry run must not write reports/gpu"
