"""Nothing lost, nothing silent: atomic checkpoints, verified resumes, summaries across resumes, refusals, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from genlab.checkpoints import CheckpointError, read_checkpoint
from genlab.cli import main
from tiny_models import TINY_FIT


def fit(root: str, *extra: str) -> int:
    return main(["fit", *TINY_FIT, "--trainer.default_root_dir", root, *extra])


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genlab ")]
    assert len(err) == 1, err
    return err[0]


def flip_a_byte_inside(path: Path) -> None:
    """Damage the middle of the largest record (a tensor) in place: the archive stays a readable zip."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0xFF]))


def test_checkpoints_are_written_beside_their_target_fsynced_and_renamed_into_place(monkeypatch):
    """Lightning's own save stages the file in $TMPDIR and moves it, a copy over last.ckpt across filesystems."""
    moves, fsyncs = [], []
    real_replace, real_move, real_fsync = os.replace, shutil.move, os.fsync

    def replace(src, dst, *a, **k):
        moves.append((Path(src), Path(dst)))
        return real_replace(src, dst, *a, **k)

    def move(src, dst, *a, **k):
        moves.append((Path(src), Path(dst)))
        return real_move(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "move", move)
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    assert fit("runs/a", "--trainer.max_epochs", "1") == 0
    saves = [(src, dst) for src, dst in moves if dst.suffix == ".ckpt"]
    assert {dst.name for _, dst in saves} == {"best.ckpt", "last.ckpt"}
    assert all(src.parent == dst.parent for src, dst in saves), saves
    assert fsyncs
    assert not list(Path("runs/a/checkpoints").glob(".*")), "no temp file is left behind"


def test_genlab_trainer_saves_through_the_atomic_checkpoint_io_unless_given_another():
    """The atomic IO is a plugin of genlab's Trainer (the CLI's, and one built in Python); a user's own CheckpointIO
    plugin is kept."""
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    from genlab.checkpoints import AtomicCheckpointIO
    from genlab.lightning_cli import GenlabTrainer

    quiet = {"logger": False, "enable_progress_bar": False, "accelerator": "cpu"}
    assert type(GenlabTrainer(**quiet).strategy.checkpoint_io) is AtomicCheckpointIO
    own = TorchCheckpointIO()
    assert GenlabTrainer(plugins=[own], **quiet).strategy.checkpoint_io is own


def test_temp_files_of_killed_saves_are_removed_when_fitting_resumes():
    assert fit("runs/t", "--trainer.max_epochs", "1") == 0
    leftover = Path("runs/t/checkpoints/.last.ckpt.k1ll3d.genlab-tmp")
    leftover.write_bytes(b"half a checkpoint")
    mine = Path("runs/t/checkpoints/notes.tmp")
    mine.write_text("a user's file")
    assert fit("runs/t", "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0
    assert not leftover.exists() and mine.exists()


def test_a_bad_crc_is_refused_naming_the_last_good_checkpoint(capsys):
    assert fit("runs/c", "--trainer.max_epochs", "2", "--checkpoint.mode", "max") == 0  # best.ckpt = epoch 0
    last = Path("runs/c/checkpoints/last.ckpt")
    flip_a_byte_inside(last)
    with pytest.raises(CheckpointError, match=r"bad CRC.*last good checkpoint in that folder is .*best\.ckpt"):
        read_checkpoint(last)
    assert main(["sample", "--ckpt", str(last), "--out", "x.png"]) == 2 and not Path("x.png").exists()
    capsys.readouterr()
    assert fit("runs/c", "--trainer.max_epochs", "3", "--ckpt_path", "last") == 2
    assert "best.ckpt" in one_line_error(capsys)


def test_summary_history_and_wall_time_survive_resumes_and_a_finished_run_keeps_its_metrics(capsys):
    assert fit("runs/s", "--trainer.max_epochs", "1", "--summary.every_n_steps", "2") == 0
    first = json.loads(Path("runs/s/summary.json").read_text())
    assert fit("runs/s", "--trainer.max_epochs", "2", "--summary.every_n_steps", "2", "--ckpt_path", "last") == 0
    second = json.loads(Path("runs/s/summary.json").read_text())
    assert [step for step, _ in second["history"]["val/loss"]] == [8, 16]
    assert [step for step, _ in second["history"]["train/loss"]][:4] == [2, 4, 6, 8]
    assert second["wall_s"] > first["wall_s"]
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fit("runs/s", "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0  # already finished: no steps
    err = capsys.readouterr().err  # said why nothing trained, and how to go on; not Lightning's metric warning
    assert "had already reached its max_epochs=2 (step 16): nothing trained" in err and "raise --trainer.max_epochs" in err
    assert not [w for w in caught if "could not find the monitored key" in str(w.message)]
    assert not [f for f in warnings.filters if f[1] and "monitored key" in f[1].pattern]  # not left for other fits
    third = json.loads(Path("runs/s/summary.json").read_text())
    assert third["metrics"] and third["metrics"]["val/loss"] == second["metrics"]["val/loss"]
    assert third["history"] == second["history"] and third["global_step"] == 16


def test_fitting_into_a_folder_that_holds_a_run_is_refused_unless_asked(tiny_run, capsys):
    tiny_run.copy_to("runs/f")
    last = Path("runs/f/checkpoints/last.ckpt")
    before = last.stat().st_mtime_ns
    capsys.readouterr()
    assert fit("runs/f", "--trainer.max_epochs", "1") == 2
    line = one_line_error(capsys)
    assert "--ckpt_path last" in line and "--trainer.default_root_dir" in line and "--overwrite_run" in line
    assert last.stat().st_mtime_ns == before
    assert fit("runs/f", "--trainer.max_epochs", "1", "--overwrite_run", "true") == 0
    assert sorted(p.name for p in Path("runs/f/checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert "overwrite_run: false" in Path("runs/f/config.yaml").read_text()  # reusing the config does not delete


class _OpensAFile:
    def __reduce__(self):
        return (open, ("pwned", "w"))


def test_resume_never_unpickles_code_even_when_the_environment_allows_it(tiny_run, monkeypatch, capsys):
    tiny_run.copy_to("runs/p")
    last = Path("runs/p/checkpoints/last.ckpt")
    ckpt = torch.load(last, weights_only=True)
    ckpt["payload"] = _OpensAFile()
    torch.save(ckpt, last)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    capsys.readouterr()
    assert fit("runs/p", "--trainer.max_epochs", "2", "--ckpt_path", "last") == 2
    assert "cannot be loaded safely" in one_line_error(capsys)
    for command in ("validate", "test"):
        assert main([command, *TINY_FIT, "--trainer.default_root_dir", "runs/p", "--ckpt_path", str(last)]) == 2
        assert "cannot be loaded safely" in one_line_error(capsys)
    assert not Path("pwned").exists()


def test_sigterm_saves_the_state_and_exits_143(capsys):
    code = fit("runs/k", "--trainer.max_epochs", "3", "--trainer.callbacks", "tiny_models.SignalAtStep",
               "--trainer.callbacks.step", "11", "--trainer.callbacks.signum", str(int(signal.SIGTERM)))
    assert code == 143
    assert torch.load("runs/k/checkpoints/last.ckpt", weights_only=True)["global_step"] == 11
    assert not Path("runs/k/summary.json").exists()  # not finished: sweeps must not count it
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genlab fit: stopped")]
    assert len(said) == 1 and "SIGTERM at step 11" in said[0] and "runs/k/checkpoints/last.ckpt" in said[0], said
    assert said[0].endswith("--trainer.default_root_dir runs/k --trainer.max_epochs 3 --trainer.callbacks "
                            "tiny_models.SignalAtStep --trainer.callbacks.step 11 --trainer.callbacks.signum 15 "
                            "--ckpt_path last") and "resume with: genlab fit " in said[0], said


def test_sigint_saves_the_state_and_exits_non_zero(capsys):
    handler = signal.getsignal(signal.SIGINT)
    # Ctrl+C as in a terminal: a shell's background job (nohup, `&`) starts with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as stop:
            fit("runs/i", "--trainer.max_epochs", "3", "--trainer.callbacks", "tiny_models.SignalAtStep",
                "--trainer.callbacks.step", "11", "--trainer.callbacks.signum", str(int(signal.SIGINT)))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl+C after the first
    assert stop.value.code not in (0, None)
    assert torch.load("runs/i/checkpoints/last.ckpt", weights_only=True)["global_step"] == 11
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genlab fit: stopped")]
    assert len(said) == 1 and "Ctrl+C at step 11" in said[0] and said[0].endswith("--ckpt_path last"), said


def test_a_nan_loss_stops_training_with_one_line_and_keeps_the_last_good_checkpoint(capsys):
    code = fit("runs/n", "--trainer.max_epochs", "3", "--trainer.callbacks", "tiny_models.PoisonAtStep",
               "--trainer.callbacks.step", "10")
    assert code == 1
    line = one_line_error(capsys)
    assert "non-finite training loss (nan) at step 10" in line and "last.ckpt" in line
    last = torch.load("runs/n/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 8
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    assert not Path("runs/n/summary.json").exists()
