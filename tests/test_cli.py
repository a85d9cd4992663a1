"""The foundation end to end, in-process: LightningCLI, offline W&B files, seeds, checkpoints and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.checkpoints import CheckpointError, load_module
from genlab.cli import main
from genlab.loggers import read_offline_run
from tiny_models import STEPS_PER_EPOCH, TINY_FIT


def fit(root: str, *extra: str) -> Path:
    """Train the tiny model; returns the offline W&B run folder this fit wrote."""
    before = set(Path().glob("wandb/offline-run-*"))
    main(["fit", *TINY_FIT, "--trainer.default_root_dir", root, *extra])
    (run,) = set(Path().glob("wandb/offline-run-*")) - before
    return run


def history(run: Path) -> dict[str, list]:
    metrics: dict[str, list] = {}
    for row in read_offline_run(run):
        for key, value in row.items():
            metrics.setdefault(key, []).append(value)
    return metrics


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "evaluate", "sample", "generate", "vae-figures",
                    "precision", "sweep", "attention"):
        assert command in text
    assert main(["frobnicate"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    assert "--trainer.max_epochs" in capsys.readouterr().out


def test_print_config_shows_genlab_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fit", *TINY_FIT, "--print_config"])
    config = capsys.readouterr().out
    assert "genlab.loggers.OfflineFirstWandbLogger" in config and "save_last: true" in config
    assert "seed_everything: 0" in config


def test_the_config_of_a_run_saved_before_the_renames_still_builds(tmp_path):
    """config.yaml of earlier runs names the logger genlab.loggers.WandbLogger and states the values the model
    takes from the data (now linked): such a file still parses and builds the same run."""
    import yaml

    from genlab.lightning_cli import GenlabCLI
    from genlab.loggers import OfflineFirstWandbLogger

    old = {"trainer": {"logger": {"class_path": "genlab.loggers.WandbLogger", "init_args": {"project": "genlab"}},
                       "default_root_dir": "runs/old"},
           "model": {"class_path": "genlab.models.vae.VAE", "init_args": {"hidden": [8], "dataset": "fashion_mnist"}},
           "data": {"class_path": "genlab.data.FashionMNISTDataModule"}}
    Path("old.yaml").write_text(yaml.safe_dump(old))
    cli = GenlabCLI(args=["-c", "old.yaml"], run=False)
    assert isinstance(cli.trainer.logger, OfflineFirstWandbLogger) and cli.model.hparams.dataset == "fashion_mnist"


def test_default_logger_runs_offline_and_writes_metrics_and_images(tiny_run):
    metrics = history(tiny_run.wandb)  # the fixture fails if no offline run folder was written
    assert "val/loss" in metrics and "train/loss" in metrics
    images = list(tiny_run.wandb.glob("files/media/images/reconstructions_*.png"))
    assert images, "the image logged by the model must be in the offline run"
    assert (tiny_run.root / "figures/reconstructions.png").is_file()
    assert {p.name for p in (tiny_run.root / "checkpoints").iterdir()} >= {"last.ckpt"}
    assert (tiny_run.root / "config.yaml").is_file()


def test_same_seed_same_first_epoch_metrics(tiny_run):
    a = history(tiny_run.wandb)  # seed 0, the default
    b = history(fit("runs/b", "--trainer.max_epochs", "1", "--seed_everything", "0"))
    c = history(fit("runs/c", "--trainer.max_epochs", "1", "--seed_everything", "8"))
    assert a["val/loss"] == b["val/loss"]
    assert a["val/loss"] != c["val/loss"]


@pytest.mark.usefixtures("data_root")
def test_resume_from_last_checkpoint_continues_training():
    fit("runs/r", "--trainer.max_epochs", "1")
    assert torch.load("runs/r/checkpoints/last.ckpt", weights_only=True)["global_step"] == STEPS_PER_EPOCH
    fit("runs/r", "--trainer.max_epochs", "2", "--ckpt_path", "last")
    resumed = torch.load("runs/r/checkpoints/last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * STEPS_PER_EPOCH


def test_last_checkpoint_is_the_newest_state_even_when_the_monitor_stops_improving(tiny_run):
    """Lightning alone refreshes last.ckpt only at new bests; with mode max on a falling loss the best stays at
    epoch 0, and last.ckpt must still follow training to its last epoch (what resume and the benchmarks read)."""
    steps_one_epoch = torch.load(tiny_run.root / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert steps_one_epoch == STEPS_PER_EPOCH
    fit("runs/m", "--trainer.max_epochs", "3", "--checkpoint.mode", "max")
    last = torch.load("runs/m/checkpoints/last.ckpt", weights_only=True)
    best = torch.load("runs/m/checkpoints/best.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * steps_one_epoch
    assert best["epoch"] < last["epoch"]  # the monitor did stop improving, so plain Lightning would have lagged


def test_checkpoints_load_safely_with_clear_errors(tiny_run):
    last = tiny_run.root / "checkpoints/last.ckpt"
    model = load_module(last)
    assert type(model).__name__ == "TinyAutoencoder" and not model.training
    with pytest.raises(CheckpointError, match="not found"):
        load_module(tiny_run.root / "checkpoints/nope.ckpt")
    Path("garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_module("garbage.ckpt")
    with pytest.raises(CheckpointError, match="needs a"):
        load_module(last, expected=torch.nn.Linear)


def test_sample_command_writes_a_grid(tiny_run, capsys):
    assert main(["sample", "--ckpt", str(tiny_run.root / "checkpoints/last.ckpt"), "--n", "16", "--out",
                 "grid.png"]) == 0
    from torchvision.io import decode_image

    assert decode_image("grid.png").shape[-2:] == (4 * 30 + 2, 4 * 30 + 2)
    assert main(["sample", "--ckpt", "missing.ckpt", "--out", "x.png"]) == 2
    assert "not found" in capsys.readouterr().err


def test_building_a_module_flushes_subnormal_floats():
    """Subnormal floats (Adam's decayed second moments) run in slow microcode on x86 CPUs: building a genlab module
    turns on flush-to-zero, so arithmetic on them yields 0."""
    from genlab.models.vae import VAE

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    torch.set_flush_denormal(False)
    subnormal = torch.tensor([1e-39], dtype=torch.float32)
    assert (subnormal * 1.0).item() != 0.0  # off: the test can tell the difference
    VAE(hidden=(8,))
    assert (subnormal * 1.0).item() == 0.0


def test_wandb_run_holds_the_full_config_and_best_value_summaries(tiny_run):
    """W&B users compare runs by the config (trainer, model, data, callbacks) and rank them by the summary."""
    from genlab.loggers import read_offline_records

    records = read_offline_records(tiny_run.wandb)
    config = records["config"]
    assert config["trainer"]["max_epochs"] == 1 and "precision" in config["trainer"] and "summary" in config
    assert config["model"]["class_path"] == "tiny_models.TinyAutoencoder"
    assert config["data"]["init_args"]["train_limit"] == 512
    assert config["checkpoint"]["monitor"] == "val/loss"
    assert not [key for key in config if key.startswith("_")], "no internal keys such as _instantiator"
    assert "min" in records["metrics"]["val/loss"]["summary"]
    assert "val/loss" in records["summary"]


def test_a_run_started_by_wandb_agent_gets_its_own_folder_and_name(monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw123")
    monkeypatch.setenv("WANDB_RUN_ID", "run42")
    from genlab.loggers import read_offline_records

    run = fit("runs/agent", "--trainer.max_epochs", "1")
    assert Path("runs/agent/sweep-sw123/run42/checkpoints/last.ckpt").is_file()
    record = read_offline_records(run)["run"]
    assert (record["id"], record["name"]) == ("run42", "agent-run42")


def test_a_config_typo_gets_one_line_with_the_closest_key(repo, capsys):
    assert main(["fit", "-c", str(repo / "configs/vae_mnist.yaml"), "--model.init_args.latnet_dim", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean latent_dim?" in err and "latnet_dim" in err
    assert main(["fit", "-c", str(repo / "configs/vae_mnist.yaml"), "--trainer.max_epocs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trainer.max_epochs" in err


def test_a_vae_run_of_twenty_steps_trains_with_the_default_schedule(repo):
    """OneCycleLR's warm-up phase is empty below 1/warmup_frac steps; such a short run must still train."""
    main(["fit", "-c", str(repo / "configs/vae_mnist.yaml"), "--data.init_args.train_limit", "2560",
          "--data.init_args.val_size", "500", "--model.init_args.hidden", "[16]", "--model.init_args.val_iwae_images",
          "0", "--model.init_args.grid_size", "3", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar",
          "false", "--trainer.default_root_dir", "runs/short"])
    assert torch.load("runs/short/checkpoints/last.ckpt", weights_only=True)["global_step"] == 20


def test_an_unreachable_wandb_service_falls_back_to_offline_within_the_init_timeout(monkeypatch):
    """A key that cannot be checked (no service at the address) costs the init timeout, then the run logs offline."""
    import time

    import genlab.loggers

    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(genlab.loggers, "INIT_TIMEOUT_S", 5)
    start = time.monotonic()
    with pytest.warns(UserWarning, match="could not be reached"):
        run = fit("runs/unreachable", "--trainer.max_epochs", "1")
    assert time.monotonic() - start < 40
    assert run.name.startswith("offline-run-") and Path("runs/unreachable/checkpoints/last.ckpt").is_file()


def test_every_config_parses_alone_or_after_its_base(repo, capsys):
    """Bases parse alone; an override file (a top-level `base: X.yaml`) parses composed after its base."""
    import yaml

    configs = sorted((repo / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        base = yaml.safe_load(path.read_text()).get("base")
        args = ["-c", str(path.parent / base)] if base else []
        with pytest.raises(SystemExit) as exit_:
            main(["fit", *args, "-c", str(path), "--print_config"])
        assert exit_.value.code == 0, f"{path.name}: {capsys.readouterr().err}"
    capsys.readouterr()


def test_settings_shared_by_model_and_data_are_stated_once(repo, capsys):
    """The model takes block_size and the data set from the data; a contradicting model value is one line."""
    from genlab.lightning_cli import GenlabCLI

    lm = ["-c", str(repo / "configs/lm_shakespeare.yaml"), "--data.init_args.block_size", "32",
          "--model.init_args.n_layer", "1", "--model.init_args.n_embd", "32", "--trainer.logger", "false"]
    cli = GenlabCLI(args=lm, run=False)
    assert cli.model.hparams.block_size == 32
    fashion = GenlabCLI(args=["-c", str(repo / "configs/classifier_mnist.yaml"), "-c",
                              str(repo / "configs/classifier_fashion_mnist.yaml"), "--trainer.logger", "false"],
                        run=False)
    assert fashion.model.hparams.dataset == "fashion_mnist"
    assert main(["fit", *lm, "--model.init_args.block_size", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "block_size" in err and "64" in err and "32" in err


def test_missing_data_set_is_one_message_not_a_traceback(repo, tmp_path, monkeypatch, capsys):
    """A new user offline without the files: the fit says which files, where, and how to fix it, and exits 2."""
    import torchvision

    def no_network(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    code = main(["fit", "-c", str(repo / "configs/vae_mnist.yaml"), "--data.init_args.root", str(tmp_path / "none"),
                 "--trainer.logger", "false", "--trainer.default_root_dir", "runs/nodata"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "MNIST not found" in err and "GENLAB_DATA_DIR" in err


def test_an_override_config_alone_brings_its_base(repo, capsys):
    """`-c configs/vae_fashion_mnist.yaml` alone means `-c configs/vae_mnist.yaml -c configs/vae_fashion_mnist.yaml`:
    the override names its base with the top-level key `base: vae_mnist.yaml`, which the printed config leaves out
    (it is whole, so it stands alone)."""
    import yaml

    resolved = {}
    for args in (["-c", str(repo / "configs/vae_fashion_mnist.yaml")],
                 ["-c", str(repo / "configs/vae_mnist.yaml"), "-c", str(repo / "configs/vae_fashion_mnist.yaml")]):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", *args, "--print_config"])
        out, err = capsys.readouterr()
        assert exit_.value.code == 0, err
        resolved[len(args)] = {k: v for k, v in yaml.safe_load(out).items() if k != "config"}
    assert resolved[2] == resolved[4]
    assert resolved[2]["model"]["class_path"] == "genlab.models.vae.VAE"
    assert resolved[2]["data"]["class_path"] == "genlab.data.FashionMNISTDataModule"
    assert "base" not in resolved[2] and resolved[2]["trainer"]["max_epochs"] == 30  # the base's value
    assert "dataset" not in resolved[2]["model"]["init_args"]  # taken from the data: never its default "mnist"


def test_a_base_is_read_first_relative_to_its_override_and_only_once():
    from genlab.lightning_cli import with_bases

    Path("mine").mkdir()
    Path("mine/base.yaml").write_text("trainer: {max_epochs: 1}\n")
    Path("mine/over.yaml").write_text("base: base.yaml\ntrainer: {max_epochs: 2}\n")
    assert with_bases(["fit", "-c", "mine/over.yaml", "--x", "1"]) == [
        "fit", "-c", "mine/base.yaml", "-c", "mine/over.yaml", "--x", "1"]
    assert with_bases(["--config=mine/over.yaml"]) == ["--config", "mine/base.yaml", "--config=mine/over.yaml"]
    given = ["-c", "mine/base.yaml", "-c", "mine/over.yaml"]
    assert with_bases(given) == given
    assert with_bases(["-c", "missing.yaml"]) == ["-c", "missing.yaml"]  # the parser says it is missing


def test_print_config_leaves_the_values_the_model_takes_from_the_data_to_the_data(repo, capsys):
    """The model's block_size and dataset are linked to the data (jsonargparse's link_arguments): --print_config
    never shows the model's own default for them, --help names the links, and the printed config, used as a
    config, builds the model with the data's values."""
    import yaml

    from genlab.lightning_cli import GenlabCLI

    with pytest.raises(SystemExit) as exit_:
        main(["fit", "-c", str(repo / "configs/dcgan_fashion_mnist.yaml"), "--print_config=skip_null"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0, err
    config = yaml.safe_load(out)
    assert "dataset" not in config["model"]["init_args"]
    assert config["data"]["class_path"] == "genlab.data.FashionMNISTDataModule"
    assert "null" not in out  # the flag was applied
    Path("printed.yaml").write_text(out)
    cli = GenlabCLI(args=["-c", "printed.yaml", "--trainer.logger", "false", "--model.init_args.g_width", "8"],
                    run=False)
    assert cli.model.hparams.dataset == "fashion_mnist"
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "-c", str(repo / "configs/lm_shakespeare.yaml"), "--data.init_args.block_size", "64", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["init_args"]["block_size"] == 64 and "block_size" not in config["model"]["init_args"]
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "block_size_from_data(data.init_args.block_size" in text and "--> model.init_args.block_size" in text
    assert "dataset_from_data(data.class_path" in text and "--> model.init_args.dataset" in text


@pytest.mark.usefixtures("data_root")
def test_the_progress_bar_of_a_fit_without_an_epoch_limit_names_the_epoch_without_a_negative_total():
    """max_epochs -1 (a time or step budget, issue 26): Lightning's Rich bar read "Epoch 1/-2" (max_epochs - 1)."""
    from genlab import launch

    run = launch.build([], [*TINY_FIT, "--trainer.enable_progress_bar", "true", "--trainer.max_epochs", "-1",
                            "--trainer.max_steps", "10", "--trainer.default_root_dir", "runs/pb"]).fit()
    bar = run.trainer.progress_bar_callback
    titles = [" ".join(str(task.description).split()) for task in bar.progress.tasks]
    assert "Epoch 1" in titles and not any("/" in t for t in titles), titles
