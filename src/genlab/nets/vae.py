"""The VAE's networks and its losses, per image in nats: nn.Modules and tensor maths only.

    x --encoder--> (mu, logvar) of q(z|x) --reparameterise--> z --decoder--> Bernoulli logits of p(x|z)

    recon    = -log p(x|z)           (Bernoulli: binary cross-entropy on logits, where continuous pixels act as soft
                                      targets and the figure is not a density of [0, 1] pixels; continuous
                                      Bernoulli: the same plus its log normalising constant, a proper density)
    kl       = KL(q(z|x) || p(z))    (closed form for the N(0, I) prior; a one-sample estimate
                                      log q(z|x) - log p(z) for the VampPrior)
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


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


# ----------------------------------------------------------------------------------------------------------
# the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): p(x|lam) = C(lam) lam^x (1-lam)^(1-x) on x in [0, 1]


def continuous_bernoulli_log_norm(logits: Tensor) -> Tensor:
    """log C(lam) per pixel, lam = sigmoid(logits): C = 2 artanh(1 - 2 lam) / (1 - 2 lam).

    Written in logits, where it is exact and stable: 1 - 2 lam = -tanh(logits/2) and artanh of it is -logits/2,
    so C = logits / tanh(logits/2) = 2 u / tanh(u) with u = logits/2. Near u = 0 (lam = 0.5, where the ratio is
    0/0) the series log(u / tanh u) = u^2/3 - 7 u^4/90 + O(u^6) is used. Hand-written rather than
    torch.distributions.ContinuousBernoulli because torch's normaliser is private and works in probabilities,
    where it needs a cut-off band around 0.5 and loses precision at the ends.
    """
    u = 0.5 * logits.to(torch.promote_types(logits.dtype, torch.float32))  # float64 stays float64 (tests)
    small = u.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(u), u)  # keeps the unused branch finite (and its gradient)
    direct = torch.log(safe.abs()) - torch.log(torch.tanh(safe).abs())
    u2 = u * u
    series = u2 / 3 - 7 * u2 * u2 / 90
    return (math.log(2.0) + torch.where(small, series, direct)).to(logits.dtype)


def continuous_bernoulli_mean(logits: Tensor) -> Tensor:
    """E[x] of the continuous Bernoulli with these logits (the picture of a decoded image; sigmoid(logits) is not
    its mean), from torch.distributions."""
    return torch.distributions.ContinuousBernoulli(logits=logits.float()).mean


def pixel_log_likelihood(logits: Tensor, x: Tensor, likelihood: str = "bernoulli") -> Tensor:
    """log p(x|z) summed over each image's pixels (the last three dimensions: any leading shape, e.g. [k, B]).

    x and logits broadcast against each other (a [B,1,28,28] batch against [k,B,1,28,28] logits is a view, not a
    k-fold copy)."""
    logits, target = torch.broadcast_tensors(logits, x)
    log_p = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if likelihood == "continuous_bernoulli":
        log_p = log_p + continuous_bernoulli_log_norm(logits)
    elif likelihood != "bernoulli":
        raise ValueError(f"unknown likelihood {likelihood!r}: choose 'bernoulli' or 'continuous_bernoulli'")
    return log_p.flatten(-3).sum(dim=-1)


def iwae_bound(log_w: Tensor) -> Tensor:
    """log (1/k) sum_i w_i over the first dimension (k importance samples): a lower bound on log p(x)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# ----------------------------------------------------------------------------------------------------------
# the VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k) at K learned pseudo-inputs u_k


class VampPrior(nn.Module):
    """K learned pseudo-inputs u_k (images in (0, 1), kept as logits); the prior is the encoder's posteriors at
    them, mixed in equal parts. The encoder is passed in, not owned: it is the VAE's own."""

    def __init__(self, n_pseudo_inputs: int, image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        if n_pseudo_inputs < 1:
            raise ValueError(f"n_pseudo_inputs must be >= 1 (the VampPrior's mixture components), got {n_pseudo_inputs}")
        # Logits N(0, 1): pixels spread over about (0.27, 0.73), distinct enough for the components to drift apart.
        self.pseudo_logits = nn.Parameter(torch.randn(n_pseudo_inputs, *image_shape))

    def pseudo_inputs(self) -> Tensor:
        return torch.sigmoid(self.pseudo_logits)

    def components(self, encoder: nn.Module) -> tuple[Tensor, Tensor]:
        """(mu, logvar) [K, D] of the mixture's components."""
        return encoder(self.pseudo_inputs())


def mixture_log_prob(z: Tensor, mu: Tensor, logvar: Tensor, max_elements: int = 1 << 24) -> Tensor:
    """log (1/K) sum_k N(z; mu_k, exp(logvar_k)) for z [..., D] and components [K, D]; returns [...].

    Rows of z are taken in blocks so that no [rows, K, D] intermediate exceeds max_elements (k=5000 importance
    samples of a batch against K=500 components would otherwise need gigabytes)."""
    flat = z.reshape(-1, z.shape[-1])
    k, d = mu.shape
    rows = max(1, max_elements // (k * d))
    out = [torch.logsumexp(gaussian_log_prob(flat[i : i + rows, None, :], mu, logvar), dim=-1)
           for i in range(0, len(flat), rows)]
    return (torch.cat(out) - math.log(k)).view(z.shape[:-1])
