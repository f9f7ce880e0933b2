"""Looks of the synthetic panoramas: materials, lighting, camera and sensor (``panosamic synth --domain``).

A :class:`SyntheticDomain` says how one "building + camera" looks: which base colours and textures every
class is made of (``materials``), the colour temperature, exposure and ambient share of the lighting, the
scale of the procedural textures, sensor noise, optical blur and tone curve, the tripod height and the
size of the black unscanned caps. Two domains differ the way two real buildings scanned with two
cameras do; the room layouts (and so the labels' statistics) come from the same generator.

The default domain (:data:`DEFAULT_DOMAIN`, named ``"default"``) is the generator's original look: with it
every seed gives byte-identical files to the generator before domains existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

# Texture kinds (procedural patterns of render.py).
PLAIN, PLANKS, TILES, BOOKS, WINDOW, FABRIC = range(6)

Color = tuple[float, float, float]
#: class name -> (candidate base colours 0..1 RGB, candidate texture kinds)
Materials = Mapping[str, tuple[tuple[Color, ...], tuple[int, ...]]]

# Office materials (the original look). Palettes overlap on purpose (walls, columns, beams and ceilings
# look alike; floors, doors and tables share woods) so colour alone does not give the class away.
_WHITES = ((0.86, 0.85, 0.82), (0.80, 0.80, 0.78), (0.84, 0.80, 0.72), (0.75, 0.78, 0.80), (0.82, 0.76, 0.70))
_WOODS = ((0.55, 0.38, 0.22), (0.65, 0.50, 0.33), (0.42, 0.30, 0.20), (0.72, 0.60, 0.45))
_GREYS = ((0.45, 0.45, 0.47), (0.30, 0.30, 0.32), (0.60, 0.60, 0.58))
_FABRICS = ((0.20, 0.22, 0.35), (0.45, 0.15, 0.15), (0.15, 0.15, 0.15), (0.35, 0.40, 0.30), (0.50, 0.45, 0.40))
OFFICE: Materials = {
    "wall": (_WHITES, (PLAIN,)),
    "ceiling": (_WHITES, (TILES, PLAIN)),
    "column": (_WHITES + _GREYS[2:], (PLAIN,)),
    "beam": (_WHITES, (PLAIN,)),
    "floor": (_WOODS + _GREYS + ((0.70, 0.68, 0.62),), (PLANKS, TILES, FABRIC)),
    "door": (_WOODS + _WHITES[:2] + _GREYS, (PLANKS, PLAIN)),
    "window": (((0.80, 0.88, 0.95), (0.92, 0.94, 0.96), (0.70, 0.80, 0.88)), (WINDOW,)),
    "board": (((0.93, 0.93, 0.92), (0.15, 0.25, 0.18), (0.62, 0.45, 0.30)), (PLAIN,)),
    "bookcase": (_WOODS + _GREYS, (BOOKS,)),
    "table": (_WOODS + _WHITES[:2] + _GREYS, (PLANKS, PLAIN)),
    "chair": (_FABRICS + _GREYS, (FABRIC, PLAIN)),
    "sofa": (_FABRICS + _WOODS[:1], (FABRIC,)),
}

# A residential building: painted walls, carpets and dark parquet, painted doors, pale furniture.
_PAINTS = ((0.78, 0.82, 0.70), (0.88, 0.80, 0.62), (0.80, 0.66, 0.58), (0.70, 0.78, 0.84), (0.86, 0.84, 0.76))
_DARK_WOODS = ((0.35, 0.22, 0.14), (0.45, 0.28, 0.16), (0.28, 0.20, 0.15))
_PALE_WOODS = ((0.80, 0.70, 0.55), (0.76, 0.66, 0.50))
_CARPETS = ((0.45, 0.40, 0.35), (0.30, 0.35, 0.45), (0.50, 0.30, 0.28))
_UPHOLSTERY = ((0.60, 0.52, 0.40), (0.25, 0.40, 0.38), (0.62, 0.30, 0.20), (0.40, 0.40, 0.55))
RESIDENTIAL: Materials = {
    "wall": (_PAINTS, (PLAIN, FABRIC)),
    "ceiling": (((0.92, 0.91, 0.88), (0.88, 0.86, 0.80)), (PLAIN,)),
    "column": (_PAINTS + ((0.90, 0.90, 0.88),), (PLAIN,)),
    "beam": (_DARK_WOODS + ((0.90, 0.90, 0.88),), (PLANKS, PLAIN)),
    "floor": (_DARK_WOODS + _CARPETS, (PLANKS, FABRIC)),
    "door": (((0.92, 0.92, 0.90), (0.55, 0.62, 0.58)) + _DARK_WOODS[:1], (PLAIN, PLANKS)),
    "window": (((0.85, 0.86, 0.80), (0.78, 0.84, 0.90)), (WINDOW,)),
    "board": (((0.20, 0.20, 0.22), (0.85, 0.80, 0.70)), (PLAIN,)),
    "bookcase": (_PALE_WOODS + ((0.90, 0.90, 0.88),), (BOOKS,)),
    "table": (_PALE_WOODS + _DARK_WOODS[1:2] + ((0.90, 0.90, 0.88),), (PLANKS, PLAIN)),
    "chair": (_UPHOLSTERY + _DARK_WOODS[:1], (FABRIC, PLANKS)),
    "sofa": (_UPHOLSTERY, (FABRIC,)),
}

# An industrial building: bare concrete and steel, epoxy floors, metal furniture.
_CONCRETES = ((0.62, 0.62, 0.60), (0.55, 0.56, 0.57), (0.68, 0.66, 0.62))
_METALS = ((0.40, 0.42, 0.45), (0.25, 0.27, 0.30), (0.70, 0.72, 0.74))
INDUSTRIAL: Materials = {
    "wall": (_CONCRETES + ((0.80, 0.80, 0.80),), (PLAIN, TILES)),
    "ceiling": (_CONCRETES + _METALS[:1], (PLAIN, PLANKS)),
    "column": (_CONCRETES + _METALS, (PLAIN,)),
    "beam": (_METALS + ((0.75, 0.35, 0.20),), (PLAIN,)),
    "floor": (((0.50, 0.52, 0.50), (0.35, 0.45, 0.40), (0.58, 0.55, 0.50)), (PLAIN, TILES)),
    "door": (_METALS + ((0.20, 0.35, 0.60),), (PLAIN,)),
    "window": (((0.75, 0.85, 0.90), (0.88, 0.92, 0.95)), (WINDOW,)),
    "board": (((0.95, 0.95, 0.95), (0.20, 0.22, 0.24)), (PLAIN,)),
    "bookcase": (_METALS, (BOOKS,)),
    "table": (_METALS + ((0.85, 0.85, 0.82),), (PLAIN,)),
    "chair": (_METALS + ((0.10, 0.10, 0.12), (0.70, 0.20, 0.15)), (PLAIN, FABRIC)),
    "sofa": (((0.15, 0.15, 0.15), (0.35, 0.30, 0.25)), (FABRIC,)),
}

#: Material sets by name.
MATERIALS: dict[str, Materials] = {"office": OFFICE, "residential": RESIDENTIAL, "industrial": INDUSTRIAL}


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Relative RGB of a black body at ``kelvin`` (1500..15000), normalised to 1 at 6500 K (a fit, ~1 %)."""
    if not 1500.0 <= float(kelvin) <= 15000.0:
        raise ValueError(f"colour temperature must be in [1500, 15000] K, got {kelvin!r}")

    def raw(k: float) -> np.ndarray:
        t = k / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
        return np.clip(np.array([r, g, b]), 0.0, 255.0)

    rel = raw(float(kelvin)) / raw(6500.0)
    return tuple(float(v) for v in rel)  # type: ignore[return-value]


@dataclass(frozen=True)
class SyntheticDomain:
    """How a synthetic building and camera look (ranges are drawn uniformly per room)."""

    name: str = "default"
    materials: str = "office"  # a MATERIALS key
    colour_temperature_k: float = 6500.0  # light colour; 6500 K = neutral
    exposure: float = 1.0  # multiplies the shaded radiance
    ambient: tuple[float, float] = (0.35, 0.5)  # share of ambient light
    light_gain: float = 1.6  # strength of the ceiling light
    texture_scale: float = 1.0  # multiplies the size of texture features
    noise_std: float = 4.0  # sensor noise, 8-bit levels
    blur_sigma_deg: float = 0.0  # optical blur (Gaussian sigma, degrees of view)
    gamma: float = 1.0  # tone curve: out = in ** (1 / gamma) on 0..1
    camera_height_m: tuple[float, float] = (1.0, 1.7)
    cap_top_deg: tuple[float, float] = (2.5, 9.0)  # unscanned cap around the zenith
    cap_bottom_deg: tuple[float, float] = (5.0, 15.0)  # unscanned cap around the nadir (tripod)

    def __post_init__(self) -> None:
        if self.materials not in MATERIALS:
            raise ValueError(f"materials must be one of {sorted(MATERIALS)}, got {self.materials!r}")
        kelvin_to_rgb(self.colour_temperature_k)
        for name in ("exposure", "light_gain", "texture_scale", "gamma"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("noise_std", "blur_sigma_deg"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name, lo_min, hi_max in (("ambient", 0.0, 1.0), ("camera_height_m", 0.05, 2.4),
                                     ("cap_top_deg", 0.0, 45.0), ("cap_bottom_deg", 0.0, 45.0)):  # fmt: skip
            lo, hi = (float(v) for v in getattr(self, name))
            if not lo_min <= lo <= hi <= hi_max:
                raise ValueError(f"{name} must be a range (lo, hi) with {lo_min} <= lo <= hi <= {hi_max}, got {(lo, hi)}")

    @property
    def style(self) -> Materials:
        return MATERIALS[self.materials]

    @property
    def light_rgb(self) -> np.ndarray:
        """float32 RGB multiplier of the light colour."""
        return np.asarray(kelvin_to_rgb(self.colour_temperature_k), np.float32)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The generator's original look (byte-identical output for existing seeds).
DEFAULT_DOMAIN = SyntheticDomain()

#: Named presets of ``panosamic synth --domain``.
DOMAINS: dict[str, SyntheticDomain] = {
    "default": DEFAULT_DOMAIN,
    # A home scanned with a consumer 360 camera: tungsten light, dim and noisy, soft optics, low
    # tripod, large caps, painted walls and carpets, coarser textures.
    "residential_warm": SyntheticDomain(
        name="residential_warm", materials="residential", colour_temperature_k=3000.0, exposure=0.8,
        ambient=(0.25, 0.4), light_gain=1.9, texture_scale=1.8, noise_std=8.0, blur_sigma_deg=0.5, gamma=1.15,
        camera_height_m=(0.7, 1.2), cap_top_deg=(10.0, 18.0), cap_bottom_deg=(14.0, 24.0),
    ),
    # A warehouse-like building scanned with a professional rig: cold daylight, bright and sharp,
    # tall tripod, small caps, concrete and steel, fine textures.
    "industrial_cold": SyntheticDomain(
        name="industrial_cold", materials="industrial", colour_temperature_k=8000.0, exposure=1.15,
        ambient=(0.45, 0.6), light_gain=1.4, texture_scale=0.6, noise_std=2.0, blur_sigma_deg=0.0, gamma=0.9,
        camera_height_m=(1.6, 2.0), cap_top_deg=(0.5, 3.0), cap_bottom_deg=(1.0, 6.0),
    ),
}  # fmt: skip


def get_domain(domain: str | SyntheticDomain | None) -> SyntheticDomain:
    """A preset by name, a :class:`SyntheticDomain` as is, ``None`` -> the default."""
    if domain is None:
        return DEFAULT_DOMAIN
    if isinstance(domain, SyntheticDomain):
        return domain
    if isinstance(domain, str) and domain in DOMAINS:
        return DOMAINS[domain]
    raise ValueError(f"unknown synthetic domain {domain!r}; expected one of {sorted(DOMAINS)} or a SyntheticDomain")
