"""Sampling an image at continuous pixel coordinates: bilinear for images, nearest for labels.

Our own gather (not ``grid_sample``): any dtype (float, uint8, integer labels, bool) on any device,
pixel centres at integer coordinates, longitude wrap-around for panoramas. Arrays are ``(N, C, H, W)``
tensors; coordinates ``(M, Ho, Wo)`` with ``M`` equal to ``N`` or either being 1.
"""

from __future__ import annotations

import torch

__all__ = ["compute_dtype", "sample"]


def compute_dtype(array: torch.Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if array.dtype == torch.float64 else torch.float32


def sample(
    array: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    nearest: bool,
    wrap_x: bool = False,
) -> torch.Tensor:
    """Values of ``array`` (N, C, H, W) at ``(x, y)`` (M, Ho, Wo) -> (max(N, M), C, Ho, Wo), same dtype.

    Coordinates are clamped to the image (``wrap_x`` wraps columns instead, for panoramas); callers
    mask what lies outside. Bilinear results of integer arrays are rounded and clamped to the dtype.
    """
    n, c, h, w = array.shape
    m = x.shape[0]
    if n != m and 1 not in (n, m):
        raise ValueError(f"{n} arrays and {m} coordinate grids: they must match or one of them be 1")
    batch = max(n, m)
    flat = array.reshape(n, c, h * w).expand(batch, c, h * w)
    out_hw = x.shape[1:]

    def gather(ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
        ix = torch.remainder(ix, w) if wrap_x else ix.clamp(0, w - 1)
        iy = iy.clamp(0, h - 1)
        idx = (iy * w + ix).reshape(m, 1, -1).expand(batch, c, -1)
        return torch.gather(flat, 2, idx).reshape(batch, c, *out_hw)

    if nearest:
        return gather(torch.floor(x + 0.5).long(), torch.floor(y + 0.5).long())
    work = compute_dtype(array)
    x0f, y0f = torch.floor(x), torch.floor(y)
    fx = (x - x0f).to(work).reshape(m, 1, *out_hw)
    fy = (y - y0f).to(work).reshape(m, 1, *out_hw)
    x0, y0 = x0f.long(), y0f.long()
    v00 = gather(x0, y0).to(work)
    v01 = gather(x0 + 1, y0).to(work)
    v10 = gather(x0, y0 + 1).to(work)
    v11 = gather(x0 + 1, y0 + 1).to(work)
    top = v00 + (v01 - v00) * fx
    bottom = v10 + (v11 - v10) * fx
    out = top + (bottom - top) * fy
    if array.dtype == torch.bool:
        return out >= 0.5
    if not array.dtype.is_floating_point:
        info = torch.iinfo(array.dtype)
        return out.round().clamp(info.min, info.max).to(array.dtype)
    return out.to(array.dtype)
