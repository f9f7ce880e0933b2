"""Horizontal sinusoidal positional encoding tied to the true longitude of each column."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def horizontal_encoding(channels: int, width: int) -> torch.Tensor:
    """``PE[2i, w] = sin(w 10000^(-2i/C))``, ``PE[2i+1, w] = cos(...)``, shape (1, C, 1, W).

    Computed in float64 and cast to float32, like the published model.
    """
    w = np.arange(width, dtype=np.float64)[None, :]
    i = np.arange(0, channels, 2, dtype=np.float64)[:, None]
    angle = w * np.power(10000.0, -i / channels)
    pe = np.empty((channels, width), dtype=np.float64)
    pe[0::2] = np.sin(angle)
    pe[1::2] = np.cos(angle)
    return torch.from_numpy(pe.astype(np.float32))[None, :, None, :]


class HorizontalPositionalEncoding(nn.Module):
    """Adds the encoding to dual-view features whose rows alternate view 0 / view 1.

    View 1 was computed on the panorama rolled by half its width, so it gets the encoding rolled
    by half the feature width: both views then carry the encoding of the true longitude.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple, torch.Tensor] = {}

    def table(self, channels: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (channels, width, str(device), dtype)
        if key not in self._cache:
            self._cache[key] = horizontal_encoding(channels, width).to(device=device, dtype=dtype)
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, w = x.shape
        pe = self.table(c, w, x.device, x.dtype)
        both = torch.cat([pe, torch.roll(pe, w // 2, dims=-1)], dim=0)  # (2, C, 1, W)
        return (x.reshape(n // 2, 2, c, *x.shape[2:]) + both).reshape(x.shape)
