"""The edges of a run as a new user hits them (issue 26): every mistake is one line whichever library raises it,
resume means the same model, and nothing of a refused fit is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab.cli import main
from tiny_models import TINY_FIT


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("genlab ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("extra", "words"), [
    (["--trainer.max_epochs", "abc"], ["trainer.max_epochs", "'abc'", "int"]),
    (["--trainer.max_epochs", "-3"], ["trainer.max_epochs is -3", "-1"]),
])
def test_a_trainer_setting_lightning_or_jsonargparse_refuses_is_one_line(data_root, capsys, extra, words):
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", *extra]) == 2
    line = one_line(capsys)
    assert line.startswith("genlab fit: error: ") and not line.rstrip().endswith("Errors:"), line
    for word in words:
        assert word in line, line


def test_a_validation_interval_longer_than_an_epoch_names_the_setting_and_the_fix(data_root, capsys):
    """LM config style: val_check_interval in steps, check_val_every_n_epoch set by the user: Lightning's ValueError."""
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.max_epochs", "1",
                 "--trainer.val_check_interval", "980", "--trainer.check_val_every_n_epoch", "1"]) == 2
    line = one_line(capsys)
    assert "trainer.val_check_interval (980)" in line and "--trainer.check_val_every_n_epoch null" in line, line


def test_a_yaml_syntax_error_names_the_file_and_line(capsys):
    Path("bad.yaml").write_text("trainer:\n  max_epochs: 1\nmodel: {a: [1\n")
    assert main(["fit", "-c", "bad.yaml"]) == 2
    line = one_line(capsys)
    assert "bad.yaml line " in line and "not valid YAML" in line, line


def test_a_library_value_error_that_is_not_about_settings_keeps_its_traceback():
    from genlab.errors import say

    assert say("fit", ValueError("must be less than or equal to something else")) is None


def test_a_fit_refused_before_its_first_step_leaves_no_wandb_run_folder(data_root, capsys):
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.max_epochs", "-3"]) == 2
    one_line(capsys)
    assert not list(Path().glob("wandb/offline-run-*"))


def test_a_batch_larger_than_the_data_set_is_refused_instead_of_training_zero_steps(data_root, capsys):
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.max_epochs", "1",
                 "--data.init_args.batch_size", "100000000"]) == 2
    line = one_line(capsys)
    assert "0 steps" in line and "--data.init_args.batch_size" in line, line
    # the numbers of the refusal are the data's (an image loader's batch sampler once gave "0 ... batches of None")
    assert "512 training examples in batches of 100000000" in line and "(at most 512)" in line, line
    assert not list(Path().glob("wandb/offline-run-*"))


def test_resume_from_a_checkpoint_of_another_model_class_is_refused_naming_both(tiny_run, repo, capsys):
    assert main(["fit", "-c", str(repo / "configs/vae_mnist.yaml"), "--ckpt_path", str(tiny_run.root / "checkpoints/last.ckpt"),
                 "--trainer.default_root_dir", "run"]) == 2
    line = one_line(capsys)
    assert "TinyAutoencoder" in line and "VAE" in line, line
    assert not Path("run").exists()


def test_overwrite_run_with_a_checkpoint_to_resume_is_a_contradiction(tiny_run, capsys):
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--overwrite_run", "true",
                 "--ckpt_path", str(tiny_run.root / "checkpoints/last.ckpt")]) == 2
    assert "--overwrite_run" in one_line(capsys)


def test_sample_from_a_folder_says_it_is_a_folder_and_names_the_checkpoint_inside(tiny_run, capsys):
    assert main(["sample", "--ckpt", str(tiny_run.root), "--out", "s.png"]) == 2
    line = one_line(capsys)
    assert "is a folder" in line and str(tiny_run.root / "checkpoints" / "last.ckpt") in line, line


def test_sample_to_an_unwritable_place_is_refused_before_the_checkpoint_is_read(capsys):
    assert main(["sample", "--ckpt", "missing.ckpt", "--out", "/proc/x.png"]) == 2
    line = one_line(capsys)
    assert "--out /proc/x.png" in line and "not writable" in line, line


def test_a_sweep_file_with_empty_parameters_is_one_line(tmp_path):
    from genlab.sweep import SweepConfigError, load_sweep

    path = tmp_path / "s.yaml"
    path.write_text("method: grid\nmetric: {name: val/loss, goal: minimize}\nparameters:\n"
                    "command: [\"${env}\", genlab, fit, -c, configs/vae_mnist.yaml, \"${args}\"]\n")
    with pytest.raises(SweepConfigError, match="parameters"):
        load_sweep(path)


def test_the_report_counts_a_cut_short_epoch_as_a_fraction(data_root, capsys):
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.max_epochs", "1",
                 "--trainer.max_steps", "4"]) == 0
    assert "0.5 epochs, 4 steps" in capsys.readouterr().out


def test_resuming_a_finished_run_reports_existing_files_and_its_metrics(tiny_run, tmp_path, capsys):
    tiny_run.copy_to(tmp_path / "copy")
    root = tmp_path / "copy"
    capsys.readouterr()
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1",
                 "--ckpt_path", "last"]) == 0
    out = capsys.readouterr().out
    report = out[out.index("Run finished"):]
    for line in report.splitlines():
        if line.strip().startswith(("Best", "Last")):
            assert Path(line.split()[1]).is_file(), line
    assert "Metrics      val/loss" in report, report


def test_vocabulary_errors_name_at_most_twenty_unknown_characters_never_the_vocabulary():
    from genlab.data.text import CharVocab

    vocab = CharVocab.from_text("abcdefghij ")
    with pytest.raises(ValueError) as err:
        vocab.encode("abc" + "".join(chr(0x400 + i) for i in range(30)))
    message = str(err.value)
    assert "30 character(s)" in message and "10 more" in message and "abcdefghij" not in message, message


def test_the_next_hint_prompts_with_the_start_of_the_corpus():
    from genlab.callbacks.summary import next_commands

    (command,) = next_commands("LanguageModel", Path("run/checkpoints/last.ckpt"), "First Citizen:")
    assert "--prompt 'First Citizen:'" in command and "ROMEO" not in command


@pytest.mark.usefixtures("data_root")
def test_a_fast_dev_run_ends_with_its_report(capsys):
    """Lightning's fast_dev_run swaps the logger for a DummyLogger, which answers any attribute with a function:
    the end-of-run report must not take that for a W&B run folder (it crashed with a TypeError)."""
    assert main(["fit", *TINY_FIT, "--trainer.default_root_dir", "run", "--trainer.fast_dev_run", "true"]) == 0
    out = capsys.readouterr().out
    assert "Run finished" in out and "W&B" not in out
