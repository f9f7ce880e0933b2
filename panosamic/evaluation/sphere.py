"""Metrics on the sphere: area-weighted scores, scores per latitude band, seam consistency.

An equirectangular pixel of row ``v`` (of ``H``) covers a solid angle proportional to the cosine of
the latitude of the row's centre, ``lat_v = 90 - (v + 0.5) / H * 180`` degrees: every row spans the same
``dlat`` and the exact area of a row, ``2 pi (sin(lat_v + dlat / 2) - sin(lat_v - dlat / 2)) / W`` per
pixel, is ``cos(lat_v)`` times a constant. The planar scores (the reference's) count every pixel once;
the spherical ones weight each pixel by ``cos(lat_v)``, so a pixel near a pole, a sliver of the sphere,
counts as little as it covers.

Everything here is numpy on a per-row confusion ``(H, K, K)`` (int64, rows = ground truth, columns =
prediction, one matrix per image row, summed over the split): its sum over rows is the planar confusion
(exactly), its ``cos(lat)``-weighted sum the spherical one, its sums over the rows of a band the band's.
The accumulation itself is :class:`panosamic.evaluation.metrics.RowConfusion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from panosamic.evaluation.metrics import SegmentationMetrics, metrics_from_confusion

__all__ = [
    "DEFAULT_LATITUDE_BANDS", "DEFAULT_SEAM_BAND_DEG", "LatitudeBand", "SeamConsistency", "SphereMetrics",
    "band_of_rows", "latitude_bands", "row_latitudes", "row_weights", "seam_columns", "sphere_metrics",
]  # fmt: skip

#: Latitude bands of the band table (30 degrees each).
DEFAULT_LATITUDE_BANDS = 6
#: Half-width (degrees of longitude) of the band around the +-180 degree seam where seam agreement is reported.
DEFAULT_SEAM_BAND_DEG = 10.0
#: How the spherical scores weight a pixel (written into the results).
WEIGHTING = "cos(latitude of the row centre): the pixel's solid angle"


def row_latitudes(height: int) -> np.ndarray:
    """Latitude (degrees, +90 = up) of the centre of each of ``height`` rows."""
    if int(height) < 1:
        raise ValueError(f"height must be >= 1, got {height}")
    return 90.0 - (np.arange(int(height), dtype=np.float64) + 0.5) / int(height) * 180.0


def row_weights(height: int) -> np.ndarray:
    """Solid-angle weight of a pixel of each row: ``cos`` of the row centre's latitude."""
    return np.cos(np.radians(row_latitudes(height)))


def latitude_bands(num_bands: int = DEFAULT_LATITUDE_BANDS) -> list[tuple[float, float]]:
    """``num_bands`` equal bands ``(lat_max, lat_min)`` (degrees) from the top (+90) to the bottom (-90)."""
    if isinstance(num_bands, bool) or not isinstance(num_bands, (int, np.integer)) or not 1 <= num_bands <= 180:
        raise ValueError(f"number of latitude bands must be an integer in 1..180, got {num_bands!r}")
    step = 180.0 / int(num_bands)
    return [(90.0 - i * step, 90.0 - (i + 1) * step) for i in range(int(num_bands))]


def band_of_rows(height: int, num_bands: int = DEFAULT_LATITUDE_BANDS) -> np.ndarray:
    """The band (0 = topmost) that holds the centre of each row."""
    latitude_bands(num_bands)  # checks num_bands
    index = np.floor((90.0 - row_latitudes(height)) / (180.0 / num_bands)).astype(np.int64)
    return np.clip(index, 0, num_bands - 1)


def seam_columns(width: int, band_deg: float = DEFAULT_SEAM_BAND_DEG) -> np.ndarray:
    """Columns whose centre lies within ``band_deg`` degrees of longitude of the +-180 degree seam (the
    image's left and right edges); at least the first and the last column."""
    if int(width) < 2:
        raise ValueError(f"width must be >= 2, got {width}")
    if not 0.0 < float(band_deg) <= 180.0:
        raise ValueError(f"seam band must be in (0, 180] degrees, got {band_deg}")
    longitude = -180.0 + (np.arange(int(width)) + 0.5) / int(width) * 360.0
    mask = 180.0 - np.abs(longitude) < float(band_deg)
    mask[[0, -1]] = True
    return mask


def _check_rows(row_confusion: np.ndarray) -> np.ndarray:
    rows = np.asarray(row_confusion)
    if rows.ndim != 3 or rows.shape[1] != rows.shape[2]:
        raise ValueError(f"per-row confusion must be (H, K, K), got shape {rows.shape}")
    return rows


def _degrees(lat: float) -> str:
    text = f"{lat:+.1f}".rstrip("0").rstrip(".")
    return "0" if float(text) == 0 else text


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


@dataclass(frozen=True)
class LatitudeBand:
    """The planar scores of one latitude band and its share of the labelled pixels and of the area."""

    lat_max: float
    lat_min: float
    metrics: SegmentationMetrics
    pixel_share: float  # share of the split's labelled pixels in this band
    area_share: float  # share of the split's labelled solid angle in this band

    @property
    def label(self) -> str:
        return f"{_degrees(self.lat_max)}..{_degrees(self.lat_min)}"

    def to_dict(self) -> dict[str, Any]:
        names = self.metrics.class_names or tuple(str(i) for i in range(self.metrics.num_classes))
        return {
            "band": self.label, "lat_max": self.lat_max, "lat_min": self.lat_min,
            "miou": _clean(self.metrics.miou), "macc": _clean(self.metrics.macc),
            "pixel_acc": _clean(self.metrics.pixel_acc), "num_pixels": self.metrics.num_pixels,
            "pixel_share": _clean(self.pixel_share), "area_share": _clean(self.area_share),
            "iou_per_class": {n: _clean(v) for n, v in zip(names, self.metrics.iou)},
        }  # fmt: skip


@dataclass(frozen=True)
class SphereMetrics:
    """Area-weighted scores (``weighted``: IoU, recall, their means, pixel accuracy from the
    ``cos(lat)``-weighted confusion) and the planar scores of each latitude band."""

    weighted: SegmentationMetrics
    bands: tuple[LatitudeBand, ...]

    def to_dict(self) -> dict[str, Any]:
        m = self.weighted
        names = m.class_names or tuple(str(i) for i in range(m.num_classes))
        return {
            "sphere": {
                "miou": _clean(m.miou), "macc": _clean(m.macc), "pixel_acc": _clean(m.pixel_acc),
                "iou_per_class": {n: _clean(v) for n, v in zip(names, m.iou)},
                "acc_per_class": {n: _clean(v) for n, v in zip(names, m.acc)},
                "weighting": WEIGHTING,
            },
            "latitude_bands": [b.to_dict() for b in self.bands],
        }  # fmt: skip


def sphere_metrics(
    row_confusion: np.ndarray, class_names: Sequence[str] = (), num_bands: int = DEFAULT_LATITUDE_BANDS
) -> SphereMetrics:
    """Spherical and per-band scores of a per-row confusion ``(H, K, K)``."""
    rows = _check_rows(row_confusion)
    h = rows.shape[0]
    weights = row_weights(h)
    weighted = metrics_from_confusion(np.tensordot(weights, rows.astype(np.float64), axes=1), class_names,
                                      exact=False)  # fmt: skip
    band = band_of_rows(h, num_bands)
    pixels = rows.sum(axis=(1, 2)).astype(np.float64)
    total_pixels, total_area = pixels.sum(), (weights * pixels).sum()
    bands = []
    for i, (lat_max, lat_min) in enumerate(latitude_bands(num_bands)):
        sel = band == i
        bands.append(LatitudeBand(
            lat_max=lat_max, lat_min=lat_min, metrics=metrics_from_confusion(rows[sel].sum(axis=0), class_names),
            pixel_share=float(pixels[sel].sum() / total_pixels) if total_pixels > 0 else float("nan"),
            area_share=float((weights * pixels)[sel].sum() / total_area) if total_area > 0 else float("nan"),
        ))  # fmt: skip
    return SphereMetrics(weighted=weighted, bands=tuple(bands))


@dataclass(frozen=True)
class SeamConsistency:
    """How a prediction changes when the panorama is rolled by half its width (the seam moved to the
    centre) and the prediction rolled back: agreement over every pixel and within the seam band, and
    the scores of the rolled run."""

    agree: int
    total: int
    band_agree: int
    band_total: int
    band_deg: float
    rolled: SegmentationMetrics

    @property
    def agreement(self) -> float:
        return self.agree / self.total if self.total else float("nan")

    @property
    def band_agreement(self) -> float:
        return self.band_agree / self.band_total if self.band_total else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement": _clean(self.agreement), "seam_band_agreement": _clean(self.band_agreement),
            "seam_band_deg": self.band_deg, "pixels": self.total, "seam_band_pixels": self.band_total,
            "rolled_miou": _clean(self.rolled.miou), "rolled_macc": _clean(self.rolled.macc),
            "shift": "half the width (180 degrees)",
        }  # fmt: skip
