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
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "AngleLike",
    "PinholeCamera",
    "fov_from_intrinsics",
    "intrinsics_from_fov",
    "rotation_matrix",
    "solid_angle_of_fov",
]

#: A float, a sequence of floats or a 1-D tensor (one value per sample), in degrees.
AngleLike = float | int | Sequence[float] | torch.Tensor


def _degrees(value: AngleLike, device: torch.device | str | None = None) -> torch.Tensor:
    """An angle (or one per sample) as a float64 tensor of degrees, refused unless 0-D or 1-D."""
    t = torch.as_tensor(value, dtype=torch.float64).to(device)
    if t.ndim > 1:
        raise ValueError(
            f"an angle must be a number or a 1-D sequence of numbers, got shape {tuple(t.shape)}"
        )
    return t


def _angles(value: AngleLike, device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    return torch.deg2rad(_degrees(value, device)).to(dtype)


def _fov(fov_deg: AngleLike, device: torch.device | str | None = None) -> torch.Tensor:
    """A horizontal field of view (or one per sample) in degrees, refused outside (0, 180)."""
    fov = _degrees(fov_deg, device)
    if torch.any(fov <= 0) or torch.any(fov >= 180):
        raise ValueError(f"fov_deg must be in (0, 180) degrees, got {fov.tolist()}")
    return fov


def _intrinsics(k: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """An intrinsic matrix (3, 3) or a batch (B, 3, 3) as float64, refused unless its focal lengths are
    positive."""
    k = torch.as_tensor(k, dtype=torch.float64).to(device)
    if k.shape[-2:] != (3, 3) or k.ndim > 3:
        raise ValueError(f"intrinsics must be a 3x3 matrix or a (B, 3, 3) batch, got shape {tuple(k.shape)}")
    if torch.any(k[..., 0, 0] <= 0) or torch.any(k[..., 1, 1] <= 0):
        raise ValueError("intrinsics: the focal lengths K[0,0] and K[1,1] must be positive")
    return k


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
    fov = _fov(fov_deg, device)
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


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """A pinhole camera: its horizontal field of view ``fov_deg`` or its intrinsic matrix (exactly one)
    and its orientation, in degrees. Each angle is a number or one value per sample (a sequence or a 1-D
    tensor of length B), the intrinsics a (3, 3) matrix or a (B, 3, 3) batch (any device); the parameters
    given per sample agree on B. Refused here, in one line, when not so."""

    fov_deg: AngleLike | None = None
    intrinsics: Any = None
    yaw_deg: AngleLike = 0.0
    pitch_deg: AngleLike = 0.0
    roll_deg: AngleLike = 0.0
    _num_samples: int = field(init=False, repr=False, compare=False, default=1)

    def __post_init__(self) -> None:
        if (self.fov_deg is None) == (self.intrinsics is None):
            raise ValueError(
                "give exactly one of fov_deg (horizontal field of view) and intrinsics (3x3 matrix)"
            )
        lens = _fov(self.fov_deg) if self.fov_deg is not None else _intrinsics(self.intrinsics)
        given = {"fov_deg" if self.fov_deg is not None else "intrinsics": lens}
        given |= {name: _degrees(getattr(self, name)) for name in ("yaw_deg", "pitch_deg", "roll_deg")}
        counts = {name: t.shape[0] for name, t in given.items() if t.ndim in (1, 3)}  # (B,) / (B, 3, 3)
        n = max(counts.values(), default=1)
        for name, count in counts.items():
            if count not in (1, n):
                raise ValueError(f"{name} has {count} values per sample, others have {n}")
        object.__setattr__(self, "_num_samples", n)

    @property
    def num_samples(self) -> int:
        """B when any parameter is given per sample, else 1."""
        return self._num_samples

    def rays(
        self,
        width: int,
        height: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Unit directions on the sphere (h, w, 3), or (B, h, w, 3), of every pixel centre of the camera's
        ``width x height`` image."""
        k, r = self._matrices(width, height, device)
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

    def project(
        self, directions: torch.Tensor, width: int, height: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pixel coordinates ``(x, y)`` (centres at integers) of sphere directions (..., 3) in the camera's
        ``width x height`` image, and where they fall inside it (in front of the camera, within
        ``[-0.5, w - 0.5) x [-0.5, h - 0.5)``).

        ``directions`` are shared by every sample: with a camera given per sample (B), the outputs gain a
        leading batch dimension B.
        """
        k, r = (m.to(directions.dtype) for m in self._matrices(width, height, directions.device))
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

    def _matrices(
        self, width: int, height: int, device: torch.device | str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 intrinsic matrix of a ``width x height`` image and camera-to-sphere rotation: (3, 3)
        each, or both (B, 3, 3) when any parameter is given per sample."""
        if self.intrinsics is not None:
            k = _intrinsics(self.intrinsics, device)
        else:
            k = intrinsics_from_fov(width, height, self.fov_deg, device=device)
        r = rotation_matrix(self.yaw_deg, self.pitch_deg, self.roll_deg, device=device)
        if k.ndim == 3 or r.ndim == 3:  # per sample: both to the common batch
            n = max(k.shape[0] if k.ndim == 3 else 1, r.shape[0] if r.ndim == 3 else 1)
            k, r = k.expand(n, 3, 3), r.expand(n, 3, 3)
        return k, r


def solid_angle_of_fov(hfov_deg: float, vfov_deg: float) -> float:
    """Solid angle (steradians) of a rectangular pinhole field of view: ``4 asin(sin(a/2) sin(b/2))``."""
    a, b = math.radians(hfov_deg), math.radians(vfov_deg)
    return 4 * math.asin(math.sin(a / 2) * math.sin(b / 2))
