"""Resizing in row bands, so that memory does not grow with the size of huge panoramas.

* :func:`banded_labels`: ``argmax`` of the bilinear resize of (K, h, w) logits to (H, W), computed
  band by band without ever holding the (K, H, W) logits; the labels equal
  ``F.interpolate(logits[None], (H, W), mode="bilinear", align_corners=False)[0].argmax(0)``
  (same source rows and float32 weights; the blended values agree to float rounding, ~1 ulp, so
  only classes tied to within that can differ).
* :func:`banded_resize`: an (H, W, C) array of any dtype -> (C, h, w) float32, as
  :meth:`PanoSAMicNet.preprocess` resizes (bilinear with antialias when shrinking the width, or
  nearest), without a full-size float copy: the width pass runs on row bands (exact: the
  resize is separable and torch applies the width pass first), then the height pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

#: Output rows per band (memory per band: about K x BAND_ROWS x W x 4 bytes, twice).
BAND_ROWS: int = 64


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest integer dtype holding class indices 0..num_classes-1."""
    if num_classes <= 256:
        return torch.uint8
    if num_classes <= 32768:
        return torch.int16
    return torch.int32


def source_rows(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every output row of a bilinear (align_corners=False) resize: the two source rows and
    their weights ``(y0, y1, w0, w1)``, computed in float32 like torch's CPU kernel."""
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = scale * (torch.arange(out_size, dtype=torch.float32) + 0.5) - 0.5
    src = src.clamp(min=0)
    y0 = src.floor().long().clamp(max=in_size - 1)
    y1 = torch.where(y0 < in_size - 1, y0 + 1, y0)
    w1 = src - y0.float()
    return y0, y1, 1 - w1, w1


def _bands(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def banded_labels(
    logits: torch.Tensor, size: tuple[int, int], *, band_rows: int = BAND_ROWS, out: torch.Tensor | None = None
) -> torch.Tensor:
    """argmax over classes of (K, h, w) ``logits`` bilinearly resized to ``size`` = (H, W).

    Returns (H, W) labels in :func:`label_dtype` (or written into ``out``). Per band of output rows
    it width-resizes only the source rows the band needs (a resize with an unchanged height is
    the identity in y), then blends the two source rows of each output row.
    """
    k, h, w = logits.shape
    height, width = int(size[0]), int(size[1])
    logits = logits.float().contiguous()
    if out is None:
        out = torch.empty((height, width), dtype=label_dtype(k))
    if (height, width) == (h, w):
        return out.copy_(torch.max(logits, 0).indices)
    y0, y1, w0, w1 = source_rows(h, height)
    for start, stop in _bands(height, band_rows):
        lo, hi = int(y0[start]), int(y1[stop - 1]) + 1
        src = logits[:, lo:hi]
        if width != w:
            src = F.interpolate(src[None], size=(hi - lo, width), mode="bilinear", align_corners=False)[0]
        a = src.index_select(1, y0[start:stop] - lo).mul_(w0[start:stop, None])
        band = a.add_(src.index_select(1, y1[start:stop] - lo).mul_(w1[start:stop, None]))
        out[start:stop] = torch.max(band, 0).indices  # first maximum, like argmax; faster over dim 0
    return out


def banded_resize(
    array: np.ndarray, size: tuple[int, int], *, mode: str = "bilinear", band_rows: int = 256
) -> torch.Tensor:
    """(H, W, C) array of any numeric dtype -> (C, h, w) float32 resized to ``size`` = (h, w),
    equal to ``F.interpolate`` of the float32 (C, H, W) tensor as the network's preprocess does it."""
    height, width = int(size[0]), int(size[1])
    if array.ndim == 2:
        array = array[..., None]
    kw = {} if mode == "nearest" else {"align_corners": False, "antialias": array.shape[1] > width}
    bands = []
    for start, stop in _bands(array.shape[0], band_rows):
        x = torch.from_numpy(np.ascontiguousarray(array[start:stop]).astype(np.float32, copy=False))
        x = x.permute(2, 0, 1)[None]
        bands.append(F.interpolate(x, size=(stop - start, width), mode=mode, **kw)[0])
    x = torch.cat(bands, dim=1)
    del bands
    return F.interpolate(x[None], size=(height, width), mode=mode, **kw)[0].contiguous()
