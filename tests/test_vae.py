"""The VAE: its loss terms, the IWAE bound, the pictures, and the `genlab vae-figures` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.figures.vae import (
    grid_latents,
    interpolation_images,
    latent_grid_images,
    make_figures,
    project_2d,
    reconstruction_images,
)
from genlab.models.vae import VAE
from genlab.nets.vae import bernoulli_nll, gaussian_kl

FIGURE_KEYS = {"latent_grid", "latent_scatter", "interpolation", "reconstructions", "samples"}


def tiny_vae(**kw) -> VAE:
    args = dict(hidden=[32], grid_size=4, val_iwae_k=4, val_iwae_images=16, test_iwae_k=4)
    args.update(kw)
    return VAE(**args)


@pytest.fixture(scope="module")
def images(data_root):
    from genlab.data import load_images

    x, y = load_images("mnist", "test", data_root)
    return x[:300], y[:300]


def test_kl_of_standard_normal_posterior_is_zero():
    mu, logvar = torch.zeros(5, 2), torch.zeros(5, 2)
    assert torch.equal(gaussian_kl(mu, logvar), torch.zeros(5))
    kl = gaussian_kl(torch.randn(5, 2), torch.randn(5, 2))
    assert (kl > 0).all()
    # closed form agrees with torch.distributions
    m, lv = torch.randn(3, 4), torch.randn(3, 4)
    q = torch.distributions.Normal(m, torch.exp(0.5 * lv))
    p = torch.distributions.Normal(torch.zeros_like(m), torch.ones_like(m))
    torch.testing.assert_close(gaussian_kl(m, lv), torch.distributions.kl_divergence(q, p).sum(1))


def test_bernoulli_nll_is_stable_and_in_nats():
    x = torch.full((2, 1, 28, 28), 1.0)
    logits = torch.full_like(x, 200.0)  # sigmoid(200) == 1.0 in float32: sigmoid-then-BCE would give 0 or nan
    assert torch.isfinite(bernoulli_nll(-logits, x)).all()
    torch.testing.assert_close(bernoulli_nll(-logits, x), torch.full((2,), 200.0 * 784))
    zero = torch.zeros_like(x)  # p = 0.5 everywhere: 784 * log 2 nats
    torch.testing.assert_close(bernoulli_nll(zero, x), torch.full((2,), 784 * torch.log(torch.tensor(2.0)).item()))


def test_iwae_bound_is_no_larger_than_neg_elbo(images):
    torch.manual_seed(0)
    model = tiny_vae().eval()
    x = images[0][:32]
    gen = torch.Generator().manual_seed(1)
    elbo = torch.stack([model.iwae_nll(x, 1, generator=gen) for _ in range(20)]).mean(0)  # k=1: the ELBO
    iwae = torch.stack([model.iwae_nll(x, 16, chunk=100, generator=gen) for _ in range(20)]).mean(0)
    assert iwae.mean() <= elbo.mean()
    assert (iwae <= elbo + 1e-3).float().mean() >= 0.9
    # the k=1 bound is the one-sample negative ELBO of forward(), in expectation
    with torch.no_grad():
        fwd = torch.stack([model(x)["neg_elbo"] for _ in range(20)]).mean(0)
    torch.testing.assert_close(fwd.mean(), elbo.mean(), rtol=0.01, atol=0.5)


def test_figure_functions_shapes(images):
    x, y = images
    model = tiny_vae(grid_size=5).eval()
    grid, values = latent_grid_images(model, 5)
    assert grid.shape == (25, 1, 28, 28) and values.shape == (5,)
    assert (grid >= 0).all() and (grid <= 1).all()
    assert torch.all(values[1:] > values[:-1]) and abs(values[2].item()) < 1e-6  # norm.ppf(0.5) = 0
    assert interpolation_images(model, x[0], x[1], steps=7).shape == (7, 1, 28, 28)
    assert reconstruction_images(model, x, n=6).shape == (12, 1, 28, 28)
    s = model.sample(9, seed=3)
    assert s.shape == (9, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, model.sample(9, seed=3))
    mu = model.encode(x)[0]
    figs = make_figures(model, x, y, mu, y, split="test")
    assert set(figs) == FIGURE_KEYS
    assert figs["samples"][0].shape[0] == 3  # make_grid image [3,H,W]
    assert figs["reconstructions"][0].shape == (3, 2 * 30 + 2, 16 * 30 + 2)
    ax = figs["latent_grid"][0].axes[0]
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]" and len(ax.get_xticks()) == 5
    assert len(figs["latent_scatter"][0].axes[0].get_legend().get_texts()) == len(set(y.tolist()))
    import matplotlib.pyplot as plt

    plt.close("all")


def test_higher_latent_dims_use_pca_and_say_so(images):
    x, y = images
    model = tiny_vae(latent_dim=5).eval()
    z, _ = grid_latents(model, 4)
    assert z.shape == (16, 5) and torch.all(z[:, 2:] == 0)
    pts, labels = project_2d(model.encode(x)[0])
    assert pts.shape == (len(x), 2) and labels == ("PC 1", "PC 2")
    figs = make_figures(model, x, y, model.encode(x)[0].detach(), y)
    assert "principal components" in figs["latent_scatter"][1] and "other dims at 0" in figs["latent_grid"][1]
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, data_root) -> Path:
    """Two training steps and one validation epoch of a tiny VAE through Lightning; returns last.ckpt."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from genlab.data import MNISTDataModule

    root = tmp_path_factory.mktemp("vae_run")
    pl.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(data_root), batch_size=64, val_size=200, train_limit=256, pixels="binarized")
    model = tiny_vae(kl_warmup_epochs=1.0)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, default_root_dir=str(root), logger=False, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True)],
    )
    trainer.fit(model, datamodule=dm)
    assert torch.isfinite(torch.tensor(trainer.callback_metrics["val/neg_elbo"].item()))
    assert "val/iwae_nll_k4" in trainer.callback_metrics and "train/neg_elbo" not in trainer.callback_metrics
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert 0 < model.kl_weight() <= 1.0
    for key in FIGURE_KEYS:  # logged during validation into the run folder
        assert (root / "figures" / f"{key}.png").is_file(), key
        assert (root / "figures" / key / "epoch_0000.png").is_file(), key
    return root / "checkpoints" / "last.ckpt"


def test_vae_figures_command(tiny_checkpoint, tmp_path, capsys):
    from genlab.checkpoints import load_module
    from genlab.cli import main

    model = load_module(tiny_checkpoint, expected=VAE)
    assert model.hparams.hidden == [32] and model.hparams.latent_dim == 2
    out = tmp_path / "pictures"
    assert main(["vae-figures", "--ckpt", str(tiny_checkpoint), "--out", str(out), "--scatter-images", "400"]) == 0
    for key in FIGURE_KEYS:
        assert (out / f"{key}.png").stat().st_size > 1000, key
    from PIL import Image

    assert Image.open(out / "samples.png").size == (8 * 30 + 2, 8 * 30 + 2)
    assert "latent_grid.png" in capsys.readouterr().out
    out2 = tmp_path / "binarized"
    args = ["--ckpt", str(tiny_checkpoint), "--out", str(out2), "--pixels", "binarized", "--grid-size", "3"]
    assert main(["vae-figures", *args, "--scatter-images", "300"]) == 0
    assert {p.stem for p in out2.glob("*.png")} == FIGURE_KEYS


def test_vae_figures_bad_input(tiny_checkpoint, tmp_path, capsys):
    from genlab.cli import main
    from genlab.models.base import CLASS_KEY

    assert main(["vae-figures", "--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err

    other = torch.load(tiny_checkpoint, weights_only=True)
    other[CLASS_KEY] = "genlab.models.base.GenlabModule"  # a genlab checkpoint of another kind
    torch.save(other, tmp_path / "other.ckpt")
    assert main(["vae-figures", "--ckpt", str(tmp_path / "other.ckpt"), "--out", str(tmp_path)]) == 2
    assert "needs a VAE checkpoint" in capsys.readouterr().err

    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert main(["vae-figures", "--ckpt", str(tmp_path / "notes.ckpt"), "--out", str(tmp_path)]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err

    with pytest.raises(SystemExit) as err:  # argparse: a missing required option exits with 2
        main(["vae-figures", "--out", str(tmp_path)])
    assert err.value.code == 2
