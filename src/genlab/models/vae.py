"""A variational autoencoder with a (default) 2-D latent space, whose latent space can be seen and explored.

    x --encoder--> (mu, logvar) of q(z|x) --reparameterise--> z --decoder--> Bernoulli logits of p(x|z)

Everything is measured per image in nats, summed over the 784 pixels:
    recon    = -log p(x|z)           (binary cross-entropy on logits; continuous pixels act as soft targets)
    kl       = KL(q(z|x) || N(0, I))  (closed form)
    neg_elbo = recon + kl             (an upper bound on -log p(x))
    iwae_nll = -log (1/k) sum_i p(x, z_i) / q(z_i|x)  (the IWAE bound, tighter as k grows)

The file holds the nn.Modules (MLP and convolutional encoders/decoders), the loss functions, the
LightningModule `VAE`, the five pictures (latent grid, latent scatter, interpolation, reconstructions, samples)
and `figures_main`, the `genlab vae-figures --ckpt X --out DIR` command.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.models.base import GenlabModule

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = 28 * 28
LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------------------------------------
# encoders and decoders


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh}[name]()


def _mlp(sizes: list[int], act: str) -> nn.Sequential:
    """Linear layers with an activation after every one but the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_act(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """784 -> hidden... -> 2*latent (mean and log-variance of a diagonal Gaussian)."""

    def __init__(self, latent_dim: int, hidden: list[int], act: str = "relu"):
        super().__init__()
        self.net = _mlp([N_PIXELS, *hidden, 2 * latent_dim], act)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """latent -> hidden... -> 784 Bernoulli logits (the hidden sizes are the encoder's, reversed)."""

    def __init__(self, latent_dim: int, hidden: list[int], act: str = "relu"):
        super().__init__()
        self.net = _mlp([latent_dim, *reversed(hidden), N_PIXELS], act)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *IMAGE_SHAPE)


class ConvEncoder(nn.Module):
    """Strided convolutions 28 -> 14 -> 7, then a dense layer to mean and log-variance (as in the Keras book)."""

    def __init__(self, latent_dim: int, channels: list[int], hidden: list[int], act: str = "relu"):
        super().__init__()
        c1, c2 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), _act(act),  # 28 -> 14
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), _act(act),  # 14 -> 7
            nn.Flatten(),
        )
        self.head = _mlp([c2 * 7 * 7, *hidden, 2 * latent_dim], act)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.conv(x)).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """Dense layers to a 7x7 feature map, then transposed convolutions 7 -> 14 -> 28 to one logit per pixel."""

    def __init__(self, latent_dim: int, channels: list[int], hidden: list[int], act: str = "relu"):
        super().__init__()
        c1, c2 = channels
        self.c2 = c2
        self.fc = nn.Sequential(_mlp([latent_dim, *reversed(hidden), c2 * 7 * 7], act), _act(act))
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), _act(act),  # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # 14 -> 28, logits
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.fc(z).view(-1, self.c2, 7, 7))


def build_networks(
    arch: str, latent_dim: int, hidden: list[int], channels: list[int], act: str
) -> tuple[nn.Module, nn.Module]:
    """The (encoder, decoder) pair named by `arch` ("mlp" or "conv")."""
    if arch == "mlp":
        return MLPEncoder(latent_dim, hidden, act), MLPDecoder(latent_dim, hidden, act)
    if arch == "conv":
        if len(channels) != 2:
            raise ValueError(f"arch='conv' needs two conv channel counts, got channels={channels}")
        return ConvEncoder(latent_dim, channels, hidden, act), ConvDecoder(latent_dim, channels, hidden, act)
    raise ValueError(f"unknown arch {arch!r}: choose 'mlp' or 'conv'")


# ----------------------------------------------------------------------------------------------------------
# the losses, per image, in nats


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, in closed form: 0.5 * sum(mu^2 + var - 1 - logvar)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x|z) per image for Bernoulli pixels, from logits (numerically stable; never sigmoid-then-BCE)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


# ----------------------------------------------------------------------------------------------------------
# the LightningModule


class VAE(GenlabModule):
    """Variational autoencoder on 28x28 images with Bernoulli pixels.

    Args:
        arch: "mlp" (dense encoder and decoder) or "conv" (strided convolutions / transposed convolutions).
        latent_dim: size of z; 2 gives the latent grid and scatter pictures directly.
        hidden: dense layer widths of the encoder (the decoder uses them reversed).
        channels: the two convolution widths of arch="conv".
        act: activation ("relu", "silu", "gelu", "elu", "tanh").
        beta: weight on the KL term of the training loss (1 = the ELBO; metrics always use beta=1).
        kl_warmup_epochs: the KL weight grows linearly from 0 to beta over this many epochs (0 = off).
        lr, weight_decay: AdamW.
        schedule: "onecycle" (warm-up then cosine annealing), "cosine" (linear warm-up then cosine) or "constant".
        warmup_frac: fraction of the training steps spent warming up the learning rate.
        val_iwae_k, val_iwae_images: IWAE bound on the first images of the validation set each epoch (0 = off),
            logged as val/iwae_nll_k{k} with val/iwae_gain_k{k}, the one-sample neg ELBO minus it on those images.
        test_iwae_k: IWAE bound on the whole test set in `genlab test` (0 = off).
        grid_size: the latent grid is grid_size x grid_size decoded images.
        figures_every_n_epochs: render and log the five pictures every N validation epochs (0 = never).
        interpolate_from, interpolate_to: digit labels of the two images the interpolation joins.
        dataset: the data the model is trained on ("mnist" or "fashion_mnist"), used by `genlab evaluate`.
    """

    def __init__(
        self,
        arch: Literal["mlp", "conv"] = "mlp",
        latent_dim: int = 2,
        hidden: tuple[int, ...] = (512, 512, 512),
        channels: tuple[int, ...] = (32, 64),
        act: str = "relu",
        beta: float = 1.0,
        kl_warmup_epochs: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_frac: float = 0.05,
        val_iwae_k: int = 64,
        val_iwae_images: int = 500,
        test_iwae_k: int = 100,
        grid_size: int = 20,
        figures_every_n_epochs: int = 1,
        interpolate_from: int = 9,
        interpolate_to: int = 8,
        dataset: str = "mnist",
    ):
        super().__init__()
        hidden, channels = [int(h) for h in hidden], [int(c) for c in channels]
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'constant', got {schedule!r}")
        self.save_hyperparameters()
        self.hparams.hidden, self.hparams.channels = hidden, channels  # lists, not tuples, in the checkpoint
        self.encoder, self.decoder = build_networks(arch, latent_dim, hidden, channels, act)
        self._val_store: dict[str, list[Tensor]] = {}
        self._train_sums: Tensor | None = None  # running sums of (recon, kl) over the epoch's batches
        self._train_batches = 0

    # --- the model ------------------------------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits [N,1,28,28]."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """One-sample ELBO terms per image: recon, kl, neg_elbo (all [B]) and mu, logvar, logits."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        logits = self.decoder(z)
        recon, kl = bernoulli_nll(logits, x), gaussian_kl(mu, logvar)
        return {"recon": recon, "kl": kl, "neg_elbo": recon + kl, "mu": mu, "logvar": logvar, "logits": logits}

    @torch.no_grad()
    def iwae_nll(self, x: Tensor, k: int, chunk: int = 100_000, generator: torch.Generator | None = None) -> Tensor:
        """-log p(x) estimated with k importance samples from q(z|x), per image [B] (k=1 is the one-sample ELBO).

        The decoder sees at most `chunk` latent codes at once, so k=1000 fits in memory on a CPU.
        """
        mu, logvar = self.encoder(x)
        std = torch.exp(0.5 * logvar)
        log_w = torch.empty(k, len(x), device=x.device)
        step = max(1, chunk // max(1, len(x)))
        for start in range(0, k, step):
            n = min(step, k - start)
            eps = torch.randn((n, *mu.shape), device=mu.device, generator=generator)
            z = mu + eps * std  # [n, B, D]
            logits = self.decoder(z.flatten(0, 1)).view(n, *x.shape)  # [n, B, 1, 28, 28]
            target = x.unsqueeze(0).expand_as(logits)  # a view: no n-fold copy of the images
            log_px = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(2).sum(-1)
            log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
            log_qz = gaussian_log_prob(z, mu, logvar)
            log_w[start : start + n] = log_px + log_pz - log_qz
        return -(torch.logsumexp(log_w, dim=0) - math.log(k))

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """n decoded prior samples [n,1,28,28] in [0,1] (pixel means sigmoid(logits), not Bernoulli draws)."""
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(seed)
        z = torch.randn(n, self.hparams.latent_dim, device=self.device, generator=gen)
        return torch.sigmoid(self.decoder(z))

    # --- training -------------------------------------------------------------------------------------------

    def kl_weight(self) -> float:
        """beta, scaled by the linear KL warm-up while it lasts."""
        beta, warm = self.hparams.beta, self.hparams.kl_warmup_epochs
        if warm <= 0 or self._trainer is None:
            return beta
        steps = max(1.0, warm * max(1, self.trainer.num_training_batches))
        return beta * min(1.0, (self.global_step + 1) / steps)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        out = self(x)
        recon, kl = out["recon"].mean(), out["kl"].mean()
        loss = recon + self.kl_weight() * kl
        # Epoch means only, summed on the device here and logged once per epoch: no per-step host syncs and no
        # per-step logging machinery in the hot loop (see on_train_epoch_end).
        sums = torch.stack([recon.detach(), kl.detach()])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_batches += 1
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_batches = None, 0

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        recon, kl = (self._train_sums / self._train_batches).unbind()
        self.log_dict({"train/loss": recon + kl, "train/recon": recon, "train/kl": kl, "train/kl_weight":
                       torch.tensor(self.kl_weight())}, sync_dist=True)

    def _eval_step(self, batch, stage: str) -> dict[str, Tensor]:
        x, y = batch
        out = self(x)
        metrics = {
            f"{stage}/loss": out["neg_elbo"].mean(),
            f"{stage}/neg_elbo": out["neg_elbo"].mean(),
            f"{stage}/recon": out["recon"].mean(),
            f"{stage}/kl": out["kl"].mean(),
        }
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(x))
        return out

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self._eval_step(batch, "val")
        k, n_iwae = self.hparams.val_iwae_k, self.hparams.val_iwae_images
        seen = sum(len(t) for t in self._val_store.get("x", []))
        if k > 0 and batch_idx * len(x) < n_iwae:
            take = x[: max(0, n_iwae - batch_idx * len(x))]
            nll = self.iwae_nll(take, k)
            # the bound on the first val_iwae_images images, and its gain over the ELBO on those same images
            gap = out["neg_elbo"][: len(take)] - nll
            self.log_dict({f"val/iwae_nll_k{k}": nll.mean(), f"val/iwae_gain_k{k}": gap.mean()},
                          on_epoch=True, sync_dist=True, batch_size=len(take))
        if self._figures_due():
            self._val_store.setdefault("mu", []).append(out["mu"].detach())
            self._val_store.setdefault("y", []).append(y)
            if seen < 512:
                self._val_store.setdefault("x", []).append(x[: 512 - seen])
                self._val_store.setdefault("y_x", []).append(y[: 512 - seen])

    def test_step(self, batch, batch_idx):
        x, _ = batch
        self._eval_step(batch, "test")
        k = self.hparams.test_iwae_k
        if k > 0:
            self.log(f"test/iwae_nll_k{k}", self.iwae_nll(x, k).mean(), on_epoch=True, sync_dist=True,
                     batch_size=len(x))

    def on_validation_epoch_start(self) -> None:
        self._val_store = {}

    def _figures_due(self) -> bool:
        every = self.hparams.figures_every_n_epochs
        if every <= 0 or self._trainer is None or self.trainer.sanity_checking:
            return False
        return (self.current_epoch + 1) % every == 0 or self.current_epoch + 1 == self.trainer.max_epochs

    def on_validation_epoch_end(self) -> None:
        if not self._val_store or not self._figures_due() or not self.trainer.is_global_zero:
            self._val_store = {}
            return
        from genlab.callbacks import log_image

        store = {k: torch.cat(v) for k, v in self._val_store.items()}
        self._val_store = {}
        figs = make_figures(self, store["x"], store["y_x"], store["mu"], store["y"], split="validation")
        for key, (image, caption) in figs.items():
            log_image(self.trainer, key, image, caption=f"epoch {self.current_epoch}: {caption}")
        import matplotlib.pyplot as plt

        plt.close("all")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        schedule = self.hparams.schedule
        if schedule == "constant":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = make_scheduler(opt, schedule, self.hparams.lr, total, self.hparams.warmup_frac)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_scheduler(opt, schedule: str, lr: float, total_steps: int, warmup_frac: float):
    """The per-step learning-rate schedule (shared with the plain-loop comparison in scripts/bench_vae.py)."""
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        if total_steps < 3:  # too short for a warm-up and a decay: keep the learning rate constant
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        # OneCycleLR divides by the length of each phase: give each at least one step on short runs
        pct_start = min(max(warmup_frac, 1.5 / total_steps), 1 - 1.5 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total_steps, pct_start=pct_start, anneal_strategy="cos",
            cycle_momentum=False, div_factor=25.0, final_div_factor=1e3,
        )
    if schedule == "cosine":
        warm = max(1, int(warmup_frac * total_steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    raise ValueError(f"unknown schedule {schedule!r}")


# ----------------------------------------------------------------------------------------------------------
# pictures


def _to_image(logits: Tensor) -> Tensor:
    return torch.sigmoid(logits).clamp(0, 1).cpu()


def grid_latents(model: VAE, n: int = 20) -> tuple[Tensor, Tensor]:
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
def latent_grid_images(model: VAE, n: int = 20) -> tuple[Tensor, Tensor]:
    """Decoded grid [n*n,1,28,28] in [0,1] and the axis values [n]."""
    z, values = grid_latents(model, n)
    return _to_image(model.decode(z.to(model.device))), values


def latent_grid_figure(model: VAE, n: int = 20):
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
def encode_means(model: VAE, x: Tensor, batch_size: int = 2000) -> Tensor:
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
def interpolation_images(model: VAE, x_from: Tensor, x_to: Tensor, steps: int = 10) -> Tensor:
    """Decoded images [steps,1,28,28] along the straight line between the two images' posterior means."""
    mu, _ = model.encode(torch.stack([x_from, x_to]).to(model.device))
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return _to_image(model.decode((1 - t) * mu[0] + t * mu[1]))


def interpolation_figure(model: VAE, x: Tensor, y: Tensor, a: int = 9, b: int = 8, steps: int = 10):
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
def reconstruction_images(model: VAE, x: Tensor, n: int = 16) -> Tensor:
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


def make_figures(model: VAE, x: Tensor, y_x: Tensor, mu: Tensor, y_mu: Tensor, split: str = "test") -> dict:
    """The five pictures as {key: (Figure or image tensor [3,H,W], caption)}; keys are stable W&B keys.

    x, y_x: a few hundred images (interpolation, reconstructions); mu, y_mu: posterior means (scatter).
    """
    hp = model.hparams
    extra = ""
    if hp.latent_dim != 2:
        extra = f" [latent_dim={hp.latent_dim}: grid spans z[0], z[1] with other dims at 0; scatter shows the first two principal components]"
    was_training = model.training
    model.eval()
    try:
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
    finally:
        model.train(was_training)
    return figs


# ----------------------------------------------------------------------------------------------------------
# `genlab vae-figures --ckpt X --out DIR`


def figures_main(argv: list[str] | None = None) -> int:
    """Render the five pictures of a VAE checkpoint into a folder (PNG files named by their keys)."""
    parser = argparse.ArgumentParser(
        prog="genlab vae-figures",
        description="Render a VAE checkpoint's pictures (latent_grid, latent_scatter, interpolation, "
        "reconstructions, samples) from the test set into --out as PNG files.",
    )
    parser.add_argument("--ckpt", required=True, help="a genlab VAE checkpoint (e.g. runs/vae_mnist/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, help="folder for the PNG files (created)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    parser.add_argument("--grid-size", type=int, default=None, help="latent grid side (default: the model's)")
    parser.add_argument("--scatter-images", type=int, default=10000, help="test images in the scatter (default all)")
    parser.add_argument("--pixels", choices=["continuous", "binarized"], default="continuous",
                        help="test images as stored, or binarized with a fixed seed (as the binarized data module)")
    args = parser.parse_args(argv)

    from genlab.callbacks import save_figure
    from genlab.checkpoints import CheckpointError, load_module
    from genlab.data import load_images

    try:
        model = load_module(args.ckpt, expected=VAE)
    except CheckpointError as err:
        print(f"genlab vae-figures: error: {err}", file=sys.stderr)
        return 2
    if args.grid_size is not None:
        if args.grid_size < 1:
            parser.error("--grid-size must be >= 1")
        model.hparams.grid_size = args.grid_size
    try:
        if args.pixels == "binarized":  # the data module's fixed binarization of the test set
            from genlab.data import FashionMNISTDataModule, MNISTDataModule

            cls = FashionMNISTDataModule if model.hparams.dataset == "fashion_mnist" else MNISTDataModule
            test = cls(root=args.data_root, pixels="binarized").split("test")
            x, y = test.x, test.y
        else:
            x, y = load_images(model.hparams.dataset, "test", args.data_root)
    except (FileNotFoundError, ValueError) as err:
        print(f"genlab vae-figures: error: {err}", file=sys.stderr)
        return 2
    x, y = x[: max(1, args.scatter_images)], y[: max(1, args.scatter_images)]
    torch.manual_seed(0)
    mu = encode_means(model, x)
    names = None
    if model.hparams.dataset == "fashion_mnist":
        names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    figs = make_figures(model, x[:512], y[:512], mu, y, split="test")
    if names is not None:
        figs["latent_scatter"] = (latent_scatter_figure(mu, y, "test", names), figs["latent_scatter"][1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    for key, (image, caption) in figs.items():
        path = out / f"{key}.png"
        save_figure(image, path)
        print(f"{path}: {caption}")
    plt.close("all")
    return 0
