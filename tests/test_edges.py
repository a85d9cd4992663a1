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
