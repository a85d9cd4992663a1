"""The VAE's five pictures, from a trained model: latent grid, latent scatter, interpolation, reconstructions,
samples. `make_figures` renders them all; the VAE logs them during training, `genlab vae-figures` writes PNGs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from genlab.runtime import eval_mode


def _decoded(model, z: Tensor) -> Tensor:
    """The images [N,1,28,28] in [0, 1], on the CPU, that the model decodes from the codes z: the likelihood's
    pixel means (sigmoid of the logits for Bernoulli pixels, the continuous Bernoulli's mean otherwise; sigmoid for
    a model that names no likelihood)."""
    means = getattr(model, "pixel_means", torch.sigmoid)
    return means(model.decode(z.to(model.device))).clamp(0, 1).cpu()


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
    return _decoded(model, z), values


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


@dataclass
class LatentPlane:
    """The 2-D plane the scatter, the interpolation path and the explorer are drawn on: the latent space itself
    when latent_dim == 2, else the plane of the first two principal components of the posterior means.

    project maps codes [N, D] to plane points [N, 2]; lift maps plane points back to codes (mean + p @ basis),
    so a point of the explorer decodes the code whose projection it is.
    """

    mean: Tensor  # [D]
    basis: Tensor  # [2, D], orthonormal rows (the second is 0 when D == 1)
    axis_labels: tuple[str, str]

    def project(self, z: Tensor) -> Tensor:
        return (z.detach().float().cpu() - self.mean) @ self.basis.T

    def lift(self, p: Tensor) -> Tensor:
        return self.mean + p.float().cpu() @ self.basis

    @property
    def is_pca(self) -> bool:
        return len(self.mean) > 2


def latent_plane(mu: Tensor) -> LatentPlane:
    mu = mu.detach().float().cpu()
    d = mu.shape[1]
    if d <= 2:
        basis = torch.eye(2, d)
        return LatentPlane(torch.zeros(d), basis, ("z[0]", "z[1]") if d == 2 else ("z[0]", "(none)"))
    mean = mu.mean(0)
    _, _, v = torch.linalg.svd(mu - mean, full_matrices=False)
    return LatentPlane(mean, v[:2].clone(), ("PC 1", "PC 2"))


def project_2d(mu: Tensor) -> tuple[Tensor, tuple[str, str]]:
    """The means themselves when latent_dim == 2, else their first two principal components."""
    plane = latent_plane(mu)
    return plane.project(mu), plane.axis_labels


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


@lru_cache(maxsize=4)
def _load_judge(dataset: str):
    from genlab.metrics.classifier import load_classifier

    return load_classifier(dataset)


def judge(dataset: str) -> Callable[[Tensor], Tensor] | None:
    """genlab's shipped classifier for `dataset` (the judge of SampleQuality) as images [N,1,28,28] in [0,1] ->
    class probabilities [N, classes], or None for a data set without one. Loaded once per process."""
    from genlab.metrics.classifier import DATASETS

    if dataset not in DATASETS:
        return None
    net = _load_judge(dataset)

    @torch.no_grad()
    def probabilities(images: Tensor) -> Tensor:
        return torch.softmax(net(images.detach().float().cpu().clamp(0, 1)).float(), dim=1)

    return probabilities


# A reconstruction is "read as its class" when the judge gives that class at least this probability. Why so high:
# in a 2-D latent space neighbouring classes share borders (4s and 9s, 3s and 5s), and a code read at 0.9 can
# still sit on such a border, so the line from it crosses into the neighbour at once.
CONFIDENT = 0.99


@torch.no_grad()
def representative_index(model, y: Tensor, mu: Tensor, cls: int, judge=None, confidence: float = CONFIDENT,
                         chunk: int = 64) -> int:
    """The index of a representative image of class `cls`: of the images labelled `cls`, the one whose posterior
    mean lies nearest the class's (coordinate-wise) median in latent space among those whose reconstruction
    `judge` (images -> class probabilities) reads as `cls` with probability >= `confidence`; the nearest one
    outright when `judge` is None or no reconstruction passes.

    Why the median and not the first image of the class: the first is whatever the data set happens to list
    first, often an odd one whose code sits at the edge of its class, so the line to another class crosses
    unrelated ones. The reconstruction check drops images the model itself does not see as their class.
    """
    idx = (y.cpu() == cls).nonzero().flatten()
    if len(idx) == 0:
        raise ValueError(f"no image labelled {cls} among the {len(y)} images (they hold {sorted(set(y.tolist()))})")
    mu = mu.detach().float().cpu()
    centre = mu[idx].median(0).values
    order = idx[(mu[idx] - centre).norm(dim=1).argsort()]
    if judge is None:
        return int(order[0])
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        probs = judge(_decoded(model, mu[part]))
        ok = ((probs.argmax(1) == cls) & (probs[:, cls] >= confidence)).nonzero().flatten()
        if len(ok):
            return int(part[ok[0]])
    return int(order[0])


@dataclass
class Interpolation:
    """A straight latent line between two images' posterior means, decoded and read by the classifier."""

    index_from: int
    index_to: int
    t: Tensor  # [steps]
    z: Tensor  # [steps, D]
    images: Tensor  # [steps, 1, 28, 28] in [0, 1]
    predictions: Tensor | None  # [steps] class labels, None without a classifier

    def labels(self, class_names: list[str]) -> list[str]:
        return [] if self.predictions is None else [class_names[int(c)] for c in self.predictions]


@torch.no_grad()
def interpolation(model, x: Tensor, y: Tensor, mu: Tensor | None = None, a: int = 9, b: int = 8, steps: int = 10,
                  index_from: int | None = None, index_to: int | None = None, judge=None,
                  confidence: float = CONFIDENT) -> Interpolation:
    """The interpolation from a representative image of class a to one of class b (representative_index), or
    between the images `index_from` and `index_to` of x when both are given."""
    if mu is None:
        mu = encode_means(model, x)
    mu = mu.detach().float().cpu()
    if index_from is None or index_to is None:
        index_from, index_to = (representative_index(model, y, mu, c, judge, confidence) for c in (a, b))
    for i in (index_from, index_to):
        if not 0 <= i < len(x):
            raise ValueError(f"image index {i} is out of range: the images are numbered 0-{len(x) - 1}")
    t = torch.linspace(0, 1, steps)[:, None]
    z = (1 - t) * mu[index_from] + t * mu[index_to]
    images = _decoded(model, z)
    predictions = judge(images).argmax(1) if judge is not None else None
    return Interpolation(index_from, index_to, t.flatten(), z, images, predictions)


@torch.no_grad()
def interpolation_images(model, x_from: Tensor, x_to: Tensor, steps: int = 10) -> Tensor:
    """Decoded images [steps,1,28,28] along the straight line between the two images' posterior means."""
    mu, _ = model.encode(torch.stack([x_from, x_to]).to(model.device))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return _decoded(model, (1 - t) * mu[0] + t * mu[1])


def interpolation_figure(model, x: Tensor, y: Tensor, path: Interpolation, class_names: list[str],
                         scatter: tuple[Tensor, Tensor] | None = None, plane: LatentPlane | None = None):
    """`interpolation`: the two originals at the ends and the decoded frames between them, each titled with the
    classifier's reading; beside them, the path drawn over the latent scatter (mu, y of `scatter`)."""
    import matplotlib.pyplot as plt

    i, j = path.index_from, path.index_to
    steps = len(path.images)
    read = path.labels(class_names)
    fig = plt.figure(figsize=(1.15 * (steps + 2) + 4.2, 2.6))
    outer = fig.add_gridspec(1, 2, width_ratios=[1.15 * (steps + 2), 3.6], wspace=0.08)
    strip = outer[0].subgridspec(1, steps + 2, wspace=0.08)
    panels = [(x[i].cpu(), f"input #{i}\n{class_names[int(y[i])]}")]
    for k, (im, t) in enumerate(zip(path.images, path.t.tolist(), strict=True)):
        panels.append((im, f"t={t:.2f}\n-> {read[k]}" if read else f"t={t:.2f}"))
    panels.append((x[j].cpu(), f"input #{j}\n{class_names[int(y[j])]}"))
    for k, (im, title) in enumerate(panels):
        ax = fig.add_subplot(strip[0, k])
        ax.imshow(im[0].numpy(), cmap="Greys_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(outer[1])
    if scatter is not None:
        mu, y_mu = scatter
        plane = plane or latent_plane(mu)
        pts, y_mu = plane.project(mu), y_mu.cpu()
        cmap = plt.get_cmap("tab10")
        for c in sorted(set(y_mu.tolist())):
            sel = y_mu == c
            ax.scatter(pts[sel, 0], pts[sel, 1], s=1, color=cmap(c % 10), alpha=0.35, label=class_names[c],
                       rasterized=True)
        ax.legend(markerscale=5, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        ax.set_xlabel(plane.axis_labels[0], fontsize=8)
        ax.set_ylabel(plane.axis_labels[1], fontsize=8)
    plane = plane or latent_plane(path.z)
    line = plane.project(path.z)
    ax.plot(line[:, 0], line[:, 1], "-", color="black", lw=2.5, zorder=3)
    ax.scatter(line[:, 0], line[:, 1], s=16, color="white", edgecolors="black", linewidths=0.8, zorder=4)
    for end, name in ((line[0], class_names[int(y[i])]), (line[-1], class_names[int(y[j])])):
        ax.annotate(name, end.tolist(), fontsize=8, fontweight="bold", xytext=(5, 5), textcoords="offset points",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=5)
    ax.tick_params(labelsize=6)
    ax.set_title("the path over the latent scatter" + (" (PCA plane)" if plane.is_pca else ""), fontsize=8)
    a, b = class_names[int(y[i])], class_names[int(y[j])]
    reading = "; above each frame, genlab's classifier's reading" if read else ""
    fig.suptitle(f"latent interpolation {a} -> {b} (decoded along the line between posterior means){reading}",
                 fontsize=9, x=0.4)
    return fig


@torch.no_grad()
def reconstruction_images(model, x: Tensor, n: int = 16) -> Tensor:
    """[2n,1,28,28]: n originals followed by their reconstructions (decoded posterior means)."""
    x = x[:n].to(model.device)
    mu, _ = model.encode(x)
    return torch.cat([x.cpu(), _decoded(model, mu)])


def _grid(images: Tensor, nrow: int) -> Tensor:
    from torchvision.utils import make_grid

    return make_grid(images, nrow=nrow, padding=2, pad_value=0.5)


CAPTIONS = {
    "latent_grid": "decoded latent grid (z = norm.ppf of an even grid)",
    "latent_scatter": "posterior means coloured by label",
    "interpolation": "decoded images along a straight latent line",
    "reconstructions": "originals (top) and reconstructions from posterior means (bottom)",
    "samples": "decoded prior samples z ~ p(z) (pixel means)",
}


def class_names_of(model) -> list[str]:
    """The class names of the data set the model was trained on (digits when it names none genlab knows)."""
    from genlab.data.registry import DATASETS, class_names

    dataset = getattr(model.hparams, "dataset", "mnist")
    return class_names(dataset) if dataset in DATASETS else [str(c) for c in range(10)]


def make_figures(model, x: Tensor, y_x: Tensor, mu: Tensor, y_mu: Tensor, split: str = "test",
                 pair: tuple[int, int] | None = None, indices: tuple[int, int] | None = None) -> dict:
    """The five pictures as {key: (Figure or image tensor [3,H,W], caption)}; keys are stable W&B keys.

    x, y_x: the images the interpolation's endpoints are chosen from (reconstructions use the first 16);
    mu, y_mu: posterior means (scatter). The interpolation joins representative images of the classes `pair`
    (default the model's interpolate_from, interpolate_to), or the images `indices` of x.
    """
    hp = model.hparams
    names = class_names_of(model)
    extra = ""
    if hp.latent_dim != 2:
        extra = f" [latent_dim={hp.latent_dim}: grid spans z[0], z[1] with other dims at 0; scatter shows the first two principal components]"
    with eval_mode(model):
        a, b = pair if pair is not None else (hp.interpolate_from, hp.interpolate_to)
        figs = {
            "latent_grid": (latent_grid_figure(model, hp.grid_size), CAPTIONS["latent_grid"] + extra),
            "latent_scatter": (latent_scatter_figure(mu, y_mu, split, names), f"{split} {CAPTIONS['latent_scatter']}" + extra),
        }
        try:
            i, j = indices if indices is not None else (None, None)
            path = interpolation(model, x, y_x, a=a, b=b, index_from=i, index_to=j,
                                 judge=judge(getattr(hp, "dataset", "mnist")))
            plane = latent_plane(mu)
            fig = interpolation_figure(model, x, y_x, path, names, scatter=(mu, y_mu), plane=plane)
            a, b = names[int(y_x[path.index_from])], names[int(y_x[path.index_to])]
            read = path.labels(names)
            ends = plane.project(path.z[[0, -1]]).tolist()
            at = " -> ".join(f"({u:.2f}, {v:.2f})" for u, v in ends)
            caption = (f"{a} -> {b} (images #{path.index_from} -> #{path.index_to}; plane points {at}): "
                       f"{CAPTIONS['interpolation']}"
                       + (f"; classifier reads: {' | '.join(read)}" if read else ""))
            figs["interpolation"] = (fig, caption)
        except ValueError:  # the few images kept hold no such pair (tiny data sets)
            if indices is not None:
                raise
        figs["reconstructions"] = (_grid(reconstruction_images(model, x, 16), nrow=16), CAPTIONS["reconstructions"])
        figs["samples"] = (_grid(model.sample(64, seed=0).cpu(), nrow=8), CAPTIONS["samples"])
    return figs


@torch.no_grad()
def explorer_page(model, mu: Tensor, y: Tensor, split: str = "test", title: str | None = None) -> str:
    """The latent explorer (genlab.figures.explorer) of a VAE: the atlas decoded on its latent plane (the PCA
    plane of `mu` when latent_dim > 2, lifted back to codes through the same projection) and the scatter of the
    posterior means `mu` coloured by the data set's class names."""
    from genlab.figures.explorer import explorer_html

    names = class_names_of(model)
    plane = latent_plane(mu)
    dataset = getattr(model.hparams, "dataset", "mnist")
    n = len(mu)

    def decode(p: Tensor) -> Tensor:
        return _decoded(model, plane.lift(p))[:, 0]

    if plane.is_pca:
        note = (f"latent_dim = {model.hparams.latent_dim}: the plane is the first two principal components of the "
                f"{n} {split} posterior means; a point p of the plane decodes the code mean + p[0] PC1 + p[1] PC2.")
    else:
        note = f"The plane is the latent space (z[0], z[1]); dots are the posterior means of {n} {split} images."
    note += (" Images: the decoder's output at 48 x 48 points placed by the Gaussian inverse CDF (equal prior mass "
             "per cell); the pointer shows the cell it is in.")
    with eval_mode(model):
        return explorer_html(decode, plane.project(mu), y, names, title=title or f"VAE latent explorer ({dataset})",
                             note=note)
