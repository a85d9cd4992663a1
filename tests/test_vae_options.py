"""The VAE's options (issue 27): the VampPrior, the IWAE objective, the continuous Bernoulli likelihood, and the
IWAE log-likelihood estimate with each of them, checked against direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.models.vae import VAE
from genlab.nets.vae import (
    continuous_bernoulli_log_norm,
    iwae_bound,
    mixture_log_prob,
    pixel_log_likelihood,
)

FIGURE_KEYS = {"latent_grid", "latent_scatter", "interpolation", "reconstructions", "samples"}
OPTIONS = [
    {"prior": "gaussian"},
    {"prior": "vamp", "n_pseudo_inputs": 7},
    {"objective": "iwae", "iwae_k": 3},
    {"likelihood": "continuous_bernoulli"},
    {"prior": "vamp", "n_pseudo_inputs": 5, "objective": "iwae", "iwae_k": 4, "likelihood": "continuous_bernoulli"},
]


def tiny_vae(**kw) -> VAE:
    args = dict(hidden=[32], grid_size=4, val_iwae_k=4, val_iwae_images=16, test_iwae_k=4)
    args.update(kw)
    return VAE(**args)


@pytest.fixture(scope="module")
def binarized(data_root):
    """300 test images, binarized with a fixed seed, and their labels."""
    from genlab.data import load_images

    x, y = load_images("mnist", "test", data_root)
    return torch.bernoulli(x[:300], generator=torch.Generator().manual_seed(0)), y[:300]


def trained(model: VAE, x: torch.Tensor, steps: int = 150, seed: int = 0) -> VAE:
    """A few Adam steps of the model's own training loss on x, so that its posteriors are not the prior's."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for i in range(steps):
        loss = model.training_step((x[(i * 64) % len(x):][:64], None), i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


# --- the continuous Bernoulli ------------------------------------------------------------------------------


def test_continuous_bernoulli_normaliser_integrates_to_one():
    """int_0^1 C(lam) lam^x (1-lam)^(1-x) dx = 1, by quadrature, from lam near 0 through 0.5 to near 1."""
    from scipy.integrate import quad

    for logit in (-30.0, -6.0, -1.0, -1e-3, -1e-7, 0.0, 2e-5, 0.02, 0.3, 3.0, 12.0, 40.0):
        eta = torch.tensor(logit, dtype=torch.float64)
        log_c = continuous_bernoulli_log_norm(eta).item()
        log_lam, log_1m = torch.nn.functional.logsigmoid(eta).item(), torch.nn.functional.logsigmoid(-eta).item()
        total, _ = quad(lambda x, a=log_lam, b=log_1m, c=log_c: math.exp(c + x * a + (1 - x) * b), 0, 1,
                        epsabs=1e-12, epsrel=1e-12)
        assert total == pytest.approx(1.0, abs=1e-9), logit


def test_continuous_bernoulli_matches_torch_and_is_smooth_at_one_half():
    torch.manual_seed(0)
    logits = torch.cat([torch.randn(2000) * 4, torch.linspace(-0.05, 0.05, 1001)]).view(-1, 1, 1, 1)
    x = torch.rand_like(logits)
    ours = pixel_log_likelihood(logits, x, "continuous_bernoulli")
    ref = torch.distributions.ContinuousBernoulli(logits=logits.double()).log_prob(x.double()).flatten(1).sum(1)
    torch.testing.assert_close(ours.double(), ref, atol=2e-4, rtol=1e-5)
    # float32 against a float64 reference through lam = 0.5, where the direct formula is 0/0: no jump, no nan
    fine = torch.linspace(-0.03, 0.03, 6001)
    got = continuous_bernoulli_log_norm(fine)
    want = continuous_bernoulli_log_norm(fine.double())
    assert torch.isfinite(got).all()
    assert (got.double() - want).abs().max() < 1e-6
    assert continuous_bernoulli_log_norm(torch.zeros(1)).item() == pytest.approx(math.log(2.0), abs=1e-7)
    assert got.min().item() == pytest.approx(math.log(2.0), abs=1e-7)  # its minimum, log 2, at lam = 0.5
    torch.testing.assert_close(got, got.flip(0))  # C(lam) = C(1 - lam)
    grad_at = torch.tensor([0.0, 1e-3, -0.5, 30.0], requires_grad=True)
    continuous_bernoulli_log_norm(grad_at).sum().backward()
    assert torch.isfinite(grad_at.grad).all() and grad_at.grad[0] == 0


def test_continuous_bernoulli_pictures_show_its_mean():
    model = tiny_vae(likelihood="continuous_bernoulli").eval()
    logits = torch.tensor([-3.0, 0.0, 3.0]).view(3, 1, 1, 1)
    means = model.pixel_means(logits)
    torch.testing.assert_close(means, torch.distributions.ContinuousBernoulli(logits=logits).mean)
    assert means[1].item() == pytest.approx(0.5, abs=1e-4)
    assert 1 - torch.sigmoid(logits[2]).item() < 1 - means[2].item()  # the mean is less extreme than lam


# --- the VampPrior ---------------------------------------------------------------------------------------------


def test_vamp_log_density_against_a_loop_over_components():
    torch.manual_seed(0)
    model = tiny_vae(prior="vamp", n_pseudo_inputs=9, latent_dim=3).eval()
    z = torch.randn(4, 5, 3) * 2
    mu, logvar = model.encoder(model.vamp.pseudo_inputs())
    per_component = torch.stack([
        torch.distributions.Independent(torch.distributions.Normal(mu[k], torch.exp(0.5 * logvar[k])), 1).log_prob(z)
        for k in range(9)
    ])
    want = torch.logsumexp(per_component, dim=0) - math.log(9)
    with torch.no_grad():
        torch.testing.assert_close(model.log_prior(z), want)
        torch.testing.assert_close(mixture_log_prob(z, mu, logvar, max_elements=7), want)  # in blocks of 1 row
    # the density integrates to 1 over the plane (latent_dim 2, a grid wide enough for every component)
    model2 = tiny_vae(prior="vamp", n_pseudo_inputs=4, latent_dim=2).eval()
    g = torch.linspace(-12, 12, 801)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1)
    with torch.no_grad():
        mass = model2.log_prior(grid).exp().sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_vamp_samples_and_parameters():
    model = tiny_vae(prior="vamp", n_pseudo_inputs=6).eval()
    assert model.vamp.pseudo_logits.shape == (6, 1, 28, 28)
    assert "vamp.pseudo_logits" in model.state_dict()
    assert "vamp.pseudo_logits" not in tiny_vae().state_dict()  # Gaussian checkpoints keep their keys
    s = model.sample(10, seed=1)
    assert s.shape == (10, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, model.sample(10, seed=1)) and not torch.equal(s, model.sample(10, seed=2))


def test_bad_options_say_what_to_choose():
    for kw, words in (({"prior": "flow"}, "'gaussian' or 'vamp'"), ({"objective": "vi"}, "'elbo' or 'iwae'"),
                      ({"likelihood": "gauss"}, "'bernoulli' or 'continuous_bernoulli'"),
                      ({"iwae_k": 0}, "iwae_k must be >= 1"), ({"prior": "vamp", "n_pseudo_inputs": 0}, "n_pseudo_inputs")):
        with pytest.raises(ValueError, match=words):
            tiny_vae(**kw)


# --- the IWAE bound and the objective ---------------------------------------------------------------------------


@pytest.mark.parametrize("options", OPTIONS[:2] + OPTIONS[3:4])
def test_iwae_with_one_sample_is_the_elbo_with_the_same_noise(binarized, options):
    torch.manual_seed(0)
    model = tiny_vae(**options).eval()
    x = binarized[0][:16]
    noise = torch.randn(16, 2)
    with torch.no_grad():
        out = model(x, noise=noise)
        log_px, log_pz, log_qz = model.log_weights(x, noise[None])
        torch.testing.assert_close(-log_px[0], out["recon"])
        bound = iwae_bound(log_px + log_pz - log_qz)
        if model.vamp is not None:  # the one-sample KL estimate: the same number
            torch.testing.assert_close(-bound, out["neg_elbo"])
        else:  # the closed-form KL is the mean of log q - log p over draws
            draws = torch.randn(4000, 16, 2)
            _, lpz, lqz = model.log_weights(x, draws)
            torch.testing.assert_close((lqz - lpz).mean(0), out["kl"], atol=0.05, rtol=0.02)
    # the training objective: iwae with k=1 is the ELBO loss (same seed, same noise) when the KL is estimated
    if model.vamp is not None:
        iw = tiny_vae(**options, objective="iwae", iwae_k=1)
        iw.load_state_dict(model.state_dict())
        torch.manual_seed(5)
        a = iw.training_step((x, None), 0)
        torch.manual_seed(5)
        b = model.training_step((x, None), 0)
        torch.testing.assert_close(a, b)


def test_iwae_bound_grows_with_k_on_a_fixed_batch(binarized):
    model = trained(tiny_vae(), binarized[0])
    x = binarized[0][:32]
    gen = torch.Generator().manual_seed(0)
    means, errors = [], []
    for k in (1, 2, 4, 16, 64):
        draws = torch.stack([-model.iwae_nll(x, k, generator=gen).mean() for _ in range(200)])
        means.append(draws.mean().item())
        errors.append(draws.std().item() / math.sqrt(len(draws)))
    for i in range(1, len(means)):
        assert means[i] >= means[i - 1] - 3 * (errors[i] + errors[i - 1]), (means, errors)
    assert means[-1] - means[0] > 10 * (errors[0] + errors[-1]), (means, errors)  # a real gain, not noise


class _ProposalFor(torch.nn.Module):
    """The encoder, except that for the images `x` (the very tensor) it returns the given (mu, logvar): the
    importance-sampling proposal of those images, while the VampPrior still sees the real encoder."""

    def __init__(self, encoder, x, mu, logvar):
        super().__init__()
        self.encoder, self.x, self.mu, self.logvar = encoder, x, mu, logvar

    def forward(self, x):
        return (self.mu, self.logvar) if x is self.x else self.encoder(x)


@pytest.mark.parametrize("options", [OPTIONS[0], OPTIONS[1], OPTIONS[3]])
def test_iwae_estimate_converges_to_the_exact_likelihood(binarized, data_root, options):
    """With a 1-D latent space log p(x) = log int p(x|z) p(z) dz is a quadrature: the IWAE estimate at k=5000
    matches it, and at k=2 lies above it on average (a bound on -log p(x)), with every prior and likelihood
    (the continuous Bernoulli on continuous pixels). The proposal is the exact posterior's moments, widened, so
    that what is checked is the estimate's arithmetic (log p(x|z) + log p(z) - log q(z|x), logsumexp, -log k),
    not how well a briefly trained encoder fits a 1-D posterior."""
    from genlab.data import load_images

    pixels = load_images("mnist", "test", data_root)[0][:300] if "likelihood" in options else binarized[0]
    model = trained(tiny_vae(latent_dim=1, **options), pixels, steps=100)
    x = pixels[:8].clone()
    with torch.no_grad():
        mu = model.encoder(x)[0]  # the grid spans the prior's bulk and every posterior, with room on both sides
        grid = torch.linspace(min(-10.0, mu.min().item() - 10), max(10.0, mu.max().item() + 10), 20001)
        log_joint = torch.cat([model.log_likelihood(model.decode(g[:, None])[:, None], x)
                               + model.log_prior(g[:, None, None]) for g in grid.split(5000)])
        exact = -(torch.logsumexp(log_joint, 0) + math.log(grid[1] - grid[0]))
        post = torch.softmax(log_joint, 0)  # [G, 8], the posterior on the grid
        assert (post[[0, -1]] < 1e-9).all()  # nothing cut off at the ends
        mean = (post * grid[:, None]).sum(0)
        var = (post * (grid[:, None] - mean) ** 2).sum(0)
    model.encoder = _ProposalFor(model.encoder, x, mean[:, None], torch.log(2 * var + 1e-4)[:, None])
    gen = torch.Generator().manual_seed(0)
    big = model.iwae_nll(x, 5000, chunk=4000, generator=gen)
    torch.testing.assert_close(big, exact, atol=0.02, rtol=0)
    small = torch.stack([model.iwae_nll(x, 2, generator=gen) for _ in range(200)]).mean(0)
    assert (small > exact).all() and (small - exact).mean() > 0.01


def test_iwae_estimate_does_not_depend_on_the_chunking():
    torch.manual_seed(0)
    model = tiny_vae(prior="vamp", n_pseudo_inputs=5).eval()
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.3))
    # one sample per chunk against all 48 at once: the same draws (16 normals per chunk: torch draws sizes under 16
    # by another method), so the same estimate up to float rounding
    a = model.iwae_nll(x, 48, chunk=8, generator=torch.Generator().manual_seed(1))
    b = model.iwae_nll(x, 48, chunk=10_000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


# --- the pictures with every option -----------------------------------------------------------------------------


@pytest.mark.parametrize("options", OPTIONS[1:])
def test_pictures_work_with_every_option(binarized, options):
    import matplotlib.pyplot as plt

    from genlab.figures.vae import encode_means, explorer_page, make_figures

    x, y = binarized
    model = tiny_vae(**options).eval()
    mu = encode_means(model, x)
    figs = make_figures(model, x, y, mu, y, split="test")
    assert set(figs) == FIGURE_KEYS
    assert "<html" in explorer_page(model, mu, y, split="test").lower()
    plt.close("all")


def test_options_train_through_lightning_and_reload(tmp_path, data_root):
    """Two steps and a validation epoch of the all-options model in Lightning, then `genlab vae-figures` from its
    checkpoint (the VampPrior's pseudo-inputs travel in it)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from genlab.checkpoints import load_module
    from genlab.cli import main
    from genlab.data import MNISTDataModule

    pl.seed_everything(0, verbose=False)
    dm = MNISTDataModule(root=str(data_root), batch_size=64, val_size=200, train_limit=256, pixels="binarized")
    model = tiny_vae(**OPTIONS[-1], kl_warmup_epochs=1.0)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path), logger=False, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[ModelCheckpoint(dirpath=str(tmp_path / "checkpoints"), save_last=True)],
    )
    trainer.fit(model, datamodule=dm)
    metrics = trainer.callback_metrics
    assert all(torch.isfinite(metrics[k]) for k in ("train/loss", "val/loss", "val/neg_elbo", "val/iwae_nll_k4"))
    assert metrics["val/loss"] <= metrics["val/neg_elbo"] + 5  # val/loss is the IWAE bound, about the ELBO or below
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    back = load_module(ckpt, expected=VAE)
    torch.testing.assert_close(back.vamp.pseudo_logits, model.vamp.pseudo_logits)
    assert back.hparams.likelihood == "continuous_bernoulli" and back.hparams.objective == "iwae"
    out = tmp_path / "pictures"
    assert main(["vae-figures", "--ckpt", str(ckpt), "--out", str(out), "--pixels", "binarized",
                 "--scatter-images", "400", "--grid-size", "3"]) == 0
    assert {p.stem for p in out.glob("*.png")} == FIGURE_KEYS
