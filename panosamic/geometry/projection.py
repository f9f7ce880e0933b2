"""Pinhole photos onto the panorama and back: :func:`pinhole_to_erp` and :func:`erp_to_pinhole`.

Arrays are numpy arrays or torch tensors (any device) of shape ``(H, W)``, ``(C, H, W)`` or
``(B, C, H, W)`` (``channels_last=True``: ``(H, W, C)`` / ``(B, H, W, C)``), of any dtype; the result
has the input's type, dtype and device. The camera (:class:`~panosamic.geometry.camera.PinholeCamera`)
may give its angles, field of view or intrinsics per sample: a single photo with B orientations gives
B outputs.
Conventions: :mod:`panosamic.geometry.sphere` and :mod:`panosamic.geometry.camera`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .camera import PinholeCamera
from .sampling import sample
from .sphere import directions_to_erp, erp_directions

__all__ = ["coordinate_dtype", "erp_to_pinhole", "pinhole_to_erp"]


def coordinate_dtype(device: torch.device) -> torch.dtype:
    """float64 for coordinates where the device has it (exact at pixel centres), float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64


@functools.lru_cache(maxsize=8)
def _cached_erp_directions(erp_height: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return erp_directions(erp_height, device=device, dtype=dtype)


def _to_batch(array: Any, channels_last: bool) -> tuple[torch.Tensor, int, bool]:
    """-> (N, C, H, W) tensor, the input's ndim, whether it was numpy."""
    is_numpy = isinstance(array, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(array)) if is_numpy else array
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(array).__name__}")
    ndim = t.ndim
    if ndim not in (2, 3, 4):
        raise ValueError(
            f"expected an array of shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(t.shape)}"
        )
    if channels_last and ndim >= 3:
        t = t.movedim(-1, -3)
    while t.ndim < 4:
        t = t.unsqueeze(0)
    return t, ndim, is_numpy


def _from_batch(t: torch.Tensor, ndim: int, batched: bool, channels_last: bool, is_numpy: bool) -> Any:
    if not batched and ndim < 4:
        t = t[0]
    if ndim == 2:
        t = t[:, 0] if t.ndim == 4 else t[0]
    elif channels_last:
        t = t.movedim(-3, -1)
    return t.numpy() if is_numpy else t


def _num_samples(camera: PinholeCamera, n: int, what: str) -> int:
    """How many samples the camera gives (1 unless per sample); refused when that is neither 1 nor the
    ``n`` arrays given (``what``: their name)."""
    nb = camera.num_samples
    if nb > 1 and n > 1 and nb != n:
        raise ValueError(f"{n} {what} but {nb} per-sample camera parameters")
    return nb


def pinhole_to_erp(
    array: Any,
    camera: PinholeCamera,
    *,
    erp_height: int,
    nearest: bool = False,
    fill: float = 0,
    channels_last: bool = False,
) -> tuple[Any, Any]:
    """Project a pinhole photo (or label map, ``nearest=True``) seen by ``camera`` onto an
    ``erp_height x 2 erp_height`` panorama. Returns the panorama-sized array (``fill`` where the photo
    does not reach) and a boolean mask ``(H, 2H)`` (``(B, H, 2H)`` for batches) of the panorama pixels
    whose centres the photo covers.
    """
    t, ndim, is_numpy = _to_batch(array, channels_last)
    n, _c, h, w = t.shape
    nb = _num_samples(camera, n, "photos")
    dirs = _cached_erp_directions(int(erp_height), str(t.device), coordinate_dtype(t.device))
    x, y, inside = camera.project(dirs, w, h)
    if x.ndim == 2:
        x, y, inside = x[None], y[None], inside[None]
    out = sample(t, x, y, nearest=nearest)
    mask = inside.expand(out.shape[0], *inside.shape[1:])
    out = torch.where(mask[:, None], out, torch.as_tensor(fill, dtype=out.dtype, device=out.device))
    batched = ndim == 4 or nb > 1
    mask_out = mask if batched else mask[0]
    result = _from_batch(out, ndim, batched, channels_last, is_numpy)
    return result, (mask_out.cpu().numpy() if is_numpy else mask_out)


def erp_to_pinhole(
    array: Any,
    camera: PinholeCamera,
    *,
    width: int,
    height: int,
    nearest: bool = False,
    channels_last: bool = False,
) -> Any:
    """The ``width x height`` view of ``camera`` on an ``H x 2H`` panorama (bilinear, wrapping at the
    ±180° seam; ``nearest=True`` for labels). Every view pixel sees the sphere, so there is no mask."""
    t, ndim, is_numpy = _to_batch(array, channels_last)
    n, _c, eh, ew = t.shape
    if ew != 2 * eh:
        raise ValueError(f"expected an equirectangular panorama of size H x 2H, got {eh}x{ew}")
    nb = _num_samples(camera, n, "panoramas")
    rays = camera.rays(width, height, device=t.device, dtype=coordinate_dtype(t.device))
    u, v = directions_to_erp(rays, eh)
    if u.ndim == 2:
        u, v = u[None], v[None]
    out = sample(t, u, v, nearest=nearest, wrap_x=True)
    return _from_batch(out, ndim, ndim == 4 or nb > 1, channels_last, is_numpy)
