"""`precision: auto` and `channels_last: auto`: every hardware answer faked, every branch of the rule checked."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from genlab import hardware
from genlab.lightning_cli import GenlabCLI
from tiny_configs import MODELS

REPO = Path(__file__).resolve().parents[1]

SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n"
HASWELL = "model name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz\nflags\t\t: fpu sse2 avx avx2 fma\n"


def fake_machine(monkeypatch, cuda=False, cuda_bf16=False, capability=(8, 0), cpu_bf16=False, mps=False):
    """This process sees the given hardware: CUDA (with or without real bf16), a CPU with or without native
    bf16, Apple MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    # a pre-Ampere GPU answers True when emulation counts: the rule must ask without it
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda_bf16 or including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(hardware, "_mps_available", lambda: mps)


@pytest.mark.parametrize("text, model, flags", [
    (SAPPHIRE, "Intel(R) Xeon(R) Platinum 8480+", ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma"]),
    (HASWELL, "Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz", ["avx2", "fma"]),
])
def test_cpu_info_reads_model_and_relevant_flags(monkeypatch, text, model, flags):
    name, found = hardware._linux_cpu(text)
    assert name == model and [f for f in hardware.RELEVANT_FLAGS if f in found] == flags


def test_cpu_info_of_this_machine_has_the_benchmark_fields():
    info = hardware.hardware_fields()
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert set(info["cpu_flags"]) <= set(hardware.RELEVANT_FLAGS)
    assert info["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


@pytest.mark.parametrize("flags, native", [(["avx512_bf16", "avx512f", "avx2", "fma"], True),
                                           (["amx_bf16", "amx_tile", "avx2"], True),
                                           (["avx512f", "avx2", "fma"], False),  # AVX512 only emulates bf16
                                           (["avx2", "fma"], False)])
def test_native_bf16_needs_avx512_bf16_or_amx(monkeypatch, flags, native):
    monkeypatch.setattr(hardware, "cpu_info", lambda: {"cpu": "fake", "cpu_flags": flags})
    assert hardware.cpu_has_native_bf16() is native


@pytest.mark.parametrize("machine, accelerator, expected, reason", [
    ({"cuda": True, "cuda_bf16": True}, "auto", "bf16-mixed", "CUDA, bf16 supported"),
    ({"cuda": True, "cuda_bf16": True}, "gpu", "bf16-mixed", "CUDA, bf16 supported"),
    ({"cuda": True, "cuda_bf16": False}, "cuda", "16-mixed", "CUDA without bf16"),
    ({"cpu_bf16": True}, "auto", "bf16-mixed", "CPU with native bf16"),
    ({"cpu_bf16": False}, "auto", "32-true", "CPU without native bf16"),
    ({"cuda": True, "cuda_bf16": True, "cpu_bf16": False}, "cpu", "32-true", "CPU without native bf16"),
    ({"mps": True}, "auto", "32-true", "MPS"),
    ({"mps": True, "cpu_bf16": True}, "mps", "32-true", "MPS"),
    ({}, "tpu", "32-true", "no genlab rule"),
])
def test_auto_precision_follows_the_hardware(monkeypatch, machine, accelerator, expected, reason):
    fake_machine(monkeypatch, **machine)
    precision, why = hardware.resolve_precision("auto", accelerator)
    assert precision == expected and reason in why


@pytest.mark.parametrize("requested", ["32-true", "16-mixed", "bf16-mixed", "64-true", 32, "bf16", None])
def test_a_precision_the_user_names_wins(monkeypatch, requested):
    fake_machine(monkeypatch, cuda=True, cuda_bf16=True, cpu_bf16=True)
    assert hardware.resolve_precision(requested, "auto")[0] == requested


@pytest.mark.parametrize("machine, accelerator, precision, expected", [
    ({"cpu_bf16": True}, "auto", "bf16-mixed", True),
    ({"cpu_bf16": False}, "cpu", "32-true", True),
    ({"cuda": True, "cuda_bf16": True}, "auto", "bf16-mixed", True),
    ({"cuda": True}, "auto", "16-mixed", True),
    ({"cuda": True, "cuda_bf16": True}, "auto", "32-true", False),  # float32 convs: no tensor-core gain
    ({"cuda": True, "capability": (6, 1)}, "auto", "16-mixed", False),  # no tensor cores
    ({"mps": True}, "auto", "32-true", False),
])
def test_auto_channels_last_follows_the_hardware(monkeypatch, machine, accelerator, precision, expected):
    fake_machine(monkeypatch, **machine)
    assert hardware.resolve_channels_last("auto", accelerator, precision)[0] is expected


def test_channels_last_the_user_names_wins_and_nonsense_is_refused(monkeypatch):
    fake_machine(monkeypatch, cpu_bf16=True)
    assert hardware.resolve_channels_last(False, "cpu", "bf16-mixed")[0] is False
    assert hardware.resolve_channels_last(True, "mps", "32-true")[0] is True
    with pytest.raises(ValueError, match="true, false or auto"):
        hardware.resolve_channels_last("sometimes")


def test_every_shipped_config_says_precision_auto():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        config = yaml.safe_load(path.read_text())
        if "base" in config:  # composed after its base, which sets the precision
            assert "precision" not in config.get("trainer", {}), path.name
            continue
        assert config["trainer"]["precision"] == "auto", path.name


def _cli(name: str, *extra: str) -> GenlabCLI:
    config, _, overrides = MODELS[name]
    return GenlabCLI(args=["-c", str(REPO / config), *overrides, "--trainer.logger", "false",
                           "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", "run", *extra],
                     run=False)


def _printed(caplog, capfd) -> str:
    return caplog.text + capfd.readouterr().err


@pytest.mark.parametrize("cpu_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cli_resolves_auto_before_the_trainer_and_says_so_once(monkeypatch, caplog, capfd, cpu_bf16, expected):
    fake_machine(monkeypatch, cpu_bf16=cpu_bf16)
    with caplog.at_level(logging.INFO):
        cli = _cli("vae", "--trainer.precision", "auto", "--trainer.accelerator", "auto")
    assert cli.trainer.precision == expected
    assert _printed(caplog, capfd).count(f"precision: {expected} (CPU") == 1


def test_cli_keeps_the_precision_the_user_names(monkeypatch, caplog, capfd):
    fake_machine(monkeypatch, cpu_bf16=False)
    with caplog.at_level(logging.INFO):
        cli = _cli("vae", "--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu")
    assert cli.trainer.precision == "bf16-mixed"
    assert "precision: bf16-mixed (" not in _printed(caplog, capfd)


def test_cli_resolves_the_dcgan_layout(monkeypatch):
    fake_machine(monkeypatch, cpu_bf16=True)
    cli = _cli("dcgan", "--trainer.accelerator", "cpu")  # the config says channels_last: auto
    assert cli.model.hparams.channels_last is True
    assert cli.model.generator.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    cli = _cli("dcgan", "--trainer.accelerator", "cpu", "--model.init_args.channels_last", "false")
    assert cli.model.hparams.channels_last is False


def test_print_config_keeps_auto(capsys):
    config, _, overrides = MODELS["lm"]
    with pytest.raises(SystemExit) as done:
        GenlabCLI(args=["-c", str(REPO / config), "--trainer.precision", "auto", "--print_config"], run=False)
    assert done.value.code in (0, None)
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["precision"] == "auto"


def test_a_trainer_built_in_python_takes_auto(monkeypatch):
    from genlab.lightning_cli import GenlabTrainer

    fake_machine(monkeypatch, cpu_bf16=False)
    trainer = GenlabTrainer(precision="auto", accelerator="cpu", logger=False, enable_checkpointing=False)
    assert trainer.precision == "32-true"
