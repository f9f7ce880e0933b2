"""Colour science for display palettes: sRGB -> CIELAB, CIEDE2000 distances, a distinct default palette.

Palettes only colour pictures; nothing here touches labels. Pure numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["default_palette", "delta_e", "min_delta_e", "srgb_to_lab"]

#: D65 reference white (CIE XYZ, Y = 1).
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])


def srgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of ``... x 3`` sRGB colours in 0..255."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    if c.shape[-1:] != (3,):
        raise ValueError(f"colours must have a last axis of 3 (R, G, B), got shape {c.shape}")
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _WHITE_D65
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def delta_e(lab1, lab2) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB colours (broadcasting over leading axes)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    chroma0 = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma0, 0.0, dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, cp_bar, h_sum = (l1 + l2) / 2, (c1p + c2p) / 2, h1p + h2p
    h_bar = np.where(chroma0, h_sum, np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                                              np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    r_t = (-np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2))))
           * 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7)))
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def min_delta_e(palette) -> tuple[float, int, int]:
    """Smallest CIEDE2000 difference between two colours of ``palette`` and their indices."""
    lab = srgb_to_lab(np.asarray(palette).reshape(-1, 3))
    if len(lab) < 2:
        raise ValueError(f"need at least 2 colours to compare, got {len(lab)}")
    d = delta_e(lab[:, None], lab[None])
    d[np.diag_indices(len(lab))] = np.inf
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(d[i, j]), int(min(i, j)), int(max(i, j))


@lru_cache(maxsize=8)
def _greedy_palette(num_classes: int) -> np.ndarray:
    """Farthest-point colours (CIEDE2000) from an sRGB grid, starting away from black and white."""
    steps = np.linspace(0, 255, 18).round()
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    nearest = np.min(delta_e(lab[:, None], srgb_to_lab(np.array([[0, 0, 0], [255, 255, 255]]))[None]), axis=1)
    chosen = []
    while len(chosen) < num_classes:
        k = int(np.argmax(nearest))
        chosen.append(grid[k])
        nearest = np.minimum(nearest, delta_e(lab, lab[k]))
    out = np.asarray(chosen, dtype=np.uint8)
    out.setflags(write=False)
    return out


def default_palette(num_classes: int) -> np.ndarray:
    """A deterministic ``num_classes x 3`` uint8 palette of perceptually distinct colours.

    Each colour is the one of an 18-level sRGB grid farthest (CIEDE2000) from all earlier ones and
    from black (ignored pixels) and white (legend background); a shorter palette is a prefix of a
    longer one.
    """
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _greedy_palette(int(num_classes)).copy()
