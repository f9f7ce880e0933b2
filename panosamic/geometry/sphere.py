"""The equirectangular grid and the unit sphere.

Conventions (the library's, everywhere): an ``H x 2H`` panorama's column ``u`` has longitude
``(u + 0.5) / 2H * 360° - 180°`` and row ``v`` latitude ``90° - (v + 0.5) / H * 180°``; pixel centres
sit at integer ``(u, v)``. A direction on the unit sphere is ``(x, y, z)`` in a right-handed frame
whose axes match a camera looking at the panorama's centre: ``x`` towards longitude +90° (right),
``y`` towards latitude -90° (down) and ``z`` towards longitude 0°, latitude 0° (forward)::

    x = cos(lat) sin(lon),   y = -sin(lat),   z = cos(lat) cos(lon)
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "directions_to_erp",
    "directions_to_lonlat",
    "erp_directions",
    "erp_lonlat",
    "erp_pixel_solid_angles",
    "lonlat_to_directions",
]


def erp_lonlat(
    erp_height: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, 2H) longitude and latitude in radians of every pixel centre of an ``H x 2H`` panorama."""
    if erp_height < 1:
        raise ValueError(f"erp_height must be >= 1, got {erp_height}")
    h, w = erp_height, 2 * erp_height
    u = torch.arange(w, device=device, dtype=torch.float64)
    v = torch.arange(h, device=device, dtype=torch.float64)
    lon = (u + 0.5) / w * (2 * math.pi) - math.pi
    lat = math.pi / 2 - (v + 0.5) / h * math.pi
    lat_grid, lon_grid = torch.meshgrid(lat, lon, indexing="ij")
    return lon_grid.to(dtype), lat_grid.to(dtype)


def lonlat_to_directions(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Unit directions (..., 3) of longitudes and latitudes in radians (same shapes)."""
    cos_lat = torch.cos(lat)
    return torch.stack((cos_lat * torch.sin(lon), -torch.sin(lat), cos_lat * torch.cos(lon)), dim=-1)


def directions_to_lonlat(directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Longitude in [-pi, pi] and latitude in [-pi/2, pi/2] (radians) of directions (..., 3), any length."""
    x, y, z = directions.unbind(-1)
    lon = torch.atan2(x, z)
    lat = torch.atan2(-y, torch.sqrt(x * x + z * z))
    return lon, lat


def erp_directions(
    erp_height: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(H, 2H, 3) unit direction of every pixel centre of an ``H x 2H`` panorama."""
    lon, lat = erp_lonlat(erp_height, device=device, dtype=torch.float64)
    return lonlat_to_directions(lon, lat).to(dtype)


def directions_to_erp(directions: torch.Tensor, erp_height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates ``(u, v)`` of directions (..., 3) on an ``H x 2H`` panorama.

    Pixel centres are at integers: ``u`` in [-0.5, 2H - 0.5), ``v`` in [-0.5, H - 0.5].
    """
    lon, lat = directions_to_lonlat(directions)
    w = 2 * erp_height
    u = (lon + math.pi) / (2 * math.pi) * w - 0.5
    v = (math.pi / 2 - lat) / math.pi * erp_height - 0.5
    return u, v


def erp_pixel_solid_angles(
    erp_height: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """(H, 1) solid angle in steradians of one pixel of each row (they sum to 4 pi over the panorama)."""
    h = erp_height
    edges = math.pi / 2 - torch.arange(h + 1, device=device, dtype=torch.float64) / h * math.pi
    band = torch.sin(edges[:-1]) - torch.sin(edges[1:])
    return (band * (2 * math.pi / (2 * h))).unsqueeze(1).to(dtype)
