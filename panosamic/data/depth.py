"""Depth encodings, per-area depth histograms, inlier thresholds and pseudo-disparity images.

Every dataset stores depth as a 16-bit PNG. Metres are ``raw * numerator / denominator``
(evaluated exactly as the reference does: an integer product, then a float64 division),
and one raw value marks "no reading". The model sees depth as a pseudo-disparity image
``(1 - clip(d, 0, T) / T) * valid * 255`` (float64, then float32; 3 equal channels): near is
bright, far and invalid are dark. ``T`` is the depth below which 99.5 % of the valid pixels of
the fold's training split lie, read off the summed per-area histograms written by ``prepare``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

#: Inlier ratios for which thresholds are computed and cached (the reference's list and order).
INLIER_RATIOS: tuple[float, ...] = (0.9, 0.95, 0.99, 0.995, 0.999, 1.0)
#: Inlier ratio used for training and evaluation.
DEFAULT_INLIER_RATIO: float = 0.995

DepthResize = Literal["reference", "hole-aware"]
DEPTH_RESIZE_MODES: tuple[str, ...] = ("reference", "hole-aware")

#: How close to 1 the resampled validity has to be for a pixel to count as "all neighbours valid".
_HOLE_AWARE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DepthEncoding:
    """How a dataset stores depth and bins its depth histograms.

    metres = raw * ``numerator`` / ``denominator``; ``invalid_value`` is the "no reading" raw value;
    histograms have ``hist_bins`` equal bins over ``[0, hist_max]`` metres, edges rounded to 0.1.
    """

    numerator: int
    denominator: int
    invalid_value: int
    hist_bins: int
    hist_max: float

    def to_metres(self, raw: np.ndarray) -> np.ndarray:
        """float64 metres of a raw depth array (same arithmetic as the reference)."""
        return np.asarray(raw).astype(np.int64) * self.numerator / self.denominator

    def valid(self, raw: np.ndarray) -> np.ndarray:
        """Validity of raw depth values (everything but ``invalid_value``)."""
        return np.asarray(raw) != self.invalid_value

    def histogram(self, raw: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(int64 counts, float64 edges rounded to 0.1) of the valid pixels' metric depth."""
        depth_m = self.to_metres(raw)[np.asarray(valid, dtype=bool)]
        counts, edges = np.histogram(depth_m, bins=self.hist_bins, range=(0.0, self.hist_max))
        return counts.astype(np.int64), np.round(edges, decimals=1)

    def empty_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        return self.histogram(np.zeros((0,), np.uint16), np.zeros((0,), bool))


#: Stanford2D3DS: 16-bit over 128 m (the reference divides by 65535), 65535 = missing.
STANFORD_DEPTH = DepthEncoding(numerator=128, denominator=65535, invalid_value=65535, hist_bins=1280, hist_max=128.0)
#: Matterport3D (360BEV): 0.25 mm units, 0 = missing; 10 bins per metre up to round(65535 / 4000) = 16 m.
MATTERPORT_DEPTH = DepthEncoding(numerator=1, denominator=4000, invalid_value=0, hist_bins=160, hist_max=16.0)
#: ToF-360: 1/512 m, 0 = no reading; 10 bins per metre up to round(65535 / 512) = 128 m (as the reference).
TOF360_DEPTH = DepthEncoding(numerator=1, denominator=512, invalid_value=0, hist_bins=1280, hist_max=128.0)
#: Structured3D: millimetres, 0 = missing; 1 m bins up to 65535 m (coarse, as the reference).
STRUCTURED3D_DEPTH = DepthEncoding(numerator=1, denominator=1000, invalid_value=0, hist_bins=65535, hist_max=65535.0)


def threshold_from_histogram(counts: Sequence[int], edges: Sequence[float], ratio: float) -> float:
    """Left edge of the first bin whose cumulative count reaches ``ratio`` of the total."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"inlier ratio must be in (0, 1], got {ratio}")
    counts = np.asarray(counts, dtype=np.int64)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"histogram with {counts.shape} counts needs {counts.size + 1} edges, got {edges.shape}")
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if cumulative.size else 0
    if total <= 0:
        raise ValueError("the depth histogram is empty (no valid depth pixel in these areas)")
    index = int(np.nonzero(cumulative >= ratio * total)[0][0])
    return float(edges[index])


def thresholds_from_histogram(counts: Sequence[int], edges: Sequence[float]) -> list[float]:
    """Thresholds for every ratio of :data:`INLIER_RATIOS`, in that order."""
    return [threshold_from_histogram(counts, edges, r) for r in INLIER_RATIOS]


def parse_area_histogram(entry: Any, area: str, source: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(int64 counts, float64 edges) of one entry of the per-area statistics file.

    ``[]`` (what the reference writes for an area without samples) gives None.
    """
    if isinstance(entry, list) and not entry:
        return None
    if not (isinstance(entry, list) and len(entry) == 2):
        raise ValueError(f"{source}: entry {area!r} must be [counts, edges], or [] for an area without samples")
    return np.asarray(entry[0], dtype=np.int64), np.asarray(entry[1], dtype=np.float64)


def sum_histograms(histograms: dict[str, tuple[np.ndarray, np.ndarray]], source: object) -> tuple[np.ndarray, np.ndarray]:
    """Summed counts of per-area histograms (all with one bin count) and the first area's edges."""
    if not histograms:
        raise ValueError(f"{source}: no histogram to sum")
    areas = list(histograms)
    total, edges = histograms[areas[0]][0].copy(), histograms[areas[0]][1]
    for area in areas[1:]:
        counts = histograms[area][0]
        if counts.shape != total.shape:
            raise ValueError(f"{source}: histogram of {area!r} has {counts.size} bins, expected {total.size}")
        total += counts
    return total, edges


def metres_to_disparity(depth_m: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """HxW float32 pseudo-disparity ``(1 - clip(d, 0, T) / T) * valid * 255``, computed in float64.

    Near is bright, far and invalid are dark; this is the depth image the model was trained on.
    """
    if not threshold > 0 or not np.isfinite(threshold):
        raise ValueError(f"depth threshold must be a positive number of metres, got {threshold!r}")
    ok = np.asarray(valid, dtype=bool)
    d = np.where(ok, np.asarray(depth_m, dtype=np.float64), 0.0)
    disparity = (1.0 - np.clip(d, 0.0, threshold) / threshold) * ok * 255.0
    return disparity.astype(np.float32)


def pseudo_disparity(raw: np.ndarray, valid: np.ndarray, threshold: float, encoding: DepthEncoding) -> np.ndarray:
    """3xHxW float32 pseudo-disparity image of raw stored depth (see :func:`metres_to_disparity`)."""
    disparity = metres_to_disparity(encoding.to_metres(raw), valid, threshold)
    return np.ascontiguousarray(np.broadcast_to(disparity, (3, *disparity.shape)))


def resize_mask(valid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to ``size`` = (width, height)."""
    image = Image.fromarray(np.asarray(valid, dtype=np.uint8) * 255)
    return np.asarray(image.resize(size, resample=Image.Resampling.NEAREST)) > 127


def resize_depth(
    raw: np.ndarray, size: tuple[int, int], encoding: DepthEncoding, mode: DepthResize = "reference"
) -> np.ndarray:
    """Resize 16-bit raw depth to ``size`` = (width, height).

    ``"reference"``: PIL Lanczos over everything, the "missing" values included (what the
    reference does and what the published checkpoints were trained on: pixels next to holes
    get depths that do not exist in the room). ``"hole-aware"``: the Lanczos value where every
    source pixel under the filter is valid, otherwise the nearest source pixel; pixels whose
    nearest source pixel is missing keep the missing value.
    """
    if mode not in DEPTH_RESIZE_MODES:
        raise ValueError(f"depth resize mode must be one of {DEPTH_RESIZE_MODES}, got {mode!r}")
    raw = np.asarray(raw, dtype=np.uint16)
    lanczos = np.asarray(Image.fromarray(raw).resize(size, resample=Image.Resampling.LANCZOS), dtype=np.uint16)
    if mode == "reference":
        return lanczos
    valid = encoding.valid(raw)
    support = np.asarray(
        Image.fromarray(valid.astype(np.float32)).resize(size, resample=Image.Resampling.LANCZOS), np.float64
    )
    nearest = np.asarray(Image.fromarray(raw).resize(size, resample=Image.Resampling.NEAREST), dtype=np.uint16)
    out = np.where(np.abs(support - 1.0) < _HOLE_AWARE_TOLERANCE, lanczos, nearest)
    out[~resize_mask(valid, size)] = encoding.invalid_value
    return out.astype(np.uint16)
