"""DCGAN's networks (Radford et al., 2015) for 28x28 images: the generator, the discriminator, their initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z [B, z_dim] -> image [B,1,28,28] in [-1,1]: transposed convs 1 -> 7 -> 14 -> 28 pixels,
    batch norm + ReLU on hidden layers, tanh on the output (DCGAN, with 28x28 instead of 64x64).

    `extra_layers` adds that many 3x3 conv + batch norm + ReLU blocks at 7x7, where the digit's shape is laid
    out: more capacity for G at a small cost (each costs about as much as the 7 -> 14 layer).
    """

    def __init__(self, z_dim: int = 100, width: int = 64, channels: int = 1, extra_layers: int = 0):
        super().__init__()
        c = width
        self.z_dim = z_dim
        extra = []
        for _ in range(extra_layers):
            extra += [nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 2 * c, 7, 1, 0, bias=False),  # 1x1 -> 7x7 (a linear layer, DCGAN-style)
            nn.BatchNorm2d(2 * c),
            nn.ReLU(inplace=True),
            *extra,
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, channels, 4, 2, 1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class MinibatchStd(nn.Module):
    """Appends one channel holding the batch's mean feature standard deviation (Karras et al., 2018).

    D can then see that a batch of fakes is too uniform (mode collapse) and G is pushed to spread its samples over
    all the modes. In G's step D sees a batch of fakes only, so G still learns from fakes alone.
    """

    def forward(self, x: Tensor) -> Tensor:
        std = x.float().std(dim=0, unbiased=False).add(1e-8).mean().to(x.dtype) if x.shape[0] > 1 else x.new_zeros(())
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class Discriminator(nn.Module):
    """image [B,1,28,28] in [-1,1] -> one logit per image: strided convs 28 -> 14 -> 7, LeakyReLU(0.2), batch
    norm on every layer but the input one, a 7x7 conv to the logit (no sigmoid: the loss takes logits).

    `width` is the number of channels of the first layer (64 x the `d_width` multiplier). With
    `spectral_norm`, every conv is spectrally normalised and batch norm is left out (it would undo the
    Lipschitz bound); `dropout` follows each hidden LeakyReLU; `minibatch_std` adds a MinibatchStd channel before
    the last conv.
    """

    def __init__(self, width: int = 64, channels: int = 1, dropout: float = 0.0, spectral_norm: bool = False,
                 minibatch_std: bool = False):
        super().__init__()
        c = width
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        drop = (lambda: nn.Dropout(dropout)) if dropout > 0 else nn.Identity
        self.net = nn.Sequential(
            sn(nn.Conv2d(channels, c, 4, 2, 1)),  # 28 -> 14, no batch norm on the input layer
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=spectral_norm)),  # 14 -> 7
            nn.Identity() if spectral_norm else nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2, inplace=True),
            drop(),
            MinibatchStd() if minibatch_std else nn.Identity(),
            sn(nn.Conv2d(2 * c + int(minibatch_std), 1, 7, 1, 0)),  # 7 -> 1: the logit
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1)
