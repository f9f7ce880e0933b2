"""Areas / scenes without usable samples (issue 17): empty folders load for every fold, split and
modality set, with the thresholds the dataset has without them, whatever their statistics entry."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_loaders import H, W, _fake_rgb, _write

from panosamic.data import build_dataset
from panosamic.data.base import AREA_DEPTH_CACHE, SAMPLES_CACHE, SPLIT_DEPTH_CACHE
from panosamic.data.matterport3d import SCENES as MP_SCENES, TRAIN_SCENES, VALIDATION_SCENES
from panosamic.data.prepare import prepare_dataset
from panosamic.data.stanford2d3ds import AREAS, FOLDS as STANFORD_FOLDS
from panosamic.data.structured3d import FOLDS as S3D_FOLDS, SCENES as S3D_SCENES
from panosamic.synth import make_synthetic_stanford

RGB, RGBD, RGBDN, RGBN = ("image",), ("image", "depth"), ("image", "depth", "normals"), ("image", "normals")
#: Structured3D rooms per scene; every other scene has an empty 2D_rendering folder. The only room of
#: scene_00001 and of scene_03251 is listed as broken; "101" is created before "100" and "1000".
S3D_ROOMS = {
    "scene_00000": ["101", "100", "1000"],
    "scene_00001": ["5"],
    "scene_00002": ["3"],
    "scene_03000": ["7"],
    "scene_03250": ["8"],
    "scene_03251": ["9"],
}
S3D_BROKEN = ("scene_00001", "scene_03251")


def _usable(rooms: dict[str, list[str]], empty: tuple[str, ...]) -> dict[str, list[str]]:
    return {area: sorted(names) for area, names in rooms.items() if area not in empty}


def _expected_names(usable: dict[str, list[str]], split_areas: tuple[str, ...]) -> list[str]:
    return [f"{a}/{n}" for a in split_areas if a in usable for n in usable[a]]


def _stats(root: Path) -> dict:
    return json.loads((root / AREA_DEPTH_CACHE).read_text())


def _rewrite_empty_entries(root: Path, empty: list[str] | tuple[str, ...], form: str, bins: int) -> None:
    """Give the empty areas' statistics entries the form "[]" (ours and the reference's), "absent"
    or "zeros" (the all-zero histogram earlier versions of our prepare wrote)."""
    stats = _stats(root)
    edges = next(e for e in stats.values() if e)[1]
    for area in empty:
        assert stats[area] == []
        if form == "absent":
            del stats[area]
        elif form == "zeros":
            stats[area] = [[0] * bins, edges]
    (root / AREA_DEPTH_CACHE).write_text(json.dumps(stats))
    (root / SPLIT_DEPTH_CACHE).unlink(missing_ok=True)


def _thresholds_without(root: Path, tmp: Path, name: str, empty: list[str], folds) -> dict[int, list[float]]:
    """Each fold's thresholds in a copy of ``root`` where the empty areas do not exist at all."""
    without = tmp / "without"
    shutil.rmtree(without, ignore_errors=True)
    shutil.copytree(root, without)
    stats, names = _stats(without), json.loads((without / SAMPLES_CACHE).read_text())
    for area in empty:
        shutil.rmtree(without / area)
        stats.pop(area, None)
        names.pop(area, None)
    (without / AREA_DEPTH_CACHE).write_text(json.dumps(stats))
    (without / SAMPLES_CACHE).write_text(json.dumps(names))
    (without / SPLIT_DEPTH_CACHE).unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thresholds = {
            fold: build_dataset(name, without, fold, "train", RGBD, allow_missing_areas=True).depth_thresholds()
            for fold in folds
        }
    shutil.rmtree(without)
    return thresholds


def _check_every_fold(name, root, folds, modality_sets, usable, thresholds) -> None:
    """Every fold, split and modality set builds without allow_missing_areas, lists exactly the
    usable samples (sorted by name within an area) and has the expected thresholds."""
    for fold, areas in folds.items():
        for split, split_areas in zip(("train", "test"), areas):
            for modalities in modality_sets:
                ds = build_dataset(name, root, fold, split, modalities, augment=False)
                assert ds.sample_names == _expected_names(usable, split_areas), (fold, split, modalities)
                assert ds.depth_threshold == thresholds[fold][3]  # image-only sets too
                inputs, labels = ds[len(ds) - 1]
                assert set(inputs) == set(modalities) and labels.shape == (H, W)
            assert ds.depth_thresholds() == thresholds[fold]


# --------------------------------------------------------------------------- Structured3D
@pytest.fixture(scope="module")
def structured3d(tmp_path_factory):
    base = tmp_path_factory.mktemp("s3d_empty")
    raw = base / "raw"
    rng = np.random.default_rng(2)
    for scene in S3D_SCENES:
        (raw / scene / "2D_rendering").mkdir(parents=True)
    for scene, rooms in S3D_ROOMS.items():
        for room in rooms:
            pano = raw / scene / "2D_rendering" / room / "panorama" / "full"
            depth = rng.integers(500, 9000, (H, W)).astype(np.uint16)
            depth[4, :6] = 0
            _write(pano / "rgb_rawlight.png", _fake_rgb(rng))
            _write(pano / "depth.png", depth)
            _write(pano / "normal.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            _write(pano / "semantic.png", rng.integers(0, 41, (H, W)).astype(np.uint8), mode="P")
    broken = [f"Structured3D/{s}/2D_rendering/{S3D_ROOMS[s][0]}/panorama/full/rgb_rawlight.png" for s in S3D_BROKEN]
    (raw / "assets").mkdir()
    (raw / "assets" / "broken_files.json").write_text(json.dumps(broken))
    report = prepare_dataset("structured3d", raw, base / "out", progress=False)
    assert report.num_samples == 6 and not report.skipped
    empty = sorted(set(S3D_SCENES) - set(_usable(S3D_ROOMS, S3D_BROKEN)))
    expected = _thresholds_without(base / "out", base, "structured3d", empty, S3D_FOLDS)
    return base / "out", empty, expected


def test_structured3d_prepare_writes_empty_entries(structured3d):
    out, empty, _ = structured3d
    stats, names = _stats(out), json.loads((out / SAMPLES_CACHE).read_text())
    assert len(empty) == 3500 - 4 and set(S3D_BROKEN) <= set(empty)
    assert [a for a, e in stats.items() if e] == sorted(_usable(S3D_ROOMS, S3D_BROKEN))
    assert all(stats[a] == [] and names[a] == [] for a in empty)
    assert all((out / a).is_dir() and not any((out / a).iterdir()) for a in empty)
    usable = list(_usable(S3D_ROOMS, S3D_BROKEN))
    assert all(len(stats[a][0]) == 65535 for a in usable)
    # 4 histograms of 65,535 bins (~0.8 MB each), not 3,500 (the old all-zero entries: ~2.7 GB).
    assert (out / AREA_DEPTH_CACHE).stat().st_size < (len(usable) + 1) * len(json.dumps(stats[usable[0]]))


def _direct_threshold_bin(root: Path, train_names: list[str]) -> float:
    """Whole-metre bin of the 99.5 % depth of the training samples (Structured3D: 1 m bins)."""
    values = []
    for name in train_names:
        raw = np.asarray(Image.open(root / name / "depth.png")).astype(np.int64)
        valid = np.asarray(Image.open(root / name / "depth_mask.webp"))[..., -1] > 0
        values.append(raw[valid] / 1000)
    values = np.sort(np.concatenate(values))
    return float(np.floor(values[int(np.ceil(0.995 * values.size)) - 1]))


@pytest.mark.parametrize(
    "form, modality_sets", [("[]", (RGB, RGBD, RGBDN, RGBN)), ("absent", (RGB, RGBD)), ("zeros", (RGBDN,))]
)
def test_structured3d_empty_scenes_load_everywhere(structured3d, tmp_path, form, modality_sets):
    out, empty, expected = structured3d
    root = tmp_path / "s3d"
    shutil.copytree(out, root)
    # The all-zero form only for the broken scenes: 3,496 such entries would be a 2.7 GB file.
    _rewrite_empty_entries(root, S3D_BROKEN if form == "zeros" else empty, form, bins=65535)
    usable = _usable(S3D_ROOMS, S3D_BROKEN)
    assert _direct_threshold_bin(root, _expected_names(usable, S3D_FOLDS[1][0])) == expected[1][3]
    _check_every_fold("structured3d", root, S3D_FOLDS, modality_sets, usable, expected)


def test_structured3d_order_is_sorted_name_whatever_the_sample_list(structured3d, tmp_path):
    out, _, _ = structured3d
    root = tmp_path / "s3d"
    shutil.copytree(out, root)
    names = json.loads((root / SAMPLES_CACHE).read_text())
    names["scene_00000"] = ["101", "1000", "100"]  # a directory order, as the reference may list it
    (root / SAMPLES_CACHE).write_text(json.dumps(names))
    ds = build_dataset("structured3d", root, 1, "train", RGB)
    assert ds.sample_names[:3] == ["scene_00000/100", "scene_00000/1000", "scene_00000/101"]
    (root / SAMPLES_CACHE).unlink()  # without the list: the folders, sorted by name
    assert build_dataset("structured3d", root, 1, "train", RGB).sample_names == ds.sample_names


def test_empty_entry_of_an_area_with_samples_is_an_error(structured3d, tmp_path):
    out, _, _ = structured3d
    root = tmp_path / "s3d"
    shutil.copytree(out, root)
    stats = _stats(root)
    stats["scene_00002"] = []
    (root / AREA_DEPTH_CACHE).write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r"'scene_00002' is \[\] but .*scene_00002 has samples"):
        build_dataset("structured3d", root, 2, "test", RGBD)
    stats["scene_00002"] = "nonsense"
    (root / AREA_DEPTH_CACHE).write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r"'scene_00002' must be \[counts, edges\], or \[\]"):
        build_dataset("structured3d", root, 2, "test", RGBD)
    del stats["scene_00002"]  # an area with samples still needs its histogram
    (root / AREA_DEPTH_CACHE).write_text(json.dumps(stats))
    with pytest.raises(FileNotFoundError, match="scene_00002"):
        build_dataset("structured3d", root, 2, "test", RGBD)


# --------------------------------------------------------------------------- Matterport3D
MP_EMPTY = (TRAIN_SCENES[3], VALIDATION_SCENES[0])


@pytest.fixture(scope="module")
def matterport(tmp_path_factory):
    base = tmp_path_factory.mktemp("mp3d_empty")
    rng = np.random.default_rng(3)
    for scene in MP_SCENES:
        for kind in ("rgb", "depth", "semantic"):
            (base / "raw" / scene / kind).mkdir(parents=True)
        if scene in MP_EMPTY:
            continue
        _write(base / "raw" / scene / "rgb" / "pano_a.jpg", _fake_rgb(rng), fmt="JPEG")
        _write(base / "raw" / scene / "depth" / "pano_a.png", rng.integers(2000, 30000, (H, W)).astype(np.uint16))
        _write(base / "raw" / scene / "semantic" / "pano_a.png", rng.integers(0, 42, (H, W)).astype(np.uint8))
    report = prepare_dataset("matterport3d", base / "raw", base / "out", scale=1.0, progress=False)
    assert report.num_samples == 84
    return base / "out", {s: ["pano_a"] for s in MP_SCENES if s not in MP_EMPTY}


@pytest.mark.parametrize("form", ["[]", "absent"])
def test_matterport_empty_scenes_load_everywhere(matterport, tmp_path, form):
    out, usable = matterport
    from panosamic.data.matterport3d import FOLDS

    assert all(_stats(out)[s] == [] for s in MP_EMPTY)
    root = tmp_path / "mp"
    shutil.copytree(out, root)
    expected = _thresholds_without(out, tmp_path, "matterport3d", list(MP_EMPTY), FOLDS)
    _rewrite_empty_entries(root, list(MP_EMPTY), form, bins=160)
    _check_every_fold("matterport3d", root, FOLDS, (RGB, RGBD), usable, expected)


# --------------------------------------------------------------------------- Stanford2D3DS
@pytest.fixture(scope="module")
def stanford(tmp_path_factory):
    base = tmp_path_factory.mktemp("s2d3ds_empty")
    manifest = make_synthetic_stanford(base / "raw", areas=AREAS, rooms_per_area=2, size=(H, W), seed=7)
    for s in manifest.samples_in("area_2"):  # area_2 keeps its folders but loses its panoramas
        for path in (s.rgb_path, s.depth_path, s.normals_path, s.semantic_path):
            path.unlink()
    report = prepare_dataset("stanford2d3ds", base / "raw", base / "out", progress=False)
    assert report.num_samples == 12
    usable = {a: sorted(s.name for s in manifest.samples_in(a)) for a in AREAS if a != "area_2"}
    return base / "out", usable


@pytest.mark.parametrize("form", ["[]", "absent"])
def test_stanford_empty_area_loads_everywhere(stanford, tmp_path, form):
    out, usable = stanford
    assert _stats(out)["area_2"] == [] and not any((out / "area_2").iterdir())
    root = tmp_path / "s2d3ds"
    shutil.copytree(out, root)
    expected = _thresholds_without(out, tmp_path, "stanford2d3ds", ["area_2"], STANFORD_FOLDS)
    _rewrite_empty_entries(root, ["area_2"], form, bins=1280)
    _check_every_fold("stanford2d3ds", root, STANFORD_FOLDS, (RGB, RGBD, RGBDN, RGBN), usable, expected)
    cache = json.loads((root / SPLIT_DEPTH_CACHE).read_text())
    assert {k: cache[k] for k in ("1", "2", "3")} == {str(f): t for f, t in expected.items()}
