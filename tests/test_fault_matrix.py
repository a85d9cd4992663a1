"""Fault injection on the real `genlab` command: kills, signals, resumes and bad inputs, each checked end to end.

Every case starts `python -m genlab.cli` in a subprocess on the tiny model of tests/tiny_models.py (4 steps an
epoch), so it checks what a user gets; test_reliability.py checks most of the same in-process. The kill -9 case puts
the run folder on /dev/shm (another filesystem than $TMPDIR, where a copy-over-target move used to break last.ckpt)
and gives $TMPDIR a fresh folder, to count the checkpoint-sized files a kill leaks there. Each test prints its rows
of the table (case | expected | observed | ok). It takes minutes (33 starts of the command), so the suite skips it
unless asked:

    python -m pytest tests/test_fault_matrix.py --fault-matrix -rP
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tiny_models import TINY_FIT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("data_root", "asked_for")]

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 4
TINY = [*TINY_FIT, "--data.init_args.train_limit", "256"]  # STEPS_PER_EPOCH steps an epoch, as README's table
KILLS = 6  # kill -9 during a save this many times
HIDDEN = 8192  # the tiny model's width for the kill case: about 150 MB checkpoints with Adam's state


@pytest.fixture
def asked_for(request):
    if not request.config.getoption("--fault-matrix"):
        pytest.skip("the fault matrix runs with --fault-matrix (minutes of subprocess runs)")


def env(**extra) -> dict:
    """This checkout's code and the tiny model importable, W&B offline, and this interpreter's `genlab` command
    first on PATH (the sweep runs it by name)."""
    path = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    bin_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PATH": bin_path, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "WANDB_DISABLE_GIT": "true", **extra}


_logs = iter(range(10**6))


def genlab(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    """Start `genlab ARGS` in `cwd`, its output in files there (a pipe nobody reads could block a long run)."""
    log = Path(cwd) / f"log-{next(_logs)}.txt"
    with open(log, "w") as stderr:  # the child keeps its own copy of the file
        proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=stderr, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even from a `&` job
                                **{"env": env(), **popen})
    proc.log = log
    return proc


def run(*args: str, cwd: Path, timeout: float = 240, **popen) -> tuple[int, str]:
    proc = genlab(*args, cwd=cwd, **popen)
    proc.wait(timeout=timeout)
    return proc.returncode, proc.log.read_text()


def fit(root: Path, *extra: str, **popen) -> tuple[int, str]:
    return run("fit", *TINY, "--trainer.default_root_dir", str(root), *extra, **popen)


def one_line(err: str) -> str:
    """The single `genlab ...:` error line, or a note of what was printed instead."""
    lines = [line for line in err.splitlines() if line.startswith("genlab ")]
    if "Traceback" in err:
        return "TRACEBACK"
    return lines[0] if len(lines) == 1 else f"{len(lines)} error lines"


def said(err: str, *words: str) -> str:
    """'one line naming W' when the error is one line holding every word, else what was printed instead."""
    line = one_line(err)
    if not line.startswith("genlab "):
        return line
    missing = [w for w in words if w not in line]
    return f"one line, MISSING {missing}" if missing else "one line" + (f" naming {', '.join(words)}" if words else "")


def intact(path: Path) -> int | None:
    """The checkpoint's global step if every zip record passes its CRC and it loads with weights_only, else None."""
    import torch

    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return None
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:
        return None


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def children_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------------ the cases
def kill9_during_saves(work: Path, kills: int, hidden: int) -> list[dict]:
    """Kill -9 while a checkpoint is being written, `kills` times, resuming in between; the folder is on /dev/shm."""
    shm = Path(tempfile.mkdtemp(prefix="genlab-fault-", dir="/dev/shm"))
    tmpdir = work / "tmpdir"
    tmpdir.mkdir()
    root, ckpts = shm / "run", shm / "run" / "checkpoints"
    last = ckpts / "last.ckpt"
    killed_in_save = all_intact = 0
    steps, leaked_after_kill = [], 0
    rng = random.Random(0)

    def temps() -> set[Path]:
        return set(ckpts.glob(".*.genlab-tmp")) if ckpts.is_dir() else set()

    try:
        for _ in range(kills):
            resume = last.is_file()
            if not resume:
                shutil.rmtree(root, ignore_errors=True)  # killed before its first last.ckpt: start again
            proc = genlab("fit", *TINY, "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1000",
                          "--model.init_args.hidden", str(hidden), *(["--ckpt_path", "last"] if resume else []),
                          cwd=work, env=env(TMPDIR=str(tmpdir)))
            wait_for(lambda p=proc: not temps() or p.poll() is not None, 120)  # a new fit removes the old leftovers
            if not resume:
                wait_for(lambda p=proc: last.is_file() or p.poll() is not None, 180)
            # let this process complete 0-3 saves, then kill it a moment after the next one starts (a temp appears)
            skip, seen = rng.randint(0, 3), set()
            while True:
                wait_for(lambda p=proc, s=seen: bool(temps() - s) or p.poll() is not None, 180, step=0.002)
                started = temps() - seen
                if not started or len(seen) >= skip:
                    break
                seen |= started
                wait_for(lambda p=proc, n=started: not temps() & n or p.poll() is not None, 60, step=0.002)
            time.sleep(rng.uniform(0, 0.03))
            proc.kill()
            proc.wait()
            leaked_after_kill = len(temps())
            killed_in_save += leaked_after_kill > 0  # the temp file is still there: the save never finished
            ok = all(intact(p) is not None for p in ckpts.glob("*.ckpt"))
            all_intact += ok
            steps.append(intact(last) if last.is_file() else "none")
        # one more start: the leftovers of the killed saves must be removed, and training must resume
        epochs = 2 + max(s for s in steps if isinstance(s, int)) // STEPS_PER_EPOCH
        code, _ = fit(root, "--trainer.max_epochs", str(epochs),
                      "--model.init_args.hidden", str(hidden), "--ckpt_path", "last", cwd=work,
                      env=env(TMPDIR=str(tmpdir)))
        leftovers = len(temps())
        in_tmp = sum(1 for p in tmpdir.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000)
        size = last.stat().st_size / 2**20
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    return [
        {"case": f"kill -9 during a save x{kills} (run folder on /dev/shm, {size:.0f} MB checkpoint)",
         "expected": f"{kills} saves killed midway, every checkpoint intact after every kill",
         "observed": f"{killed_in_save} saves killed midway, all intact after {all_intact}/{kills} kills "
                     f"(last.ckpt steps {steps})",
         "ok": killed_in_save == kills and all_intact == kills},
        {"case": "  ... temp files of those saves",
         "expected": "none in $TMPDIR; removed from the run folder at the next start; resume exits 0",
         "observed": f"{in_tmp} in $TMPDIR, {leaked_after_kill} in the folder after the last kill, {leftovers} "
                     f"after the next start; exit {code}",
         "ok": in_tmp == 0 and leftovers == 0 and code == 0},
    ]


def signal_mid_training(work: Path, signum: int, expect: set[int]) -> dict:
    root = work / f"sig{signum}"
    proc = genlab("fit", *TINY, "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1000", cwd=work)
    last = root / "checkpoints" / "last.ckpt"
    wait_for(lambda: last.is_file() and (intact(last) or 0) >= 8, 180, step=0.2)
    before = intact(last)
    proc.send_signal(signum)
    proc.wait(timeout=120)
    step = intact(last)
    name = signal.Signals(signum).name
    return {"case": f"{name} during training", "expected": f"exit {'/'.join(map(str, sorted(expect)))}, "
            "state saved in an intact last.ckpt",
            "observed": f"exit {proc.returncode}, last.ckpt at step {step} (step {before} when signalled)",
            "ok": proc.returncode in expect and step is not None and before is not None and step >= before}


def sweep_kills(work: Path) -> list[dict]:
    rows = []
    sweep = {"name": "fault", "program": "genlab", "method": "grid",
             "parameters": {"model.init_args.lr": {"values": [0.01, 0.001]}, "trainer.max_epochs": {"value": 1000}},
             "command": ["${env}", "genlab", "fit", *TINY, "${args}"]}
    config = work / "sweep.yaml"
    config.write_text(json.dumps(sweep))  # JSON is YAML
    for how in ("SIGTERM", "SIGKILL"):
        out = work / f"sweep-{how}"
        runner = genlab("sweep", "-c", str(config), "--out", str(out), cwd=work)
        wait_for(lambda o=out: list(o.glob("run-*/checkpoints/last.ckpt")), 180, step=0.2)
        kids = children_of(runner.pid)
        runner.send_signal(getattr(signal, how))
        runner.wait(timeout=120)
        gone = wait_for(lambda ks=kids: not any(alive(k) for k in ks), 60, step=0.2)
        rows.append({"case": f"{how} to a sweep runner mid-run",
                     "expected": ("runner exits 143, " if how == "SIGTERM" else "") + "its run stops too",
                     "observed": f"runner exit {runner.returncode}, {len(kids)} run(s), "
                                 f"{'all stopped' if gone else 'STILL RUNNING'}",
                     "ok": gone and bool(kids) and (how != "SIGTERM" or runner.returncode == 143)})
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
    bad = work / "bad.yaml"
    bad.write_text("method: grid\nparameters: {lr: [1, 2\n")
    code, err = run("sweep", "-c", str(bad), cwd=work)
    rows.append({"case": "sweep YAML syntax error", "expected": "exit 2, one line", "observed":
                 f"exit {code}, {said(err, 'not valid YAML')}", "ok": code == 2 and one_line(err).startswith("genlab sweep:")})
    return rows


def run_folder_cases(work: Path) -> list[dict]:
    rows = []
    root = work / "finished"
    fit(root, "--trainer.max_epochs", "2", cwd=work)
    first = json.loads((root / "summary.json").read_text())
    code, _ = fit(root, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=work)
    again = json.loads((root / "summary.json").read_text())
    same = again["metrics"] == first["metrics"] and again["history"] == first["history"]
    rows.append({"case": "resume a finished run", "expected": "exit 0, summary.json metrics and history kept",
                 "observed": f"exit {code}, {len(again['metrics'])} metrics, {'kept' if same else 'CHANGED'}",
                 "ok": code == 0 and same and bool(again["metrics"])})
    before = (root / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    code, err = fit(root, "--trainer.max_epochs", "2", cwd=work)
    kept = (root / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before
    rows.append({"case": "fit into a folder holding a run (no --ckpt_path)", "expected": "exit 2, one line, run kept",
                 "observed": f"exit {code}, run {'kept' if kept else 'TOUCHED'}, {said(err, '--ckpt_path last')}",
                 "ok": code == 2 and kept and "--ckpt_path last" in one_line(err)})
    return rows


def edge_cases(work: Path) -> list[dict]:
    """The edges of a run people hit (issue 26): extend a finished run, contradictions and impossible settings
    refused in one line before training, and no W&B run folder left by a refused fit."""
    rows, root = [], work / "edges"
    fit(root, "--trainer.max_epochs", "1", cwd=work)
    code, _ = fit(root, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=work)
    step = json.loads((root / "summary.json").read_text()).get("global_step")
    rows.append({"case": "train a finished run longer (--trainer.max_epochs 2 --ckpt_path last after 1)",
                 "expected": f"exit 0, {2 * STEPS_PER_EPOCH} steps", "observed": f"exit {code}, {step} steps",
                 "ok": code == 0 and step == 2 * STEPS_PER_EPOCH})
    last = str(root / "checkpoints" / "last.ckpt")
    refused = [
        ("resume a VAE config from another model's checkpoint", ("fit", "-c", str(REPO / "configs/vae_mnist.yaml"),
         "--trainer.default_root_dir", str(work / "vae"), "--ckpt_path", last), ("TinyAutoencoder",)),
        ("--overwrite_run true with --ckpt_path", ("fit", *TINY, "--trainer.default_root_dir", str(root),
         "--overwrite_run", "true", "--ckpt_path", "last"), ("--overwrite_run", "--ckpt_path")),
        ("--trainer.max_epochs -3", ("fit", *TINY, "--trainer.default_root_dir", str(work / "a"),
         "--trainer.max_epochs", "-3"), ("max_epochs",)),
        ("--trainer.max_epochs abc", ("fit", *TINY, "--trainer.default_root_dir", str(work / "b"),
         "--trainer.max_epochs", "abc"), ("max_epochs", "abc")),
        ("--data.init_args.batch_size 100000000 (0 steps)", ("fit", *TINY, "--trainer.default_root_dir",
         str(work / "c"), "--data.init_args.batch_size", "100000000"), ("256 training examples", "100000000")),
    ]
    for case, args, words in refused:
        before = set((work / "wandb").glob("offline-run-*")) if (work / "wandb").is_dir() else set()
        code, err = run(*args, cwd=work)
        after = set((work / "wandb").glob("offline-run-*")) if (work / "wandb").is_dir() else set()
        rows.append({"case": case, "expected": "exit 2, one line naming " + ", ".join(words) + "; no W&B run folder",
                     "observed": f"exit {code}, {said(err, *words)}, {len(after - before)} W&B run folders",
                     "ok": code == 2 and all(w in one_line(err) for w in words) and after == before})
    bad_yaml = work / "bad.yaml"
    bad_yaml.write_text("trainer:\n  max_epochs: [1\n")
    code, err = run("fit", "-c", str(bad_yaml), *TINY, cwd=work)
    rows.append({"case": "a config with a YAML syntax error", "expected": "exit 2, one line naming the file and line",
                 "observed": f"exit {code}, {said(err, 'bad.yaml', 'line')}",
                 "ok": code == 2 and "bad.yaml" in one_line(err) and "line" in one_line(err)})
    code, err = run("sample", "--ckpt", last, "--out", "/proc/genlab/samples.png", cwd=work)
    rows.append({"case": "sample --out to a place that cannot be written", "expected": "exit 2, one line",
                 "observed": f"exit {code}, {said(err, 'samples.png')}", "ok": code == 2 and "samples.png" in one_line(err)})
    return rows


def bad_checkpoint_cases(work: Path) -> list[dict]:
    import torch

    rows = []
    root = work / "bad"
    fit(root, "--trainer.max_epochs", "2", "--checkpoint.mode", "max", cwd=work)  # best.ckpt stays at epoch 0
    last = root / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    with zipfile.ZipFile(last) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(good)
    offset = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    offset += int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little") + info.file_size // 2
    data[offset] ^= 0xFF
    last.write_bytes(bytes(data))
    code, err = fit(root, "--trainer.max_epochs", "3", "--ckpt_path", "last", cwd=work)
    rows.append({"case": "resume from a checkpoint with a bad CRC", "expected": "exit 2, one line naming best.ckpt",
                 "observed": f"exit {code}, {said(err, 'bad CRC', 'best.ckpt')}", "ok": code == 2 and "best.ckpt" in one_line(err)})
    code, err = run("sample", "--ckpt", str(last), "--out", str(work / "x.png"), cwd=work)
    rows.append({"case": "sample from a checkpoint with a bad CRC", "expected": "exit 2, one line, no image",
                 "observed": f"exit {code}, {said(err, 'bad CRC')}, image {'WRITTEN' if (work / 'x.png').exists() else 'not written'}",
                 "ok": code == 2 and not (work / "x.png").exists() and one_line(err).startswith("genlab")})
    last.write_bytes(good)
    ckpt = torch.load(last, weights_only=True)
    ckpt["payload"] = _Payload(str(work / "pwned"))
    torch.save(ckpt, last)
    for command in ("fit", "validate"):
        code, err = run(command, *TINY, "--trainer.default_root_dir", str(root), "--ckpt_path",
                        "last" if command == "fit" else str(last), cwd=work,
                        env=env(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
        ran = (work / "pwned").exists()
        rows.append({"case": f"{command} --ckpt_path (a pickle that runs code), TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1",
                     "expected": "exit 2, one line, code not run",
                     "observed": f"exit {code}, {said(err)}, code {'RAN' if ran else 'not run'}",
                     "ok": code == 2 and not ran and "cannot be loaded safely" in one_line(err)})
    return rows


class _Payload:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def nan_case(work: Path) -> dict:
    root = work / "nan"
    code, err = fit(root, "--trainer.max_epochs", "3", "--trainer.callbacks", "tiny_models.PoisonAtStep",
                    "--trainer.callbacks.step", "6", cwd=work)
    step = intact(root / "checkpoints" / "last.ckpt")
    return {"case": "NaN loss", "expected": "exit 1, one line; last.ckpt = last good epoch",
            "observed": f"exit {code}, {said(err, 'nan')}, last.ckpt at step {step}",
            "ok": code == 1 and step == STEPS_PER_EPOCH and "nan" in one_line(err)}


# ------------------------------------------------------------------------------------------------------ the tests
def check(rows: list[dict]) -> None:
    """Print the rows as lines of the table, and fail naming every row that is not as expected."""
    for r in rows:
        print(f"| {r['case']} | {r['expected']} | {r['observed']} | {'yes' if r['ok'] else 'NO'} |")
    wrong = [f"{r['case']}: expected {r['expected']}; observed {r['observed']}" for r in rows if not r["ok"]]
    assert not wrong, "\n".join(wrong)


def test_kill9_during_saves_leaves_intact_checkpoints_and_no_temp_files(tmp_path):
    if not Path("/dev/shm").is_dir():
        pytest.skip("needs /dev/shm: the run folder must be on another filesystem than $TMPDIR")
    check(kill9_during_saves(tmp_path, KILLS, HIDDEN))


@pytest.mark.parametrize(("signum", "expect"), [(signal.SIGTERM, {143}), (signal.SIGINT, {1, 130})],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_training_saves_the_state(tmp_path, signum, expect):
    check([signal_mid_training(tmp_path, signum, expect)])


def test_killing_a_sweep_runner_stops_its_run_and_bad_sweep_yaml_is_one_line(tmp_path):
    check(sweep_kills(tmp_path))


def test_a_finished_run_resumes_and_an_occupied_folder_is_refused(tmp_path):
    check(run_folder_cases(tmp_path))


def test_the_edges_of_a_run_work_or_are_refused_in_one_line(tmp_path):
    check(edge_cases(tmp_path))


def test_a_damaged_or_unsafe_checkpoint_is_refused_in_one_line(tmp_path):
    check(bad_checkpoint_cases(tmp_path))


def test_a_nan_loss_stops_the_run_keeping_the_last_good_checkpoint(tmp_path):
    check([nan_case(tmp_path)])
