"""Colour maps, overlays, legends and label PNGs (panosamic.viz)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from panosamic import viz
from panosamic.constants import IGNORE_INDEX


def test_default_palette_is_deterministic_and_distinct():
    a, b = viz.default_palette(40), viz.default_palette(40)
    assert a.shape == (40, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert len({tuple(c) for c in a}) == 40
    # a shorter palette is a prefix of a longer one (stable colours when classes are added)
    np.testing.assert_array_equal(viz.default_palette(13), a[:13])
    with pytest.raises(ValueError, match="positive"):
        viz.default_palette(0)


def test_colorize_uses_palette_and_ignore_colour():
    palette = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 255]], np.uint8)
    labels = np.array([[0, 1, 2, IGNORE_INDEX], [2, 2, 1, 7]])
    out = viz.colorize(labels, palette, ignore_color=(1, 2, 3))
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    for (y, x), lab in np.ndenumerate(labels):
        expected = palette[lab] if 0 <= lab < 3 else (1, 2, 3)
        np.testing.assert_array_equal(out[y, x], expected)


def test_colorize_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        viz.colorize(np.zeros((2, 2, 2), int), viz.default_palette(3))
    with pytest.raises(TypeError, match="integers"):
        viz.colorize(np.zeros((2, 2)), viz.default_palette(3))
    with pytest.raises(ValueError, match="palette"):
        viz.colorize(np.zeros((2, 2), int), np.zeros((3, 4)))


def test_overlay_blends_and_keeps_ignored_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (8, 16))
    labels[0, :4] = IGNORE_INDEX
    palette = viz.default_palette(4)
    np.testing.assert_array_equal(viz.overlay(image, labels, palette, alpha=0.0), image)
    full = viz.overlay(image, labels, palette, alpha=1.0)
    np.testing.assert_array_equal(full[1:], viz.colorize(labels, palette)[1:])
    np.testing.assert_array_equal(full[0, :4], image[0, :4])  # ignored: image unchanged
    half = viz.overlay(image, labels, palette, alpha=0.5).astype(int)
    expected = np.rint(0.5 * palette[labels[3, 5]].astype(float) + 0.5 * image[3, 5]).astype(int)
    assert np.abs(half[3, 5] - expected).max() <= 1
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(image, labels, palette, alpha=1.5)
    with pytest.raises(ValueError, match="labels"):
        viz.overlay(image, labels[:4], palette)


def test_legend_has_a_swatch_per_class_in_its_colour():
    names = ("wall", "floor", "ceiling")
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    img = viz.legend(names, palette, swatch_size=16, padding=6)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    # each class colour occurs as a filled swatch (>= 14 x 14 interior pixels)
    for color in palette:
        assert (arr == color).all(-1).sum() >= 14 * 14
    # more classes -> taller legend; filtering absent classes -> shorter
    bigger = viz.legend(names + ("door",), viz.default_palette(4))
    assert bigger.size[1] > img.size[1]
    only = viz.legend(names, palette, fractions=[0.5, 0.0, 0.5], only_present=True)
    assert only.size[1] < viz.legend(names, palette, fractions=[0.5, 0.0, 0.5]).size[1]
    assert not (np.asarray(only) == palette[1]).all(-1).any()
    with pytest.raises(ValueError, match="fractions"):
        viz.legend(names, palette, fractions=[1.0])
    with pytest.raises(ValueError, match="colours"):
        viz.legend(names, palette[:2])


def _roundtrip(img: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    return np.asarray(Image.open(buf))


def test_label_image_roundtrips_8_and_16_bit():
    small = np.array([[0, 5], [12, 255]])
    np.testing.assert_array_equal(_roundtrip(viz.label_image(small)), small)
    assert viz.label_image(small).mode == "L"
    big = np.array([[0, 300], [1000, 40]])
    np.testing.assert_array_equal(_roundtrip(viz.label_image(big)).astype(int), big)
    with pytest.raises(ValueError, match="negative"):
        viz.label_image(np.array([[IGNORE_INDEX, 0]]))
