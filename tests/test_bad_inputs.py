"""Bad inputs get one line naming the problem and the fix: no traceback, nothing computed in vain."""

from __future__ import annotations

import pytest

import tiny_models  # noqa: F401  (load_module accepts classes of modules already imported)
from genlab.cli import main


def genlab_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(("path", "kwargs", "message"), [
    ("genlab.models.vae.VAE", {"beta": -0.5}, "beta must be >= 0"),
    ("genlab.models.vae.VAE", {"lr": 0.0}, "lr must be > 0"),
    ("genlab.models.dcgan.DCGAN", {"g_lr": -1e-3}, "g_lr must be >= 0"),  # 0 freezes a network on purpose
    ("genlab.models.dcgan.DCGAN", {"d_lr": float("nan")}, "d_lr must be >= 0"),
    ("genlab.models.lm.LanguageModel", {"learning_rate": 0}, "learning_rate must be > 0"),
    ("genlab.models.classifier.Classifier", {"lr": -1}, "lr must be > 0"),
])
def test_negative_beta_and_non_positive_learning_rates_are_refused(path, kwargs, message):
    import importlib

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--model.init_args.latent_dim", "0", "latent_dim must be >= 1, got 0"),
    ("--model.init_args.beta", "-1", "beta must be >= 0"),
    ("--data.init_args.batch_size", "0", "batch_size"),
])
def test_a_constructor_error_in_a_config_is_one_line(repo, capsys, flag, value, message):
    assert main(["fit", "-c", str(repo / "configs" / "vae_mnist.yaml"), flag, value, "--trainer.max_epochs", "1"]) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("genlab fit: error: ") and message in lines[0], lines


def test_one_error_class_says_every_users_error_in_one_line_and_bugs_keep_their_traceback(capsys):
    """genlab.errors is the one boundary: every genlab error (also wrapped by a library) is one line with its exit
    status; the DCGAN's non-finite loss is the guard's own error, a failed run (1)."""
    from genlab.callbacks.guards import NonFiniteLossError
    from genlab.checkpoints import CheckpointError
    from genlab.data.paths import DataError, DataNotFoundError
    from genlab.errors import ConfigError, GenlabError, RunFolderError, say
    from genlab.metrics.classifier import ClassifierWeightsError
    from genlab.models import dcgan
    from genlab.tools.checks import ToolArgumentError

    assert dcgan.NonFiniteLossError is NonFiniteLossError
    for cls in (NonFiniteLossError, CheckpointError, DataError, DataNotFoundError, ConfigError, RunFolderError,
                ClassifierWeightsError, ToolArgumentError):
        assert issubclass(cls, GenlabError), cls
    try:
        try:
            raise DataError("mnist.gz is truncated; delete it")
        except DataError as inner:
            raise ValueError("wrapped by a library") from inner
    except ValueError as err:
        assert say("fit", err) == 2
    assert genlab_lines(capsys) == ["genlab fit: error: mnist.gz is truncated; delete it"]
    assert say("fit", NonFiniteLossError("loss is nan")) == 1
    assert genlab_lines(capsys) == ["genlab fit: error: loss is nan"]
    assert say("fit", ValueError("a bug")) is None and not capsys.readouterr().err


def test_vae_figures_refuses_zero_scatter_images(capsys):
    assert main(["vae-figures", "--ckpt", "missing.ckpt", "--out", "figs", "--scatter-images", "0"]) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and "--scatter-images" in lines[0] and ">= 1" in lines[0], lines


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "--ckpt", "x.ckpt", "--out", "."], "--out . is a folder"),
    (["sample", "--ckpt", "x.ckpt", "--out", "afile/grid.png"], "is a file, not a folder"),
    (["evaluate", "--ckpt", "x.ckpt", "--out", "."], "--out . is a folder"),
    (["evaluate", "--ckpt", "x.ckpt", "--device", "bogus"], "--device 'bogus' is not a device"),
    (["vae-figures", "--ckpt", "x.ckpt", "--out", "afile"], "--out afile is a file, not a folder"),
    (["generate", "--ckpt", "x.ckpt", "--device", "bogus"], "--device 'bogus' is not a device"),
    (["generate", "--ckpt", "x.ckpt", "--prompt", ""], "--prompt is empty"),
    (["generate", "--ckpt", "x.ckpt", "--temperature", "0.8", "nan"], "temperature"),
    (["generate", "--ckpt", "x.ckpt", "--temperature", "0.8", "inf"], "temperature"),
])
def test_tool_arguments_are_checked_before_any_work_in_one_line(capsys, argv, message):
    from pathlib import Path

    Path("afile").write_text("not a folder")
    assert main(argv) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith(f"genlab {argv[0]}"), lines


def test_a_missing_output_folder_is_created():
    from pathlib import Path

    from genlab.tools.checks import output_file, output_folder

    assert output_file("new/deeper/grid.png") == Path("new/deeper/grid.png") and Path("new/deeper").is_dir()
    assert output_folder("figs/a").is_dir()


def test_cuda_without_a_gpu_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["evaluate", "--ckpt", "x.ckpt", "--device", "cuda"]) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and "no CUDA GPU" in lines[0], lines


def _tiny_checkpoint(tiny_run, **hparams):
    """A finished tiny run's last.ckpt with some hyper-parameters changed."""
    import torch

    ckpt = torch.load(tiny_run.root / "checkpoints/last.ckpt", weights_only=True)
    ckpt["hyper_parameters"].update(hparams)
    torch.save(ckpt, "changed.ckpt")
    return "changed.ckpt"


def _fit_from(ckpt: str, *extra: str) -> int:
    from tiny_models import TINY_FIT

    try:
        return main(["fit", *TINY_FIT, "--trainer.default_root_dir", "runs/h2", "--trainer.max_epochs", "2",
                     "--ckpt_path", ckpt, *extra])
    except SystemExit as stop:
        return stop.code


def test_checkpoint_hyper_parameters_never_import_modules_outside_genlab(tiny_run, capsys):
    import sys

    ckpt = _tiny_checkpoint(tiny_run, _class_path="evil_module_of_a_checkpoint.Model")
    capsys.readouterr()
    assert _fit_from(ckpt) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and "evil_module_of_a_checkpoint.Model" in lines[0] and "outside genlab" in lines[0]
    assert "evil_module_of_a_checkpoint" not in sys.modules


def test_checkpoint_hyper_parameters_that_override_the_command_line_are_named(tiny_run, capsys):
    ckpt = _tiny_checkpoint(tiny_run, lr=0.5)
    capsys.readouterr()
    assert _fit_from(ckpt, "--model.init_args.lr", "0.01") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "from the checkpoint" in line]
    assert len(said) == 1 and "lr 0.5 (given 0.01)" in said[0]


def test_invalid_checkpoint_hyper_parameters_are_one_line(tiny_run, capsys):
    ckpt = _tiny_checkpoint(tiny_run, hidden="many")
    capsys.readouterr()
    assert _fit_from(ckpt) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and "hidden" in lines[0] and "changed.ckpt" in lines[0], lines


def test_an_unreadable_corpus_is_one_line_not_a_traceback(capsys):
    from pathlib import Path

    from test_reporting import fit_lm

    Path("latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 200)
    capsys.readouterr()
    assert fit_lm("runs/t", Path("latin1.txt")) == 2
    lines = genlab_lines(capsys)
    assert len(lines) == 1 and "is not UTF-8 text" in lines[0], lines


def test_a_truncated_mnist_file_is_named_as_truncated_not_missing(tmp_path, data_root):
    import shutil

    from genlab.data import load_images
    from genlab.data.paths import DataError

    raw = tmp_path / "copy" / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100_000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated or corrupt .*delete it and re-download"):
        load_images("mnist", "test", tmp_path / "copy")


def test_a_tools_input_errors_are_one_line_and_its_bugs_keep_their_traceback(capsys):
    """genlab.tools.checks.says_input_errors, the one place every tool's input errors become `genlab X: error:`."""
    from genlab.checkpoints import CheckpointError
    from genlab.tools.checks import argument, says_input_errors

    @says_input_errors("demo")
    def tool(argv):
        kind = argv[0]
        if kind == "checkpoint":
            raise CheckpointError("runs/x.ckpt is damaged; use runs/best.ckpt")
        if kind == "value":
            with argument("--prompt"):
                raise ValueError("unknown character '€'")
        if kind == "bug":
            raise ValueError("a bug, not the user's input")
        return 0

    assert tool(["checkpoint"]) == 2
    assert genlab_lines(capsys) == ["genlab demo: error: runs/x.ckpt is damaged; use runs/best.ckpt"]
    assert tool(["value"]) == 2
    assert genlab_lines(capsys) == ["genlab demo: error: --prompt: unknown character '€'"]
    with pytest.raises(ValueError, match="a bug"):  # not turned into a user's error
        tool(["bug"])
    assert tool(["fine"]) == 0
