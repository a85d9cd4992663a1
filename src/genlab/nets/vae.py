"""The VAE's networks and its losses, per image in nats: nn.Modules and tensor maths only.

    x --encoder--> (mu, logvar) of q(z|x) --reparameterise--> z --decoder--> Bernoulli logits of p(x|z)

    recon    = -log p(x|z)           (binary cross-entropy on logits; continuous pixels act as soft targets)
    kl       = KL(q(z|x) || N(0, I))  (closed form)
    neg_elbo = recon + kl             (an upper bound on -log p(x))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = 28 * 28
LOG_2PI = math.log(2 * math.pi)


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
