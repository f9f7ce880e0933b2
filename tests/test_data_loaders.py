"""Loaders: Matterport3D and Structured3D on tiny fake raw folders, bad input, caches, batching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from panosamic.data import PanoramaAugmentation, build_dataset, collate_panoramas
from panosamic.data.matterport3d import SCENES, TEST_SCENES, TRAIN_SCENES, VALIDATION_SCENES
from panosamic.data.prepare import prepare_dataset
from panosamic.synth import make_synthetic_stanford

H, W = 16, 32
# Raw mpcat40 id -> expected class name (None = ignored), straight from the spec's table.
MPCAT40_EXPECTED = {
    0: None, 1: "wall", 7: "furniture", 8: "objects", 12: "objects", 17: "ceiling", 19: "chair",
    26: "counter", 31: "shelving", 32: "window", 36: "furniture", 41: None,
}  # fmt: skip


def _write(path: Path, array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode == "P":
        image = image.convert("P") if array.ndim == 3 else Image.fromarray(array, mode="L").convert("P")
        image.putpalette(list(np.random.default_rng(0).integers(0, 255, 768)))
    image.save(path, format=fmt)


def _fake_rgb(rng: np.random.Generator) -> np.ndarray:
    rgb = rng.integers(40, 255, (H, W, 3), dtype=np.uint8)
    rgb[:3] = 0  # black cap
    return rgb


@pytest.fixture(scope="module")
def matterport(tmp_path_factory):
    base = tmp_path_factory.mktemp("mp3d")
    rng = np.random.default_rng(0)
    ids = np.array(list(MPCAT40_EXPECTED))
    truth = {}
    for scene in SCENES:
        sem = ids[rng.integers(0, len(ids), (H, W))].astype(np.uint8)
        depth = rng.integers(2000, 30000, (H, W)).astype(np.uint16)
        depth[5, :8] = 0
        _write(base / "raw" / scene / "rgb" / "pano_a.jpg", _fake_rgb(rng), fmt="JPEG")
        _write(base / "raw" / scene / "depth" / "pano_a.png", depth)
        _write(base / "raw" / scene / "semantic" / "pano_a.png", sem)
        truth[f"{scene}/pano_a"] = (sem, depth)
    report = prepare_dataset("matterport3d", base / "raw", base / "out", scale=0.5, progress=False)
    assert report.num_samples == 86
    return base / "out", truth


def test_matterport_scene_list():
    assert (len(TRAIN_SCENES), len(VALIDATION_SCENES), len(TEST_SCENES), len(set(SCENES))) == (61, 7, 18, 86)


def test_matterport_folds_labels_and_depth(matterport):
    out, truth = matterport
    info_names = build_dataset("matterport3d", out, fold=1, split="train").info.class_names
    lut = {k: (-1 if v is None else info_names.index(v)) for k, v in MPCAT40_EXPECTED.items()}
    for fold, test_scenes in ((1, VALIDATION_SCENES), (2, TEST_SCENES)):
        ds = build_dataset("matterport3d", out, fold=fold, split="test", augment=False)
        assert ds.mask_black is True  # always, as in the reference
        assert [n.split("/")[0] for n in ds.sample_names] == list(test_scenes)
        inputs, labels = ds[0]
        assert set(inputs) == {"image", "depth"} and labels.shape == (H // 2, W // 2)
        sem, depth = truth[ds.sample_names[0]]
        expected = np.vectorize(lut.get)(sem[1::2, 1::2])
        rgb = np.asarray(Image.open(ds.sample_dirs[0] / "rgb.webp"))
        expected[rgb.sum(-1) == 0] = -1
        assert np.array_equal(labels.numpy(), expected)
        valid = (depth != 0)[1::2, 1::2]
        assert torch.all(inputs["depth"][:, ~torch.from_numpy(valid)] == 0)
    train = build_dataset("matterport3d", out, fold=2, split="train", augment=False)
    assert len(train) == 61
    # Depth statistics: 0.25 mm units, 10 bins per metre to 16 m; cache is a plain list.
    stats = json.loads((out / "cache_area_depth_statistics.json").read_text())
    assert len(stats[SCENES[0]][0]) == 160
    assert isinstance(json.loads((out / "cache_splits_depth_statistics.json").read_text()), list)
    with pytest.raises(ValueError, match="no normals"):
        build_dataset("matterport3d", out, modalities=("image", "normals"))
    off = build_dataset("matterport3d", out, fold=1, split="test", mask_black=False, augment=False)
    assert int((off[0][1] == -1).sum()) < int((ds[0][1] == -1).sum())


def test_matterport_bad_label_ids_are_an_error(matterport, tmp_path):
    out, _ = matterport
    root = tmp_path / "mp"
    shutil.copytree(out, root)
    ds = build_dataset("matterport3d", root, fold=1, split="test", augment=False)
    Image.fromarray(np.full((H // 2, W // 2), 99, np.uint8)).save(ds.sample_dirs[0] / "semantics.png")
    with pytest.raises(RuntimeError, match=r"0..41"):
        ds[0]


@pytest.fixture(scope="module")
def structured3d(tmp_path_factory):
    base = tmp_path_factory.mktemp("s3d")
    raw = base / "raw"
    rng = np.random.default_rng(1)
    truth = {}
    rooms = {"scene_00000": ["100", "101"], "scene_00001": ["222", "2220"], "scene_03000": ["7"], "scene_03250": ["8"]}
    for scene, ids in rooms.items():
        for room in ids:
            pano = raw / scene / "2D_rendering" / room / "panorama" / "full"
            rgba = np.concatenate([_fake_rgb(rng), np.full((H, W, 1), 255, np.uint8)], -1)
            sem = rng.integers(0, 41, (H, W)).astype(np.uint8)
            depth = rng.integers(500, 9000, (H, W)).astype(np.uint16)
            depth[8, 8:] = 0
            _write(pano / "rgb_rawlight.png", rgba)
            _write(pano / "depth.png", depth)
            _write(pano / "normal.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            _write(pano / "semantic.png", sem, mode="P")
            truth[f"{scene}/{room}"] = sem
    broken = ["Structured3D/scene_00001/2D_rendering/222/panorama/full/rgb_rawlight.png", "x/perspective/full/y.png"]
    (raw / "assets").mkdir()
    (raw / "assets" / "broken_files.json").write_text(json.dumps(broken))
    report = prepare_dataset("structured3d", raw, base / "out", progress=False)
    return base / "out", truth, report


def test_structured3d_splits_labels_and_broken_rooms(structured3d):
    out, truth, report = structured3d
    assert report.num_samples == 5  # room 222 is listed as broken, 2220 is not
    with pytest.warns(UserWarning, match="missing"):
        train = build_dataset("structured3d", out, 1, "train", ("image", "depth", "normals"), augment=False, allow_missing_areas=True)
    assert train.sample_names == ["scene_00000/100", "scene_00000/101", "scene_00001/2220"]
    for fold, name in ((1, "scene_03000/7"), (2, "scene_03250/8")):
        with pytest.warns(UserWarning):
            test = build_dataset("structured3d", out, fold, "test", augment=False, allow_missing_areas=True)
        assert test.sample_names == [name]
        assert test.depth_threshold == train.depth_threshold  # whole metres (1 m bins)
        assert float(test.depth_threshold).is_integer()
    for i, name in enumerate(train.sample_names):
        inputs, labels = train[i]
        expected = truth[name].astype(np.int64) - 1
        expected[np.asarray(Image.open(train.sample_dirs[i] / "rgb.webp").convert("RGB")).sum(-1) == 0] = -1
        assert np.array_equal(labels.numpy(), expected)
        assert inputs["normals"].shape == (3, H, W)
    with pytest.raises(FileNotFoundError, match="missing"):
        build_dataset("structured3d", out, 1, "train")  # 2997 training scenes are absent


@pytest.fixture(scope="module")
def stanford(tmp_path_factory):
    base = tmp_path_factory.mktemp("s2d3ds")
    make_synthetic_stanford(base / "raw", rooms_per_area=1, size=(H, W), seed=5)
    prepare_dataset("stanford2d3ds", base / "raw", base / "out", progress=False)
    return base / "out"


def test_bad_input_is_reported_clearly(stanford, tmp_path):
    with pytest.raises(FileNotFoundError, match="panosamic prepare"):
        build_dataset("stanford2d3ds", tmp_path / "absent")
    with pytest.raises(ValueError, match="fold"):
        build_dataset("stanford2d3ds", stanford, fold=4)
    with pytest.raises(ValueError, match="split"):
        build_dataset("stanford2d3ds", stanford, split="val")
    with pytest.raises(ValueError, match="modality"):
        build_dataset("stanford2d3ds", stanford, modalities=("image", "thermal"))
    with pytest.raises(ValueError, match="inlier"):
        build_dataset("stanford2d3ds", stanford, depth_inlier_ratio=0.5)
    with pytest.raises(TypeError):
        build_dataset("stanford2d3ds", stanford, augment="yes")
    root = tmp_path / "copy"
    shutil.copytree(stanford, root)
    shutil.rmtree(root / "area_2")
    with pytest.raises(FileNotFoundError, match="area_2"):
        build_dataset("stanford2d3ds", root, fold=2, split="test")
    for d in (root / "area_4").iterdir():
        shutil.rmtree(d)
    (root / "cache_samples_file_names.json").unlink()
    with pytest.raises(ValueError, match="no samples"), pytest.warns(UserWarning):
        build_dataset("stanford2d3ds", root, fold=2, split="test", allow_missing_areas=True)
    (root / "cache_samples_file_names.json").write_text(json.dumps({"area_5a": ["gone"]}))
    with pytest.raises(FileNotFoundError, match="gone"):
        build_dataset("stanford2d3ds", root, fold=1, split="test")
    shutil.rmtree(root / "assets")
    with pytest.raises(FileNotFoundError, match=r"semantic_labels.json"):
        build_dataset("stanford2d3ds", root, fold=1, split="test")


def test_class_pixel_counts_are_cached_per_fold_split_and_mask(stanford, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(stanford, root)
    (root / "cache_class_weights.json").write_text(json.dumps({"1": [1.0] * 13}))  # a reference entry
    ds = build_dataset("stanford2d3ds", root, fold=1, split="train", modalities=("image",), augment=False)
    assert ds.mask_black is True
    direct = sum(np.bincount(ds[i][1].numpy()[ds[i][1].numpy() >= 0], minlength=13) for i in range(len(ds)))
    counts = ds.class_pixel_counts()
    assert counts.dtype == np.int64 and np.array_equal(counts, direct)
    cache = json.loads((root / "cache_class_weights.json").read_text())
    assert cache["1"] == [1.0] * 13 and cache[ds.class_weights_key()]["counts"] == direct.tolist()
    cache[ds.class_weights_key()]["counts"] = list(range(13))
    (root / "cache_class_weights.json").write_text(json.dumps(cache))
    assert ds.class_pixel_counts().tolist() == list(range(13))  # read from the cache
    unmasked = build_dataset("stanford2d3ds", root, fold=1, split="train", modalities=("image",), mask_black=False)
    assert unmasked.class_weights_key() != ds.class_weights_key()
    assert unmasked.class_pixel_counts().sum() >= direct.sum()


def test_augmentation_default_and_reproducible_epochs(stanford):
    train = build_dataset("stanford2d3ds", stanford, fold=1, split="train", modalities=("image", "depth", "normals"))
    test = build_dataset("stanford2d3ds", stanford, fold=1, split="test")
    assert train.augmentation is not None and test.augmentation is None
    train.set_epoch(2)
    a = [train[i] for i in range(len(train))]
    b = [train[i] for i in range(len(train))]
    assert all(torch.equal(x[1], y[1]) and torch.equal(x[0]["depth"], y[0]["depth"]) for x, y in zip(a, b))
    always = build_dataset("stanford2d3ds", stanford, fold=1, split="train", augment=PanoramaAugmentation(p_flip=1.0, p_roll=0, p_permute=0))
    plain = build_dataset("stanford2d3ds", stanford, fold=1, split="train", augment=False)
    assert torch.equal(always[0][1], plain[0][1].flip(-1))


def test_collate(stanford):
    ds = build_dataset("stanford2d3ds", stanford, fold=1, split="test", augment=False)
    inputs, labels = collate_panoramas([ds[0], ds[1]])
    assert isinstance(inputs, list) and len(inputs) == 2 and labels.shape == (2, H, W)
    with pytest.raises(ValueError, match="one size"):
        collate_panoramas([ds[0], (ds[1][0], ds[1][1][:, :4])])
    with pytest.raises(ValueError, match="empty"):
        collate_panoramas([])
