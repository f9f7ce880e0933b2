"""MCBAM: CBAM channel and spatial attention computed in sliding windows ("moving" attention).

A window of ``window_size`` slides with ``stride`` over the map without padding; each window gets
its own attention, and the per-window results are summed back onto the pixels they cover
(1, 2 or 4 windows per pixel for 8/4 windows on a 64x64 map). How the overlapping results are
merged is the ``aggregation``:

* ``"none"``: sum of the window logits, then sigmoid;
* ``"mean"``: sigmoid per window, averaged over the windows that cover the pixel;
* ``"max"``: sigmoid per window, summed to S, then ``sigmoid(15 (S - 0.5))`` (a soft threshold).

Everything is vectorised with pooling, ``unfold`` and transposed convolution (no Python loops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.config import AttentionConfig
from panosamic.constants import MAX_AGGREGATION_SHARPNESS


def _window_count(n: int, window: int, stride: int) -> int:
    if n < window:
        raise ValueError(f"a {window}-window does not fit a map of size {n}")
    return (n - window) // stride + 1


def _scatter_windows(values: torch.Tensor, window: int, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Sum per-window constants (N, C, nh, nw) onto the pixels each window covers -> (N, C, H, W)."""
    c = values.shape[1]
    ones = values.new_ones(c, 1, window, window)
    out = F.conv_transpose2d(values, ones, stride=stride, groups=c)
    return F.pad(out, (0, size[1] - out.shape[-1], 0, size[0] - out.shape[-2]))


def _coverage(size: tuple[int, int], window: int, stride: int, like: torch.Tensor) -> torch.Tensor:
    """How many windows cover each pixel, (1, 1, H, W)."""
    nh, nw = (_window_count(s, window, stride) for s in size)
    return _scatter_windows(like.new_ones(1, 1, nh, nw), window, stride, size)


def _aggregate(summed_logits_or_probs: torch.Tensor, aggregation: str, count: torch.Tensor | None) -> torch.Tensor:
    if aggregation == "none":
        return torch.sigmoid(summed_logits_or_probs)
    if aggregation == "mean":
        assert count is not None
        return summed_logits_or_probs / count.clamp_min(1)
    return torch.sigmoid(MAX_AGGREGATION_SHARPNESS * (summed_logits_or_probs - 0.5))


class ChannelAttentionLayer(nn.Module):
    """CBAM channel gate: an MLP on the ``[average; maximum]`` of each channel."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(2 * channels, channels, bias=bias),
            nn.GELU(),
            nn.Linear(channels, channels, bias=bias),
        )

    def forward(self, avg: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
        """``avg``, ``mx``: (..., C) -> gate logits (..., C)."""
        return self.fc(torch.cat([avg, mx], dim=-1))


class SpatialAttentionLayer(nn.Module):
    """CBAM spatial gate: a convolution over the channel mean and channel max maps."""

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """``maps``: (N, 2, h, w) -> gate logits (N, 1, h, w)."""
        return self.conv(maps)


class MovingAttention(nn.Module):
    """Runs an attention layer in sliding windows and merges the windows' gates.

    ``kind`` is "channel" or "spatial"; the wrapped layer is ``att_layer`` (state-dict name).
    Returns the attention map (same shape as the input for channel attention, (N, 1, H, W)
    for spatial attention); the caller multiplies.
    """

    def __init__(self, kind: str, channels: int, cfg: AttentionConfig) -> None:
        super().__init__()
        if kind not in ("channel", "spatial"):
            raise ValueError(f"kind must be 'channel' or 'spatial', got {kind!r}")
        self.kind = kind
        self.moving = cfg.moving_attention
        self.window = cfg.window_size
        self.stride = cfg.stride
        self.aggregation = cfg.aggregation
        self.att_layer: nn.Module = (
            ChannelAttentionLayer(channels, bias=cfg.bias)
            if kind == "channel"
            else SpatialAttentionLayer(cfg.kernel_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "channel":
            return self._channel(x)
        return self._spatial(x)

    # -- channel
    def _channel(self, x: torch.Tensor) -> torch.Tensor:
        if not self.moving:  # plain CBAM over the whole map
            z = self.att_layer(x.mean(dim=(2, 3)), x.amax(dim=(2, 3)))
            return torch.sigmoid(z)[:, :, None, None].expand_as(x)
        w, s = self.window, self.stride
        avg = F.avg_pool2d(x, w, s)  # (N, C, nh, nw)
        mx = F.max_pool2d(x, w, s)
        z = self.att_layer(avg.permute(0, 2, 3, 1), mx.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        size = (x.shape[-2], x.shape[-1])
        per_window = z if self.aggregation == "none" else torch.sigmoid(z)
        summed = _scatter_windows(per_window, w, s, size)
        count = _coverage(size, w, s, x) if self.aggregation == "mean" else None
        return _aggregate(summed, self.aggregation, count)

    # -- spatial
    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        if not self.moving:
            return torch.sigmoid(self.att_layer(maps))
        w, s = self.window, self.stride
        n, _, h, wd = maps.shape
        nh, nw = _window_count(h, w, s), _window_count(wd, w, s)
        cols = F.unfold(maps, w, stride=s)  # (N, 2*w*w, L), L = nh*nw
        windows = cols.transpose(1, 2).reshape(n * nh * nw, 2, w, w)
        z = self.att_layer(windows)  # zero padding inside each window
        per_window = z if self.aggregation == "none" else torch.sigmoid(z)
        per_window = per_window.reshape(n, nh * nw, w * w).transpose(1, 2)
        summed = F.fold(per_window, (h, wd), w, stride=s)
        count = _coverage((h, wd), w, s, x) if self.aggregation == "mean" else None
        return _aggregate(summed, self.aggregation, count)
