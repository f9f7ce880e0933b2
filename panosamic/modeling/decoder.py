"""Semantic decoders: the ConvDecoder with its dual-view "spherical attention", and the baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.constants import DECODER_HIDDEN_DIM, FUSION_OUT_DIM, NECK_DIM, NUM_STAGES


class SphericalConv2d(nn.Module):
    """A convolution that wraps around in longitude: circular padding left/right, zeros top/bottom."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        x = F.pad(x, (p, p, 0, 0), mode="circular")
        x = F.pad(x, (0, 0, p, p))
        return self.conv(x)


class ConvDecoder(nn.Module):
    """Fused features (N, 1024, G, G) -> class logits (N, K, G, G); with dual view, the two views'
    logits are blended per pixel by a weight computed with spherical convolutions (N -> N/2)."""

    def __init__(self, num_classes: int, grid: int, dual_view: bool) -> None:
        super().__init__()
        self.dual_view = dual_view
        self.decoder_head = nn.Sequential(
            nn.Conv2d(NUM_STAGES * FUSION_OUT_DIM, DECODER_HIDDEN_DIM, 1),
            nn.LayerNorm([DECODER_HIDDEN_DIM, grid, grid]),
            nn.GELU(),
            nn.Conv2d(DECODER_HIDDEN_DIM, num_classes, 1),
        )
        self.decoder_attention = (
            nn.Sequential(
                SphericalConv2d(2 * num_classes, num_classes, 7),
                nn.GELU(),
                SphericalConv2d(num_classes, 1, 3),
                nn.Sigmoid(),
            )
            if dual_view
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder_head(x)
        if self.decoder_attention is None:
            return logits
        return self.blend_views(logits)

    def blend_views(self, logits: torch.Tensor) -> torch.Tensor:
        """Rows alternate view 0 / view 1; view 1 is rolled back and blended with weight alpha."""
        x1 = logits[0::2]
        x2 = torch.roll(logits[1::2], -(logits.shape[-1] // 2), dims=-1)
        alpha = self.decoder_attention(torch.cat([x1, x2], dim=1))
        return alpha * x1 + (1 - alpha) * x2


class BaselineDecoder(nn.Module):
    """Baseline head on SAM's neck output: x2 up, 1x1 conv, LayerNorm, GELU, x2 up, 1x1 conv."""

    def __init__(self, in_channels: int, num_classes: int, grid: int) -> None:
        super().__init__()
        self.decoder_head = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, NECK_DIM, 1),
            nn.LayerNorm([NECK_DIM, grid // 2, grid // 2]),
            nn.GELU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(NECK_DIM, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_head(x)
