"""Depth histograms, thresholds, pseudo-disparity, resizing (reference facts of §14), class metadata."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from panosamic.data import get_dataset_info
from panosamic.data.classes import DATASET_NAMES
from panosamic.data.depth import (
    INLIER_RATIOS,
    MATTERPORT_DEPTH,
    STANFORD_DEPTH,
    STRUCTURED3D_DEPTH,
    pseudo_disparity,
    resize_depth,
    resize_mask,
    threshold_from_histogram,
    thresholds_from_histogram,
)
from panosamic.data.registry import get_entry


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3000),
    ratio=st.sampled_from(INLIER_RATIOS),
    scale=st.floats(0.5, 40.0),
)
def test_threshold_is_the_bin_of_the_direct_percentile(seed, n, ratio, scale):
    rng = np.random.default_rng(seed)
    metres = rng.gamma(2.0, scale / 4, n).clip(0, 127.9)
    raw = np.round(metres * 65535 / 128).astype(np.uint16)
    valid = np.ones(n, bool)
    counts, edges = STANFORD_DEPTH.histogram(raw, valid)
    t = threshold_from_histogram(counts, edges, ratio)
    # Direct: the smallest depth below or at which a `ratio` share of the pixels lies.
    direct = np.sort(STANFORD_DEPTH.to_metres(raw))[max(int(np.ceil(ratio * n)), 1) - 1]
    assert t <= direct + 1e-9 < t + 0.1 + 1e-9
    assert round(t * 10) == pytest.approx(t * 10)


def test_histogram_layouts():
    for enc, bins, top in ((STANFORD_DEPTH, 1280, 128.0), (MATTERPORT_DEPTH, 160, 16.0), (STRUCTURED3D_DEPTH, 65535, 65535.0)):
        counts, edges = enc.empty_histogram()
        assert counts.shape == (bins,) and edges.shape == (bins + 1,)
        assert edges[0] == 0 and edges[-1] == top
        assert np.array_equal(edges, np.round(edges, 1))
    raw = np.array([0, 65535, 32768, 100], np.uint16)
    counts, _ = STANFORD_DEPTH.histogram(raw, STANFORD_DEPTH.valid(raw))
    assert counts.sum() == 3  # the 65535 hole is not counted
    raw = np.array([0, 4000, 8000], np.uint16)
    counts, _ = MATTERPORT_DEPTH.histogram(raw, MATTERPORT_DEPTH.valid(raw))
    assert counts.sum() == 2 and counts[10] == 1 and counts[20] == 1


def test_thresholds_for_all_ratios_and_errors():
    counts = np.zeros(1280, np.int64)
    counts[[10, 50, 100]] = [900, 95, 5]
    edges = np.round(np.linspace(0, 128, 1281), 1)
    # cumulative 900, 995, 1000: 99.5 % is reached exactly at the second bin ("reaches" = >=)
    assert thresholds_from_histogram(counts, edges) == [1.0, 5.0, 5.0, 5.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="empty"):
        threshold_from_histogram(np.zeros(1280), edges, 0.995)
    with pytest.raises(ValueError, match="edges"):
        threshold_from_histogram(counts, edges[:-1], 0.995)
    with pytest.raises(ValueError, match="ratio"):
        threshold_from_histogram(counts, edges, 1.5)


def test_pseudo_disparity_formula():
    raw = np.array([[0, 1000, 5000], [20000, 65535, 30000]], np.uint16)
    valid = STANFORD_DEPTH.valid(raw)
    out = pseudo_disparity(raw, valid, 6.2, STANFORD_DEPTH)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    d = raw.astype(np.float64) * 128 / 65535
    expected = (255 * (1 - np.minimum(d, 6.2) / 6.2) * valid).astype(np.float32)
    assert np.array_equal(out[0], expected) and np.array_equal(out[2], expected)
    assert out[0, 0, 0] == 255 and out[0, 1, 1] == 0 and out[0, 1, 0] == 0  # near bright, hole / far dark
    with pytest.raises(ValueError):
        pseudo_disparity(raw, valid, 0.0, STANFORD_DEPTH)


def test_nearest_resize_is_a_subsample_at_quarter_scale():
    rng = np.random.default_rng(0)
    mask = rng.random((64, 128)) > 0.3
    assert np.array_equal(resize_mask(mask, (32, 16)), mask[2::4, 2::4])
    labels = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    small = np.asarray(Image.fromarray(labels).resize((32, 16), Image.Resampling.NEAREST))
    assert np.array_equal(small, labels[2::4, 2::4])


def _room_with_hole() -> np.ndarray:
    """A 3 m room (raw units of Stanford depth) with a block of missing depth."""
    raw = np.full((64, 128), round(3.0 * 65535 / 128), np.uint16)
    raw[:, 64:] = round(4.0 * 65535 / 128)
    raw[20:40, 30:50] = 65535
    return raw


def test_reference_resize_invents_depth_next_to_holes_hole_aware_does_not():
    raw = _room_with_hole()
    size = (32, 16)
    valid_small = resize_mask(STANFORD_DEPTH.valid(raw), size)
    ref = STANFORD_DEPTH.to_metres(resize_depth(raw, size, STANFORD_DEPTH, "reference"))
    fixed = STANFORD_DEPTH.to_metres(resize_depth(raw, size, STANFORD_DEPTH, "hole-aware"))
    # Reference (Lanczos through the 65535 holes): valid pixels get depths far beyond the room.
    assert ref[valid_small].max() > 10.0
    # Hole-aware: every valid pixel stays within the room's range (up to Lanczos ringing at the step).
    assert fixed[valid_small].min() > 2.9 and fixed[valid_small].max() < 4.1
    assert np.all(resize_depth(raw, size, STANFORD_DEPTH, "hole-aware")[~valid_small] == 65535)
    # Away from the hole, both agree exactly.
    far = np.zeros_like(valid_small)
    far[:, :4] = True
    assert np.array_equal(ref[far], fixed[far])
    with pytest.raises(ValueError, match="resize"):
        resize_depth(raw, size, STANFORD_DEPTH, "cubic")


def test_dataset_infos():
    sizes = {"stanford2d3ds": 13, "matterport3d": 20, "structured3d": 40, "tof360": 13}  # tof360: Stanford's classes
    fixed = {n for n in DATASET_NAMES if get_entry(n).info is not None}  # folder: classes come with the data
    assert fixed == set(sizes)
    for name in sizes:
        info = get_dataset_info(name)
        assert info.num_classes == sizes[name] == len(info.class_names)
        assert info.palette.shape == (info.num_classes, 3) and info.palette.dtype == np.uint8
        assert len({tuple(c) for c in info.palette}) == info.num_classes  # distinct colours
    assert get_dataset_info(" Stanford2D3DS ").name == "stanford2d3ds"
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset_info("scannet")
    with pytest.raises(TypeError):
        get_dataset_info(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no class"):
        get_dataset_info("stanford2d3ds").class_index("bed")
