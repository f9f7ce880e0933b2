"""Real Stanford2D3DS labels and the reference's processed layout, read with our loader code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from panosamic.data import build_dataset, get_dataset_info
from panosamic.data.depth import STANFORD_DEPTH, threshold_from_histogram
from panosamic.data.stanford2d3ds import decode_semantic_rgb, load_instance_class_table

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "real" / "stanford2d3ds"
REFERENCE = FIXTURES / "reference_processed" / "stanford2d3ds"
SAMPLE = "camera_04a287849657478ea774727e5bff5202_office_3_frame_equirectangular_domain"
MAP_1024 = "pano/area_3_office_3_equirect_semantic_1024x512.png"


def _expected_counts(info) -> tuple[np.ndarray, int]:
    stats = json.loads((REAL / "expected_stats.json").read_text())[MAP_1024]["label13_pixel_counts"]
    return np.array([stats[name] for name in info.class_names], np.int64), stats["<UNK>"]


def test_real_semantic_map_decodes_to_the_expected_counts():
    info = get_dataset_info("stanford2d3ds")
    table = load_instance_class_table(REAL / "assets")
    rgb = np.asarray(Image.open(REAL / MAP_1024).convert("RGB"))
    labels = decode_semantic_rgb(rgb, table)
    assert labels.shape == (512, 1024) and labels.dtype == np.int64
    counts, unknown = _expected_counts(info)
    assert np.array_equal(np.bincount(labels[labels >= 0], minlength=info.num_classes), counts)
    assert int((labels == -1).sum()) == unknown
    # The derived label13 map of the fixture (0 = <UNK>, 1..13) agrees pixel by pixel.
    label13 = np.asarray(Image.open(REAL / "pano/area_3_office_3_equirect_label13_1024x512.png")).astype(np.int64)
    assert np.array_equal(labels, label13 - 1)


def test_stanford_class_order_is_name2label():
    # The display palette is ours (distinct colours, tests/test_viz.py), not HoHoNet's colors.npy:
    # colours never enter decoding; the class order does.
    name2label = json.loads((REAL / "assets" / "name2label.json").read_text())
    info = get_dataset_info("stanford2d3ds")
    assert [info.class_index(n) + 1 for n in info.class_names] == [name2label[n] for n in info.class_names]


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory) -> Path:
    """The reference-processed sample as it is, plus the real assets it needs, in a writable copy."""
    root = tmp_path_factory.mktemp("refproc") / "stanford2d3ds"
    shutil.copytree(REFERENCE, root)
    shutil.copytree(REAL / "assets", root / "assets")
    for path in [root, *root.rglob("*")]:  # the fixtures may be checked out read-only
        path.chmod(path.stat().st_mode | 0o200)
    return root


def _dataset(root: Path, modalities=("image", "depth", "normals"), **kwargs):
    return build_dataset(
        "stanford2d3ds", root, fold=1, split="train", modalities=modalities, augment=False,
        allow_missing_areas=True, **kwargs,
    )  # fmt: skip


def test_reference_processed_sample_loads(reference_root):
    with pytest.warns(UserWarning, match="missing"):
        ds = _dataset(reference_root)
    assert ds.sample_names == [f"area_3/{SAMPLE}"]
    assert ds.mask_black is False  # RGB-D-N: the reference does not mask black pixels
    inputs, labels = ds[0]
    assert set(inputs) == {"image", "depth", "normals"}
    for value in inputs.values():
        assert value.shape == (3, 512, 1024) and value.dtype == torch.float32
    assert labels.shape == (512, 1024) and labels.dtype == torch.int64

    # instances.webp is the raw map subsampled [2::4, 2::4], i.e. the 1024x512 fixture map.
    info = get_dataset_info("stanford2d3ds")
    counts, unknown = _expected_counts(info)
    y = labels.numpy()
    assert np.array_equal(np.bincount(y[y >= 0], minlength=info.num_classes), counts)
    assert int((y == -1).sum()) == unknown

    sample = reference_root / "area_3" / SAMPLE
    rgb = np.asarray(Image.open(sample / "rgb.webp").convert("RGB"))
    assert np.array_equal(inputs["image"].numpy(), rgb.transpose(2, 0, 1).astype(np.float32))
    normals = np.asarray(Image.open(sample / "normals.webp").convert("RGB"))
    assert np.array_equal(inputs["normals"].numpy(), normals.transpose(2, 0, 1).astype(np.float32))


def test_reference_depth_threshold_and_disparity(reference_root):
    stats = json.loads((REFERENCE / "cache_area_depth_statistics.json").read_text())["area_3"]
    sample = reference_root / "area_3" / SAMPLE
    raw = np.asarray(Image.open(sample / "depth.png")).astype(np.int64)
    valid = np.asarray(Image.open(sample / "depth_mask.webp"))[..., -1] > 0
    metres = raw * 128 / 65535
    # The cached histogram is the histogram of the processed depth (valid pixels).
    counts, _ = np.histogram(metres[valid], bins=1280, range=(0, 128))
    assert np.array_equal(counts, stats[0])

    with pytest.warns(UserWarning):
        ds = _dataset(reference_root, modalities=("image", "depth"))
    values = np.sort(metres[valid])
    direct = values[int(np.ceil(0.995 * values.size)) - 1]  # smallest depth with 99.5 % at or below it
    assert ds.depth_threshold <= direct < ds.depth_threshold + 0.1
    assert ds.depth_threshold == threshold_from_histogram(stats[0], stats[1], 0.995)
    cache = json.loads((reference_root / "cache_splits_depth_statistics.json").read_text())
    assert cache["1"][3] == ds.depth_threshold and len(cache["1"]) == 6

    t = ds.depth_threshold
    expected = ((1 - np.clip(metres, 0, t) / t) * valid * 255).astype(np.float32)
    depth = ds[0][0]["depth"].numpy()
    assert np.array_equal(depth, np.stack([expected] * 3))
    assert STANFORD_DEPTH.invalid_value == 65535


def test_mask_black_rule_on_reference_sample(reference_root, tmp_path):
    root = tmp_path / "stanford2d3ds"
    shutil.copytree(reference_root, root)
    rgb_path = root / "area_3" / SAMPLE / "rgb.webp"
    rgb = np.asarray(Image.open(rgb_path).convert("RGB")).copy()
    rgb[:12] = 0  # an unscanned cap, as in real panoramas
    Image.fromarray(rgb).save(rgb_path, format="WEBP", lossless=True)
    reference_root = root
    with pytest.warns(UserWarning):
        rgb_only = _dataset(reference_root, modalities=("image",))
    with pytest.warns(UserWarning):
        forced_off = _dataset(reference_root, modalities=("image",), mask_black=False)
    assert rgb_only.mask_black is True and forced_off.mask_black is False
    inputs, labels = rgb_only[0]
    _, unmasked = forced_off[0]
    black = inputs["image"].sum(0) == 0
    assert int(black.sum()) == 12 * 1024
    assert torch.all(labels[black] == -1)
    assert torch.equal(labels[~black], unmasked[~black])
    assert set(inputs) == {"image"}
