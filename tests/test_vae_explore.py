"""The VAE's latent space to explore: representative interpolation endpoints read by genlab's classifier, the
explorer page and the scatter table at the end of training, class names from the one data-set registry, and the
Fashion-MNIST override config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from genlab.data.registry import class_index, class_names
from genlab.figures.vae import (
    class_names_of,
    encode_means,
    explorer_page,
    interpolation,
    judge,
    latent_plane,
    make_figures,
    representative_index,
)
from genlab.models.vae import VAE

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_registry_names_classes_and_reads_labels_or_names():
    assert class_names("mnist") == [str(d) for d in range(10)]
    assert class_names("fashion_mnist") == FASHION
    assert class_index("mnist", "9") == 9 and class_index("fashion_mnist", "ankle boot") == 9
    assert class_index("fashion_mnist", "3") == 3
    with pytest.raises(ValueError, match="not a class of mnist: give a label 0-9"):
        class_index("mnist", "Sneaker")
    with pytest.raises(ValueError, match="unknown dataset"):
        class_names("cifar")


class LineDecoder:
    """A stand-in model whose decoded image carries z[0] in every pixel (as a logit)."""

    device = torch.device("cpu")

    def decode(self, z):
        return z[:, :1, None, None].expand(len(z), 1, 28, 28).clone()


def test_representative_is_nearest_the_median_among_those_read_as_their_class():
    # class 3 lies along z[0] with median 0; the judge reads z[0] < 0.05 as a 5, so the two nearest fail
    z0 = torch.tensor([0.0, 9.0, -0.02, 0.3, 0.5, -0.4, -9.0])
    y = torch.tensor([3, 1, 3, 3, 3, 3, 1])
    mu = torch.stack([z0, torch.zeros_like(z0)], 1)
    threshold = torch.sigmoid(torch.tensor(0.05))

    def judge(images, p=1.0):  # class probabilities: p on the class read, the rest spread over the others
        read = torch.where(images[:, 0, 0, 0] < threshold, 5, 3)
        probs = torch.full((len(images), 10), (1 - p) / 9)
        return probs.scatter(1, read[:, None], p)

    model = LineDecoder()
    assert representative_index(model, y, mu, 3) == 0  # without a judge: the nearest to the median
    assert representative_index(model, y, mu, 3, judge) == 3
    assert representative_index(model, y, mu, 3, lambda im: judge(im, 0.95)) == 0  # read as 3, not confidently
    assert representative_index(model, y, mu, 3, lambda im: judge(im, 0.95), confidence=0.9) == 3
    with pytest.raises(ValueError, match="no image labelled 4"):
        representative_index(model, y, mu, 4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """A small 2-D VAE trained for a few epochs through Lightning (so its reconstructions are digits), with the
    W&B logger's calls recorded; returns (checkpoint, run folder, recorded calls)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from genlab.data import MNISTDataModule
    from genlab.loggers import WandbLogger

    root = tmp_path_factory.mktemp("vae_explore")
    pl.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(data_root), batch_size=64, val_size=1000, train_limit=6000)
    model = VAE(hidden=[256], lr=3e-3, grid_size=4, val_iwae_k=0, figures_every_n_epochs=2)
    logger = WandbLogger(save_dir=str(root), offline=True)
    calls = []
    logger.log_metrics = lambda metrics, step=None: calls.append(("metrics", metrics, step))
    logger.log_table = lambda key, columns=None, data=None, **kw: calls.append(("table", key, columns, data))
    logger.log_image = lambda key, images, step=None, **kw: calls.append(("image", key, step))
    trainer = pl.Trainer(
        max_epochs=4, default_root_dir=str(root), logger=logger, accelerator="cpu", enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True)],
    )
    trainer.fit(model, datamodule=dm)
    return root / "checkpoints" / "last.ckpt", root, calls


def test_end_of_training_writes_and_logs_the_explorer_and_the_scatter_table(trained):
    _, root, calls = trained
    page = root / "figures" / "latent_explorer.html"
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "https://" not in html
    assert page.stat().st_size < 1_500_000
    rows = (root / "figures" / "latent_scatter_table.csv").read_text().splitlines()
    assert rows[0] == "z0,z1,label,class" and 1 < len(rows) <= 501
    logged = [c for c in calls if c[0] == "metrics" and "latent_explorer" in c[1]]
    assert len(logged) == 1
    import wandb

    assert isinstance(logged[0][1]["latent_explorer"], wandb.Html)
    tables = [c for c in calls if c[0] == "table" and c[1] == "latent_scatter_table"]
    assert len(tables) == 1 and tables[0][2] == ["z0", "z1", "label", "class", "thumbnail"]
    assert len(tables[0][3]) <= 1000 and isinstance(tables[0][3][0][-1], wandb.Image)
    grids = [c for c in calls if c[0] == "image" and c[1] == "latent_grid"]
    # every second of 4 validation epochs, under one key and at growing steps: W&B's step slider shows it forming
    assert len(grids) == 2 and grids[0][2] < grids[1][2]


def test_endpoints_are_representative_and_frames_are_labelled_by_the_classifier(trained, data_root):
    from genlab.checkpoints import load_module
    from genlab.data import load_images

    ckpt, _, _ = trained
    model = load_module(ckpt, expected=VAE).eval()
    x, y = load_images("mnist", "test", data_root)
    x, y = x[:2000], y[:2000]
    mu = encode_means(model, x)
    probabilities = judge("mnist")

    def predict(images):
        return probabilities(images).argmax(1)

    sure = 0.5  # a 4-epoch model is seldom as sure as CONFIDENT asks of the 30-epoch one
    path = interpolation(model, x, y, mu, a=9, b=8, judge=probabilities, confidence=sure)
    i, j = path.index_from, path.index_to
    assert (int(y[i]), int(y[j])) == (9, 8)
    with torch.no_grad():
        for idx, cls in ((i, 9), (j, 8)):
            # its reconstruction is read as its class confidently, and no image of the class nearer the median is
            assert probabilities(torch.sigmoid(model.decode(mu[idx : idx + 1])))[0, cls] >= sure
            members = (y == cls).nonzero().flatten()
            centre = mu[members].median(0).values
            nearer = members[(mu[members] - centre).norm(dim=1) < (mu[idx] - centre).norm() - 1e-6]
            if len(nearer):
                probs = probabilities(torch.sigmoid(model.decode(mu[nearer])))
                assert ((probs.argmax(1) != cls) | (probs[:, cls] < sure)).all()
    assert torch.equal(path.predictions, predict(path.images))
    assert int(path.predictions[0]) == 9 and int(path.predictions[-1]) == 8
    fig = make_figures(model, x, y, mu, y, indices=(i, j))["interpolation"][0]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == f"input #{i}\n9" and titles[11] == f"input #{j}\n8"
    assert [t.split("-> ")[1] for t in titles[1:11]] == [str(int(c)) for c in path.predictions]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_vae_figures_from_to_and_explorer(trained, tmp_path, capsys):
    from genlab.cli import main

    ckpt, _, _ = trained
    out = tmp_path / "figs"
    assert main(["vae-figures", "--ckpt", str(ckpt), "--out", str(out), "--scatter-images", "1500",
                 "--from", "3", "--to", "5"]) == 0
    printed = capsys.readouterr().out
    assert "interpolation.png: 3 -> 5 (images #" in printed and "classifier reads: " in printed
    html = (out / "latent_explorer.html").read_text()
    assert '"names":["0","1","2","3","4","5","6","7","8","9"]' in html
    assert main(["vae-figures", "--ckpt", str(ckpt), "--out", str(out), "--scatter-images", "500",
                 "--from-index", "3", "--to-index", "4", "--no-explorer"]) == 0
    assert "(images #3 -> #4; plane points (" in capsys.readouterr().out
    for bad, message in (
        (["--from", "Sneaker"], "'Sneaker' is not a class of mnist"),
        (["--from-index", "3"], "--from-index and --to-index go together"),
        (["--from-index", "3", "--to-index", "9999"], "must be test image numbers 0-499"),
        (["--from", "3", "--from-index", "1", "--to-index", "2"], "either as classes"),
    ):
        with pytest.raises(SystemExit) as err:
            main(["vae-figures", "--ckpt", str(ckpt), "--out", str(out), "--scatter-images", "500", *bad])
        assert err.value.code == 2
        assert message in capsys.readouterr().err


def test_fashion_names_everywhere_and_pca_plane_for_higher_dims(data_root):
    from genlab.data import load_images

    x, y = load_images("fashion_mnist", "test", data_root)
    x, y = x[:300], y[:300]
    torch.manual_seed(0)
    model = VAE(hidden=[32], grid_size=3, latent_dim=4, dataset="fashion_mnist", interpolate_from=7,
                interpolate_to=9).eval()
    assert class_names_of(model) == FASHION
    mu = encode_means(model, x)
    figs = make_figures(model, x, y, mu, y)
    legend = [t.get_text() for t in figs["latent_scatter"][0].axes[0].get_legend().get_texts()]
    assert legend == [FASHION[c] for c in sorted(set(y.tolist()))]
    assert figs["interpolation"][1].startswith("Sneaker -> Ankle boot")
    html = explorer_page(model, mu, y)
    assert "Ankle boot" in html and "first two principal components" in html
    plane = latent_plane(mu)  # lifting a projected code and projecting it again is the identity on the plane
    p = plane.project(mu[:5])
    torch.testing.assert_close(plane.project(plane.lift(p)), p, atol=1e-5, rtol=0)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_fashion_override_config_composes_with_the_mnist_one(repo, capsys):
    from genlab.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "-c", str(repo / "configs" / "vae_mnist.yaml"), "-c", str(repo / "configs" / "vae_fashion_mnist.yaml"),
              "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["class_path"] == "genlab.data.FashionMNISTDataModule"
    assert config["model"]["init_args"]["latent_dim"] == 2 and config["trainer"]["max_epochs"] == 30  # from the base
    assert config["trainer"]["default_root_dir"] == "runs/vae_fashion_mnist"
    assert Path(repo / "configs" / "vae_fashion_mnist.yaml").read_text().count("\n") < 20  # an override, not a copy
    from genlab.lightning_cli import GenlabCLI

    cli = GenlabCLI(args=["-c", str(repo / "configs" / "vae_mnist.yaml"), "-c", str(repo / "configs" / "vae_fashion_mnist.yaml"),
                          "--trainer.logger", "false"], run=False)
    assert cli.model.hparams.dataset == "fashion_mnist"  # the model takes its data set from the data module
