"""Pictures of a GAN's samples: one square grid of images, as the DCGAN logs from its fixed noise every epoch."""

from __future__ import annotations

import math

from torch import Tensor


def square_grid(images: Tensor, pad_value: float = 1.0) -> Tensor:
    """images [N,C,H,W] in [0,1] -> one [3,H',W'] picture, ceil(sqrt(N)) per row, on the CPU."""
    from torchvision.utils import make_grid

    nrow = int(math.ceil(math.sqrt(len(images))))
    return make_grid(images.cpu(), nrow=nrow, padding=2, pad_value=pad_value)
