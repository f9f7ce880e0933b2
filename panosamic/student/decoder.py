"""FPN-lite: a top-down path over four backbone levels with depthwise-separable, wrap-around smoothing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from panosamic.student.padding import CircularConv2d, circular_upsample

__all__ = ["FPNLiteDecoder", "SeparableBlock"]


class SeparableBlock(nn.Sequential):
    """3x3 depthwise (wrap-around in longitude) + 1x1 pointwise convolution, each with BN and ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            CircularConv2d(channels, channels, 3, groups=channels, bias=False, wrap_padding=1),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        )


class FPNLiteDecoder(nn.Module):
    """Features at strides (s, 2s, 4s, 8s) -> class logits at stride s.

    Each level is projected to ``channels`` by a 1x1 convolution; from the coarsest, every level
    is upsampled x2 (wrap-around bilinear), added to the next finer one and smoothed by a
    :class:`SeparableBlock`; a last block and a 1x1 convolution give the logits.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(SeparableBlock(channels) for _ in in_channels[:-1])
        self.head = nn.Sequential(SeparableBlock(channels), nn.Conv2d(channels, num_classes, 1))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            x = self.smooth[i](self.lateral[i](features[i]) + circular_upsample(x, 2))
        return self.head(x)
