"""NumPy twins of the resizes a student's ONNX graph needs around it (no torch on the ONNX path).

Each follows the CPU kernel of :func:`torch.nn.functional.interpolate` it stands in for (bilinear with
``align_corners=False``, optionally antialiased like ``antialias=True``; nearest), as a separable pass
over the width then the height; values agree with torch to float32 rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["circular_resize", "resize"]


def _bilinear_taps(n_in: int, n_out: int, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights) of shape (n_out, 2): torch's bilinear, align_corners=False, no antialias."""
    s = n_in / n_out if scale is None else scale
    src = np.maximum(s * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = src - i0
    return np.stack([i0, i1], 1), np.stack([1.0 - l1, l1], 1)


def _antialias_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights) of shape (n_out, k): torch's antialiased bilinear (a triangle filter as wide
    as the scale), windows clipped at the edges and normalised."""
    s = n_in / n_out
    support = s if s >= 1.0 else 1.0
    inv = 1.0 / s if s >= 1.0 else 1.0
    center = s * (np.arange(n_out, dtype=np.float64) + 0.5)
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), n_in)
    k = int((xmax - xmin).max())
    j = np.arange(k)[None, :]
    idx = xmin[:, None] + j
    w = np.maximum(0.0, 1.0 - np.abs((idx - center[:, None] + 0.5) * inv))
    w[idx >= xmax[:, None]] = 0.0
    w /= w.sum(1, keepdims=True)
    return np.minimum(idx, n_in - 1), w


def _nearest_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.float32(n_in) / np.float32(n_out)
    idx = np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * s).astype(np.int64), n_in - 1)
    return idx[:, None], np.ones((n_out, 1))


def _apply(x: np.ndarray, axis: int, taps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    idx, w = taps
    shape = [1] * x.ndim
    shape[axis] = idx.shape[0]
    out = None
    for k in range(idx.shape[1]):
        term = np.take(x, idx[:, k], axis=axis) * w[:, k].astype(np.float32).reshape(shape)
        out = term if out is None else out + term
    return out.astype(np.float32, copy=False)


def resize(x: np.ndarray, size: tuple[int, int], mode: str = "bilinear", antialias: bool = False) -> np.ndarray:
    """(..., H, W) float -> (..., h, w) float32, like ``F.interpolate(x, size, mode, align_corners=False,
    antialias=antialias)`` (``mode``: ``"bilinear"`` or ``"nearest"``)."""
    x = np.asarray(x, dtype=np.float32)
    (h_in, w_in), (h, w) = x.shape[-2:], (int(size[0]), int(size[1]))
    if (h_in, w_in) == (h, w):
        return x
    if mode == "nearest":
        make = _nearest_taps
    elif antialias:
        make = _antialias_taps
    else:
        make = _bilinear_taps
    x = _apply(x, x.ndim - 1, make(w_in, w)) if w_in != w else x
    return _apply(x, x.ndim - 2, make(h_in, h)) if h_in != h else x


def circular_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(..., h, w) logits -> (..., H, W), as :func:`panosamic.student.padding.circular_resize`: wrap-around
    bilinear when the width grows by an integer factor, plain (antialiased when shrinking) otherwise."""
    h, w = x.shape[-2:]
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return np.asarray(x, dtype=np.float32)
    if out_w % w == 0 and out_h * w == h * out_w:
        f = out_w // w
        padded = np.concatenate([x[..., -1:], x, x[..., :1]], axis=-1).astype(np.float32)
        y = _apply(padded, padded.ndim - 1, _bilinear_taps(w + 2, (w + 2) * f, 1.0 / f))
        y = _apply(y, y.ndim - 2, _bilinear_taps(h, h * f, 1.0 / f))
        return np.ascontiguousarray(y[..., f:-f])
    return resize(x, (out_h, out_w), antialias=out_w < w)
