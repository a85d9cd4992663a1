"""Dropout whose CPU mask comes from random bytes: the same maths as nn.Dropout, cheaper on a CPU.

Kept apart from the teaching code in nets/gpt.py, which picks it with GPTConfig.fast_dropout.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ByteMaskDropout(nn.Module):
    """Inverted dropout that, on a CPU, draws its mask from random bytes: one 64-bit draw covers 8 elements.

    On a CPU, nn.Dropout's cost is drawing one random number per element, a visible share of a small model's
    training step (scripts/bench_dropout.py measures both; the figures are in reports/lm/README.md). The
    drop rate is a whole number of 256ths (0.1 -> 26/256 = 0.102) and the kept values are scaled by
    256 / (256 - that), so the expectation is unchanged. Other devices use F.dropout (fused and cheap there).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.drop_256ths = round(p * 256)  # an element is dropped when its random byte is below this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or not 1 <= self.drop_256ths <= 255:  # (p not a usable number of 256ths)
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty(-(-n // 8), dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self.drop_256ths
        return x * keep.to(x.dtype).mul_(256 / (256 - self.drop_256ths))

    def extra_repr(self) -> str:
        return f"p={self.p} (on CPU {self.drop_256ths}/256)"


Dropout = ByteMaskDropout  # the name it had inside the language model
