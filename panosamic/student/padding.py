"""Longitude wrap-around for any CNN: circular padding left/right, zeros (or edge values) top/bottom.

An equirectangular panorama is periodic in longitude, so its left and right edges are neighbours.
:func:`make_circular` swaps every spatially padded ``nn.Conv2d`` / ``nn.MaxPool2d`` of a network
for a module that pads the input itself (circular horizontally, zeros vertically for convolutions,
edge replication vertically for max pooling) and then runs with ``padding=0``. Parameters keep
their names, so timm's pretrained weights and state dicts are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CircularConv2d", "CircularMaxPool2d", "circular_resize", "circular_upsample", "make_circular"]


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _wrap(x: torch.Tensor, ph: int, pw: int, vertical: str) -> torch.Tensor:
    if pw:
        x = F.pad(x, (pw, pw, 0, 0), mode="circular")
    if ph:
        x = F.pad(x, (0, 0, ph, ph)) if vertical == "zeros" else F.pad(x, (0, 0, ph, ph), mode="replicate")
    return x


class CircularConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose horizontal padding wraps around (vertical padding: zeros)."""

    def __init__(self, *args, wrap_padding: int | tuple[int, int] = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding not in ((0, 0), "valid"):
            raise ValueError(f"CircularConv2d pads itself: pass wrap_padding, not padding={self.padding}")
        self.wrap_padding = _pair(wrap_padding)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> CircularConv2d:
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                return conv  # type: ignore[return-value]
            k, d = _pair(conv.kernel_size), _pair(conv.dilation)
            if any(ki % 2 == 0 for ki in k):
                raise ValueError(f"cannot wrap 'same' padding of an even kernel {k} in {conv}")
            padding = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        else:
            padding = _pair(conv.padding)
        if conv.padding_mode != "zeros":
            raise ValueError(f"cannot wrap a convolution with padding_mode={conv.padding_mode!r}: {conv}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=0,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                  device=conv.weight.device, dtype=conv.weight.dtype, wrap_padding=padding)
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.wrap_padding
        return self._conv_forward(_wrap(x, ph, pw, "zeros"), self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", wrap_padding={self.wrap_padding}"


class CircularMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose horizontal padding wraps around (vertical: edge values, as -inf would)."""

    def __init__(self, *args, wrap_padding: int | tuple[int, int] = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wrap_padding = _pair(wrap_padding)

    @classmethod
    def from_pool(cls, pool: nn.MaxPool2d) -> CircularMaxPool2d:
        return cls(pool.kernel_size, stride=pool.stride, padding=0, dilation=pool.dilation,
                   return_indices=pool.return_indices, ceil_mode=pool.ceil_mode, wrap_padding=pool.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.wrap_padding
        return super().forward(_wrap(x, ph, pw, "replicate"))


def make_circular(module: nn.Module) -> nn.Module:
    """Replace, in place, every padded convolution and max pooling of ``module``; returns it.

    Refuses layers whose padding cannot be made periodic (``AvgPool2d`` with padding, TF-style
    dynamic "same" padding, other padding modes) with a ``ValueError`` naming the layer.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, (CircularConv2d, CircularMaxPool2d)):
            continue
        if isinstance(child, nn.Conv2d):
            if type(child) is not nn.Conv2d:
                raise ValueError(f"{name}: {type(child).__name__} pads dynamically; use a backbone with "
                                 "static padding (e.g. not a tf_* timm model)")
            if child.padding != (0, 0) and child.padding != "valid":
                setattr(module, name, CircularConv2d.from_conv(child))
        elif isinstance(child, nn.MaxPool2d):
            if _pair(child.padding) != (0, 0):
                setattr(module, name, CircularMaxPool2d.from_pool(child))
        elif isinstance(child, nn.AvgPool2d) and _pair(child.padding) != (0, 0):
            raise ValueError(f"{name}: padded AvgPool2d cannot wrap around in longitude")
        else:
            make_circular(child)
    return module


def circular_upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear x``factor`` upsampling of (N, C, h, w) with the left/right neighbours wrapped around.

    Plain bilinear clamps at the edges; here one column of each edge is copied to the other side
    first, so the output near ±180° blends the two edges and rolling the input by ``k`` columns
    rolls the output by exactly ``factor * k``. Traceable with dynamic sizes (ONNX).
    """
    if factor == 1:
        return x
    y = F.interpolate(F.pad(x, (1, 1, 0, 0), mode="circular"), scale_factor=float(factor), mode="bilinear",
                      align_corners=False)
    return y[..., factor:-factor]


def circular_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) to ``size``: wrap-around when the width grows by an integer
    factor, plain (antialiased when shrinking) otherwise."""
    h, w = x.shape[-2:]
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return x
    if out_w % w == 0 and out_h * w == h * out_w:
        return circular_upsample(x, out_w // w)
    return F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=out_w < w)
