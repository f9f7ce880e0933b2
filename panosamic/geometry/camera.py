"""Pinhole cameras on the sphere: orientation, intrinsics, rays and projection.

A camera's frame is ``x`` right, ``y`` down, ``z`` forward (its optical axis). Yaw 0, pitch 0,
roll 0 is the sphere's frame itself (looking at the panorama's centre). The camera-to-sphere rotation
is ``R = R_yaw @ R_pitch @ R_roll``: first roll about the optical axis, then pitch, then yaw.

* positive **yaw** turns the optical axis towards increasing longitude (the optical axis is at
  longitude ``yaw`` for pitch 0);
* positive **pitch** turns it upwards (its latitude is ``pitch``);
* positive **roll** turns the camera clockwise about its optical axis as seen by the camera (looking
  along the optical axis): its ``x`` axis (image right) tilts downwards, so the scene appears turned
  counter-clockwise in the photo.

Pixel ``(i, j)`` of a ``w x h`` image (column i, row j) has its centre at continuous coordinates
``(i + 0.5, j + 0.5)``; an intrinsic matrix ``K`` is expressed in these continuous coordinates, so a
centred principal point is ``(w / 2, h / 2)``. A horizontal field of view ``fov`` gives
``fx = fy = (w / 2) / tan(fov / 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "AngleLike",
    "directions_to_pinhole",
    "fov_from_intrinsics",
    "intrinsics_from_fov",
    "pinhole_rays",
    "rotation_matrix",
    "solid_angle_of_fov",
]

#: A float, a sequence of floats or a 1-D tensor (one value per sample), in degrees.
AngleLike = float | int | Sequence[float] | torch.Tensor


def _angles(value: AngleLike, device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).to(device)
    if t.ndim > 1:
        raise ValueError(
            f"an angle must be a number or a 1-D sequence of numbers, got shape {tuple(t.shape)}"
        )
    return torch.deg2rad(t).to(dtype)


def rotation_matrix(
    yaw_deg: AngleLike,
    pitch_deg: AngleLike,
    roll_deg: AngleLike = 0.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Camera-to-sphere rotation (3, 3), or (B, 3, 3) when any angle is given per sample."""
    yaw, pitch, roll = (_angles(a, device, torch.float64) for a in (yaw_deg, pitch_deg, roll_deg))
    yaw, pitch, roll = torch.broadcast_tensors(yaw, pitch, roll)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)

    def mat(rows: list[list[torch.Tensor]]) -> torch.Tensor:
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    r_yaw = mat([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])  # about y (down)
    r_pitch = mat([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])  # about x (right): z -> -y (up)
    r_roll = mat([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])  # about z: x -> +y (clockwise)
    return (r_yaw @ r_pitch @ r_roll).to(dtype)


def intrinsics_from_fov(
    width: int,
    height: int,
    fov_deg: AngleLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Intrinsic matrix (3, 3) or (B, 3, 3) of a ``width x height`` image with horizontal field of view
    ``fov_deg`` (in (0, 180)), square pixels and the principal point at the image's centre."""
    fov = torch.as_tensor(fov_deg, dtype=torch.float64).to(device)
    if torch.any(fov <= 0) or torch.any(fov >= 180):
        raise ValueError(f"fov_deg must be in (0, 180) degrees, got {fov.tolist()}")
    if width < 1 or height < 1:
        raise ValueError(f"the image size must be positive, got {width}x{height}")
    f = (width / 2) / torch.tan(torch.deg2rad(fov) / 2)
    k = torch.zeros(*f.shape, 3, 3, dtype=torch.float64, device=f.device)
    k[..., 0, 0] = f
    k[..., 1, 1] = f
    k[..., 0, 2] = width / 2
    k[..., 1, 2] = height / 2
    k[..., 2, 2] = 1.0
    return k.to(dtype)


def fov_from_intrinsics(k: torch.Tensor, width: int) -> torch.Tensor:
    """Horizontal field of view in degrees of an intrinsic matrix (centred principal point assumed)."""
    return torch.rad2deg(2 * torch.atan((width / 2) / torch.as_tensor(k)[..., 0, 0]))


def pinhole_rays(
    width: int,
    height: int,
    *,
    fov_deg: AngleLike | None = None,
    intrinsics: torch.Tensor | None = None,
    yaw_deg: AngleLike = 0.0,
    pitch_deg: AngleLike = 0.0,
    roll_deg: AngleLike = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit directions on the sphere (h, w, 3), or (B, h, w, 3), of every pixel centre of a pinhole view."""
    k, r = _camera(width, height, fov_deg, intrinsics, (yaw_deg, pitch_deg, roll_deg), device, torch.float64)
    i = torch.arange(width, device=device, dtype=torch.float64) + 0.5
    j = torch.arange(height, device=device, dtype=torch.float64) + 0.5
    jj, ii = torch.meshgrid(j, i, indexing="ij")
    fx, fy = k[..., 0, 0, None, None], k[..., 1, 1, None, None]
    cx, cy = k[..., 0, 2, None, None], k[..., 1, 2, None, None]
    cam = torch.stack(
        torch.broadcast_tensors((ii - cx) / fx, (jj - cy) / fy, torch.ones_like(fx * ii)), dim=-1
    )
    cam = cam / cam.norm(dim=-1, keepdim=True)
    world = torch.einsum("...ab,...hwb->...hwa", r, cam)
    return world.to(dtype)


def directions_to_pinhole(
    directions: torch.Tensor,
    width: int,
    height: int,
    *,
    fov_deg: AngleLike | None = None,
    intrinsics: torch.Tensor | None = None,
    yaw_deg: AngleLike = 0.0,
    pitch_deg: AngleLike = 0.0,
    roll_deg: AngleLike = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel coordinates ``(x, y)`` (centres at integers) of sphere directions (..., 3) in a pinhole view,
    and where they fall inside the image (in front of the camera, within
    ``[-0.5, w - 0.5) x [-0.5, h - 0.5)``).

    ``directions`` are shared by every sample: with per-sample angles or intrinsics (B,), the outputs
    gain a leading batch dimension B.
    """
    device = directions.device
    k, r = _camera(width, height, fov_deg, intrinsics, (yaw_deg, pitch_deg, roll_deg), device, directions.dtype)
    if r.ndim == 3:  # (B, 3, 3) against shared (..., 3): outputs (B, ...)
        ones = [1] * (directions.ndim - 1)
        r, k = r.reshape(r.shape[0], *ones, 3, 3), k.reshape(k.shape[0], *ones, 3, 3)
    cam = (r.transpose(-1, -2) @ directions.unsqueeze(-1)).squeeze(-1)  # sphere -> camera
    cx_, cy_, cz = cam.unbind(-1)
    front = cz > 1e-9
    safe = torch.where(front, cz, torch.ones_like(cz))
    x = k[..., 0, 0] * cx_ / safe + k[..., 0, 2] - 0.5
    y = k[..., 1, 1] * cy_ / safe + k[..., 1, 2] - 0.5
    inside = front & (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    return x, y, inside


def _camera(
    width: int,
    height: int,
    fov_deg: AngleLike | None,
    intrinsics: torch.Tensor | None,
    angles: tuple[AngleLike, AngleLike, AngleLike],
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics and camera-to-sphere rotation of a view (``angles``: yaw, pitch, roll), in ``dtype``,
    broadcast to a common batch when any is given per sample."""
    k = _intrinsics(width, height, fov_deg, intrinsics, device).to(dtype)
    return _batch(k, rotation_matrix(*angles, device=device, dtype=dtype))


def _intrinsics(
    width: int,
    height: int,
    fov_deg: AngleLike | None,
    k: torch.Tensor | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    if (fov_deg is None) == (k is None):
        raise ValueError("give exactly one of fov_deg (horizontal field of view) and intrinsics (3x3 matrix)")
    if k is not None:
        k = torch.as_tensor(k, dtype=torch.float64).to(device)
        if k.shape[-2:] != (3, 3) or k.ndim > 3:
            raise ValueError(
                f"intrinsics must be a 3x3 matrix or a (B, 3, 3) batch, got shape {tuple(k.shape)}"
            )
        if torch.any(k[..., 0, 0] <= 0) or torch.any(k[..., 1, 1] <= 0):
            raise ValueError("intrinsics: the focal lengths K[0,0] and K[1,1] must be positive")
        return k
    return intrinsics_from_fov(width, height, fov_deg, device=device)


def _batch(k: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast (3,3)/(B,3,3) intrinsics and rotations to a common batch."""
    if k.ndim == 3 or r.ndim == 3:
        n = max(k.shape[0] if k.ndim == 3 else 1, r.shape[0] if r.ndim == 3 else 1)
        for t, name in ((k, "intrinsics/fov_deg"), (r, "yaw/pitch/roll")):
            if t.ndim == 3 and t.shape[0] not in (1, n):
                raise ValueError(f"{name} has {t.shape[0]} values per sample, others have {n}")
        k = k.expand(n, 3, 3) if k.ndim == 3 else k.unsqueeze(0).expand(n, 3, 3)
        r = r.expand(n, 3, 3) if r.ndim == 3 else r.unsqueeze(0).expand(n, 3, 3)
    return k, r


def solid_angle_of_fov(hfov_deg: float, vfov_deg: float) -> float:
    """Solid angle (steradians) of a rectangular pinhole field of view: ``4 asin(sin(a/2) sin(b/2))``."""
    a, b = math.radians(hfov_deg), math.radians(vfov_deg)
    return 4 * math.asin(math.sin(a / 2) * math.sin(b / 2))
