"""Differentiable augmentation of a discriminator's inputs (DiffAugment: Zhao, Liu, Lin, Zhu and Han, "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020, arXiv:2006.10738).

The same random transformations are applied to real and generated images before D sees them, in D's update and in
G's. D then cannot win by memorising the exact real images, and since every operation is differentiable in the
pixels (an index gather, a mask), G still gets its gradient through the augmentation. Augmenting only the real
images would instead teach G to produce augmented-looking images.

Written here with plain torch ops (about twenty lines; no library in the environment provides them differentiably),
following the paper's policies: "translation" shifts each image by up to 1/8 of its size in each direction, filling
with 0, and "cutout" sets a square of half the image's size at a random place to 0 (0 is mid-grey for images in
[-1, 1], as in the paper's code). Each image of a batch draws its own shift and square from torch's global generator,
so training under `seed_everything` stays reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _like(out: Tensor, x: Tensor) -> Tensor:
    """`out` in x's memory layout (NHWC stays NHWC, so that channels-last convs keep their fast path)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image [N,C,H,W] by a random integer offset of at most ratio*size pixels per axis, 0-filled."""
    n, c, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy  # output pixel (i, j) shows input (i + dy, j + dx)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # [N,H,W]: False where the shift brings in border
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w) * inside.unsqueeze(1).to(x.dtype)
    return _like(out, x)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a (ratio*H) x (ratio*W) square at a random centre of each image (clipped at the image's edges)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - size_h % 2, (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + 1 - size_w % 2, (n, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return _like(x * (~hole).unsqueeze(1).to(x.dtype), x)


POLICIES = {"translation": translation, "cutout": cutout}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """"translation,cutout" -> ("translation", "cutout"); "" or "none" -> () (off). Unknown names are a ValueError."""
    if policy is None or policy.strip().lower() in ("", "none"):
        return ()
    names = tuple(p.strip() for p in policy.split(","))
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"diffaugment: unknown augmentation {', '.join(map(repr, unknown))}; use a comma-separated "
                         f"list of {', '.join(POLICIES)} (e.g. \"translation,cutout\"), or \"\" for none")
    return names


def diff_augment(x: Tensor, policy: tuple[str, ...] | str) -> Tensor:
    """x with each augmentation of `policy` applied in order (x itself when the policy is empty)."""
    for name in parse_policy(policy) if isinstance(policy, str) else policy:
        x = POLICIES[name](x)
    return x
