"""Colour maps, overlays, legends and label PNGs (panosamic.viz)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from panosamic import viz
from panosamic.constants import IGNORE_INDEX
from panosamic.data.classes import DATASET_INFOS
from panosamic.data.registry import get_dataset_info
from panosamic.palettes import delta_e, min_delta_e, srgb_to_lab

#: Smallest CIEDE2000 difference between two colours of each dataset palette (measured: 21.2,
#: 16.0, 12.0; HoHoNet's Stanford2D3DS hue wheel had 2.8 and NYU40 2.7).
MIN_DELTA_E = {"stanford2d3ds": 20.0, "matterport3d": 15.0, "structured3d": 11.5}


def test_ciede2000_matches_published_pairs():
    # Sharma, Wu & Dalal (2005), test data pairs 1, 7, 17 and 25
    pairs = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425), ((50, 0, 0), (50, -1, 2), 2.3669),
             ((50, 2.5, 0), (73, 25, -18), 27.1492), ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644)]
    for lab1, lab2, expected in pairs:
        assert delta_e(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)
    np.testing.assert_allclose(srgb_to_lab([255, 255, 255]), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(srgb_to_lab([0, 0, 0]), [0, 0, 0], atol=1e-6)


def test_default_palette_is_deterministic_and_distinct():
    a, b = viz.default_palette(40), viz.default_palette(40)
    assert a.shape == (40, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert min_delta_e(a)[0] >= 16.0  # measured 16.8 (the old golden-ratio hue wheel: 0.9)
    assert min_delta_e(a[:13])[0] >= 25.0  # measured 26.6
    # a shorter palette is a prefix of a longer one (stable colours when classes are added)
    np.testing.assert_array_equal(viz.default_palette(13), a[:13])
    with pytest.raises(ValueError, match="positive"):
        viz.default_palette(0)


@pytest.mark.parametrize("name", sorted(DATASET_INFOS))
def test_dataset_palettes_are_distinct(name):
    info = get_dataset_info(name)
    d, i, j = min_delta_e(info.palette)
    assert d >= MIN_DELTA_E[name], f"{info.class_names[i]} / {info.class_names[j]}: CIEDE2000 {d:.1f}"
    lab = srgb_to_lab(info.palette)
    assert delta_e(lab, srgb_to_lab([0, 0, 0])).min() >= 20  # no class looks like ignored (black) pixels
    assert delta_e(lab, srgb_to_lab([255, 255, 255])).min() >= 15  # or like the white legend background


def test_stanford_pairs_that_looked_alike_are_apart():
    info = get_dataset_info("stanford2d3ds")
    lab = srgb_to_lab(info.palette)
    for a, b in (("beam", "board"), ("chair", "clutter"), ("floor", "sofa"), ("wall", "window")):
        assert delta_e(lab[info.class_index(a)], lab[info.class_index(b)]) >= 20, (a, b)


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
    assert bigger.size[1] > viz.legend(names, palette).size[1]
    only = viz.legend(names, palette, fractions=[0.5, 0.0, 0.5], only_present=True)
    assert only.size[1] < viz.legend(names, palette, fractions=[0.5, 0.0, 0.5]).size[1]
    assert not (np.asarray(only) == palette[1]).all(-1).any()
    with pytest.raises(ValueError, match="fractions"):
        viz.legend(names, palette, fractions=[1.0])
    with pytest.raises(ValueError, match="colours"):
        viz.legend(names, palette[:2])


def _swatch_colours(img, palette, min_pixels: int = 400) -> set[int]:
    """Indices of the palette colours that fill at least ``min_pixels`` pixels (a swatch)."""
    arr = np.asarray(img)
    return {i for i, c in enumerate(palette) if (arr == c).all(-1).sum() >= min_pixels}


def test_legend_lists_exactly_the_classes_given():
    info = get_dataset_info("stanford2d3ds")
    rows = viz.legend_entries(info.class_names)
    assert [text for _, text in rows] == list(info.class_names)
    assert _swatch_colours(viz.legend(info.class_names, info.palette), info.palette) == set(range(13))
    fractions = np.zeros(13)
    fractions[[11, 8, 3]] = (0.5, 0.3, 0.2)
    rows = viz.legend_entries(info.class_names, fractions.tolist(), only_present=True, sort_by_fraction=True)
    assert rows == [(11, "wall 50.0%"), (8, "floor 30.0%"), (3, "ceiling 20.0%")]
    img = viz.legend(info.class_names, info.palette, fractions=fractions.tolist(), only_present=True)
    assert _swatch_colours(img, info.palette) == {3, 8, 11}


def test_legend_is_readable_at_a_glance():
    info = get_dataset_info("stanford2d3ds")
    img = viz.legend(info.class_names, info.palette)
    assert img.size[1] >= 13 * 28 and img.size[0] >= 150  # was 82 x 292 px with an 11 px bitmap font
    forty = get_dataset_info("structured3d")
    wide = viz.legend(forty.class_names, forty.palette)
    assert wide.size[0] > wide.size[1] / 3  # 40 classes fold into columns instead of one long strip


def test_overlay_with_legend_lists_the_classes_present():
    info = get_dataset_info("stanford2d3ds")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 256, 3), dtype=np.uint8)
    labels = np.full((64, 256), 11)
    labels[40:] = 8
    labels[:8] = IGNORE_INDEX
    np.testing.assert_allclose(viz.class_fractions(labels, 13)[[8, 11]], [24 / 64, 32 / 64])
    img = viz.overlay_with_legend(image, labels, info.class_names, info.palette, alpha=0.5)
    arr = np.asarray(img)
    assert img.size[0] == 256 and img.size[1] > 64
    np.testing.assert_array_equal(arr[:64], viz.overlay(image, labels, info.palette, 0.5))
    assert _swatch_colours(arr[64:], info.palette, min_pixels=12 * 12) == {8, 11}  # swatches of 12 px text
    assert not any((arr[64:] == info.palette[k]).all(-1).any() for k in range(13) if k not in (8, 11))


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
