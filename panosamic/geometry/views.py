"""Sets of view orientations covering the sphere: the six cube faces, or tangent views in latitude rings."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ViewOrientation", "cube_views", "tangent_views"]


@dataclass(frozen=True)
class ViewOrientation:
    """A camera orientation in degrees (conventions of :mod:`panosamic.geometry.camera`)."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float = 0.0


def cube_views() -> list[ViewOrientation]:
    """The six faces of a cube map for 90° square views: front, right, back, left, up, down."""
    return [
        ViewOrientation(0.0, 0.0),
        ViewOrientation(90.0, 0.0),
        ViewOrientation(180.0, 0.0),
        ViewOrientation(-90.0, 0.0),
        ViewOrientation(0.0, 90.0),
        ViewOrientation(0.0, -90.0),
    ]


def tangent_views(fov_deg: float = 60.0, overlap_deg: float = 15.0) -> list[ViewOrientation]:
    """Square views of field of view ``fov_deg`` in latitude rings (a single view at each pole) covering
    the whole sphere, neighbours overlapping by at least about ``overlap_deg``.

    Ring centres are evenly spaced in latitude at most ``fov - overlap`` apart; each ring has enough
    views that, on the band's circle nearest the equator, centres are at most ``fov - overlap`` apart.
    Yaws of successive rings are staggered by half a step.
    """
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if not 0 <= overlap_deg < fov_deg:
        raise ValueError(f"overlap_deg must be in [0, fov_deg), got {overlap_deg} with fov_deg {fov_deg}")
    step = fov_deg - overlap_deg
    n_rings = max(2, math.ceil(180.0 / step)) + 1
    lats = [-90.0 + i * 180.0 / (n_rings - 1) for i in range(n_rings)]
    half = 180.0 / (n_rings - 1) / 2
    out: list[ViewOrientation] = []
    for i, lat in enumerate(lats):
        if abs(abs(lat) - 90.0) < 1e-9:
            out.append(ViewOrientation(0.0, lat))
            continue
        widest = max(0.0, abs(lat) - half)  # the ring's band latitude nearest the equator
        n = max(1, math.ceil(360.0 * math.cos(math.radians(widest)) / step))
        offset = (180.0 / n) * (i % 2)
        out.extend(ViewOrientation(_wrap(-180.0 + offset + (j + 0.5) * 360.0 / n), lat) for j in range(n))
    return out


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0
