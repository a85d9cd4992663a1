"""The VAE's five pictures, from a trained model: latent grid, latent scatter, interpolation, reconstructions,
samples. `make_figures` renders them all; the VAE logs them during training, `genlab vae-figures` writes PNGs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.runtime import eval_mode


def _to_image(logits: Tensor) -> Tensor:
    return torch.sigmoid(logits).clamp(0, 1).cpu()


def grid_latents(model, n: int = 20) -> tuple[Tensor, Tensor]:
    """The latent grid's codes [n*n, latent_dim] (row-major, top row = largest z[1]) and the axis values [n].

    Values are the Gaussian inverse CDF of an evenly spaced grid in (0, 1), so each cell covers equal prior mass;
    dimensions beyond the first two are held at 0.
    """
    from scipy.stats import norm

    values = torch.tensor(norm.ppf(torch.linspace(0.05, 0.95, n).double().numpy()), dtype=torch.float32)
    z = torch.zeros(n * n, model.hparams.latent_dim)
    z1 = values.repeat(n)  # columns: z[0] increases left to right
    z2 = values.flip(0).repeat_interleave(n)  # rows: z[1] decreases top to bottom
    z[:, 0] = z1
    if model.hparams.latent_dim > 1:
        z[:, 1] = z2
    return z, values


@torch.no_grad()
def latent_grid_images(model, n: int = 20) -> tuple[Tensor, Tensor]:
    """Decoded grid [n*n,1,28,28] in [0,1] and the axis values [n]."""
    z, values = grid_latents(model, n)
    return _to_image(model.decode(z.to(model.device))), values


def latent_grid_figure(model, n: int = 20):
    """`latent_grid`: an n x n canvas of decoded images, axes labelled with the z values they decode."""
    import matplotlib.pyplot as plt

    images, values = latent_grid_images(model, n)
    canvas = images.view(n, n, 28, 28).permute(0, 2, 1, 3).reshape(n * 28, n * 28).numpy()
    fig, ax = plt.subplots(figsize=(10, 10))
    ax.imshow(canvas, cmap="Greys_r", vmin=0, vmax=1)
    ticks = [28 * i + 13.5 for i in range(n)]
    labels = [f"{v:.2f}" for v in values.tolist()]
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, list(reversed(labels)), fontsize=7)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]" if model.hparams.latent_dim > 1 else "(latent_dim = 1)")
    ax.set_title(f"decoded latent grid ({n}x{n}, z = norm.ppf of an even grid in (0.05, 0.95))")
    fig.tight_layout()
    return fig


@torch.no_grad()
def encode_means(model, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Posterior means [N, latent_dim] of q(z|x)."""
    return torch.cat([model.encode(x[i : i + batch_size].to(model.device))[0].cpu() for i in range(0, len(x), batch_size)])


def project_2d(mu: Tensor) -> tuple[Tensor, tuple[str, str]]:
    """The means themselves when latent_dim == 2, else their first two principal components."""
    mu = mu.detach().float().cpu()
    if mu.shape[1] == 2:
        return mu, ("z[0]", "z[1]")
    if mu.shape[1] == 1:
        return torch.cat([mu, torch.zeros_like(mu)], dim=1), ("z[0]", "(none)")
    centred = mu - mu.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T, ("PC 1", "PC 2")


def latent_scatter_figure(mu: Tensor, y: Tensor, split: str = "test", class_names: list[str] | None = None):
    """`latent_scatter`: posterior means coloured by class, with a legend."""
    import matplotlib.pyplot as plt

    pts, (lx, ly) = project_2d(mu)
    y = y.cpu()
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab10")
    for c in sorted(set(y.tolist())):
        sel = y == c
        name = class_names[c] if class_names else str(c)
        ax.scatter(pts[sel, 0], pts[sel, 1], s=2, color=cmap(c % 10), label=name, alpha=0.6, rasterized=True)
    ax.legend(markerscale=6, title="label", loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(lx)
    ax.set_ylabel(ly)
    how = "posterior means" if mu.shape[1] == 2 else f"posterior means, first two principal components of {mu.shape[1]}-D"
    ax.set_title(f"{split} set {how} ({len(mu)} images)")
    fig.tight_layout()
    return fig


def pick_pair(y: Tensor, a: int, b: int) -> tuple[int, int]:
    """Indices of the first image labelled a and the first labelled b."""
    ia, ib = (y == a).nonzero().flatten(), (y == b).nonzero().flatten()
    if len(ia) == 0 or len(ib) == 0:
        raise ValueError(f"interpolation needs images labelled {a} and {b}; the images hold {sorted(set(y.tolist()))}")
    return int(ia[0]), int(ib[0])


@torch.no_grad()
def interpolation_images(model, x_from: Tensor, x_to: Tensor, steps: int = 10) -> Tensor:
    """Decoded images [steps,1,28,28] along the straight line between the two images' posterior means."""
    mu, _ = model.encode(torch.stack([x_from, x_to]).to(model.device))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return _to_image(model.decode((1 - t) * mu[0] + t * mu[1]))


def interpolation_figure(model, x: Tensor, y: Tensor, a: int = 9, b: int = 8, steps: int = 10):
    """`interpolation`: the two originals at the ends, decoded points of the latent line between them."""
    import matplotlib.pyplot as plt

    i, j = pick_pair(y, a, b)
    imgs = interpolation_images(model, x[i], x[j], steps)
    fig, axes = plt.subplots(1, steps + 2, figsize=(1.2 * (steps + 2), 1.8))
    panels = [(x[i].cpu(), f"input {a}")] + [(im, f"t={t:.2f}") for im, t in zip(imgs, torch.linspace(0, 1, steps), strict=False)]
    panels.append((x[j].cpu(), f"input {b}"))
    for ax, (im, title) in zip(axes, panels, strict=False):
        ax.imshow(im[0].numpy(), cmap="Greys_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"latent interpolation {a} -> {b} (decoded along the line between posterior means)", fontsize=9)
    fig.tight_layout()
    return fig


@torch.no_grad()
def reconstruction_images(model, x: Tensor, n: int = 16) -> Tensor:
    """[2n,1,28,28]: n originals followed by their reconstructions (decoded posterior means)."""
    x = x[:n].to(model.device)
    mu, _ = model.encode(x)
    return torch.cat([x.cpu(), _to_image(model.decode(mu))])


def _grid(images: Tensor, nrow: int) -> Tensor:
    from torchvision.utils import make_grid

    return make_grid(images, nrow=nrow, padding=2, pad_value=0.5)


CAPTIONS = {
    "latent_grid": "decoded latent grid (z = norm.ppf of an even grid)",
    "latent_scatter": "posterior means coloured by label",
    "interpolation": "decoded images along a straight latent line",
    "reconstructions": "originals (top) and reconstructions from posterior means (bottom)",
    "samples": "decoded prior samples z ~ N(0, I) (pixel means)",
}


def make_figures(model, x: Tensor, y_x: Tensor, mu: Tensor, y_mu: Tensor, split: str = "test") -> dict:
    """The five pictures as {key: (Figure or image tensor [3,H,W], caption)}; keys are stable W&B keys.

    x, y_x: a few hundred images (interpolation, reconstructions); mu, y_mu: posterior means (scatter).
    """
    hp = model.hparams
    extra = ""
    if hp.latent_dim != 2:
        extra = f" [latent_dim={hp.latent_dim}: grid spans z[0], z[1] with other dims at 0; scatter shows the first two principal components]"
    with eval_mode(model):
        a, b = hp.interpolate_from, hp.interpolate_to
        figs = {
            "latent_grid": (latent_grid_figure(model, hp.grid_size), CAPTIONS["latent_grid"] + extra),
            "latent_scatter": (latent_scatter_figure(mu, y_mu, split), f"{split} {CAPTIONS['latent_scatter']}" + extra),
        }
        try:
            figs["interpolation"] = (interpolation_figure(model, x, y_x, a, b), f"{a} -> {b}: {CAPTIONS['interpolation']}")
        except ValueError:  # the few images kept hold no such pair (tiny data sets)
            pass
        figs["reconstructions"] = (_grid(reconstruction_images(model, x, 16), nrow=16), CAPTIONS["reconstructions"])
        figs["samples"] = (_grid(model.sample(64, seed=0).cpu(), nrow=8), CAPTIONS["samples"])
    return figs
