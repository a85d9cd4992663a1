"""The judge's network: a small CNN for 28x28 grayscale images whose penultimate layer gives FID/KID features."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: batch norm's shift replaces it.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ClassifierNet(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3 pixels), a 128-d feature layer, a linear classifier.

    Small enough to ship inside the package and to score 10,000 images in seconds on a CPU (its size and
    speed are in reports/evaluator/README.md).
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.3, num_classes: int = 10):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *_conv_block(1, w), nn.MaxPool2d(2),  # 28 -> 14
            *_conv_block(w, 2 * w), nn.MaxPool2d(2),  # 14 -> 7
            *_conv_block(2 * w, 4 * w), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4 * w * 9, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        # channels_last: oneDNN's CPU convolutions run faster in NHWC layout, in training and in evaluation
        self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, feature_dim] of images x [B,1,28,28] in [0,1]."""
        return self.body(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)  # dropout is the identity in eval mode
