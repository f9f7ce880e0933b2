"""Pinhole datasets: prepare folder --pinhole, stanford2d3ds-pinhole, projection onto the canvas, mixing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.pinhole import (
    MixedDataset,
    PinholeDataset,
    ProjectedPinholeDataset,
    ProjectionSettings,
    build_training_sources,
)
from panosamic.data.pinhole_layout import parse_range, parse_source
from panosamic.data.pinhole_prepare import prepare_pinhole_folder, prepare_stanford_pinhole
from panosamic.geometry import PinholeCamera, erp_to_pinhole

CLASSES = {
    "classes": [
        {"name": n, "color": [i * 40, 255 - i * 40, 7 * i]}
        for i, n in enumerate(["floor", "wall", "chair", "lamp"])
    ],
    "ignore_index": 255,
}


def _photo(rng, w, h):
    labels = rng.integers(0, 4, (h // 4, w // 4)).repeat(4, 0).repeat(4, 1).astype(np.uint8)
    labels[:2, :2] = 255
    palette = np.array([c["color"] for c in CLASSES["classes"]] + [[0, 0, 0]] * 252, np.uint8)
    return palette[labels], labels


def make_raw_pinhole(root, n=6, fov_in_classes=None, cameras=None, sizes=((32, 24), (40, 40))):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    classes = dict(CLASSES, **({"fov_deg": fov_in_classes} if fov_in_classes else {}))
    (root / "classes.json").write_text(json.dumps(classes))
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        rgb, lab = _photo(rng, w, h)
        Image.fromarray(rgb).save(root / "images" / f"p{i}.png")
        Image.fromarray(lab).save(root / "labels" / f"p{i}.png")
    if cameras is not None:
        (root / "cameras.json").write_text(json.dumps(cameras))
    return root


def test_prepare_folder_pinhole_and_project(tmp_path):
    raw = make_raw_pinhole(
        tmp_path / "raw", cameras={"p1": {"fov_deg": 90}, "p2": {"K": [[20, 0, 16], [0, 20, 12], [0, 0, 1]]}}
    )
    out = tmp_path / "P"
    report = prepare_pinhole_folder(raw, out, fov_deg=60, folds=2, progress=False)
    assert report.num_samples == 6
    cams = json.loads((out / "cameras.json").read_text())
    assert cams["p0"]["K"][0][0] == pytest.approx(16 / math.tan(math.radians(30)))  # --fov 60, 32 px wide
    assert cams["p1"]["K"][0][0] == pytest.approx(20 / math.tan(math.radians(45)))  # sidecar fov 90
    assert cams["p2"]["K"][0][0] == 20
    ds = PinholeDataset(out, fold=1, split="train")
    inputs, labels = ds[0]
    assert inputs["image"].shape[0] == 3 and labels.dtype == torch.int64 and (labels == IGNORE_INDEX).any()
    proj = ProjectedPinholeDataset(
        ds, ProjectionSettings(canvas_height=64, pitch_deg=(-10, 10), roll_deg=(-5, 5))
    )
    proj.set_epoch(0)
    x, y = proj[1]
    assert x["image"].shape == (3, 64, 128) and y.shape == (64, 128) and y.dtype == torch.int64
    covered = y != IGNORE_INDEX
    assert 0.02 < covered.float().mean() < 0.5
    _, mask_y = proj[1]
    assert torch.equal(mask_y, y)  # a function of (seed, epoch, index)
    outside = y == IGNORE_INDEX
    lit = x["image"].sum(0) > 0  # uncovered pixels are black (the photo's own ignored corner is not)
    assert torch.all(x["image"][:, outside & ~lit] == 0) and (outside & lit).float().mean() < 0.01
    assert not lit[outside].all()


def test_projected_labels_read_back_to_the_photo(tmp_path):
    raw = make_raw_pinhole(tmp_path / "raw", n=2, sizes=((32, 32),))
    prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=70, folds=2, progress=False)
    ds = PinholeDataset(tmp_path / "P", fold=1, split="train")
    s = ProjectionSettings(canvas_height=160, yaw_deg=(30, 30), pitch_deg=(20, 20), roll_deg=(10, 10))
    _, labels = ProjectedPinholeDataset(ds, s)[0]
    k = torch.as_tensor(ds.intrinsics(0))
    camera = PinholeCamera(intrinsics=k, yaw_deg=30, pitch_deg=20, roll_deg=10)
    back = erp_to_pinhole(labels, camera, width=32, height=32, nearest=True)
    assert (back == ds[0][1]).float().mean() >= 0.999


def test_composite_canvas_covers_more_and_jitter_changes_the_area(tmp_path):
    raw = make_raw_pinhole(tmp_path / "raw", n=4, sizes=((32, 32),))
    prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=60, folds=2, progress=False)
    ds = PinholeDataset(tmp_path / "P", fold=1, split="train")
    one = ProjectedPinholeDataset(ds, ProjectionSettings(canvas_height=64))
    three = ProjectedPinholeDataset(ds, ProjectionSettings(canvas_height=64, photos_per_canvas=3))
    for d in (one, three):
        d.set_epoch(0)
    c1 = (one[0][1] != IGNORE_INDEX).float().mean()
    c3 = (three[0][1] != IGNORE_INDEX).float().mean()
    assert c3 > 2.5 * c1
    areas = []
    jit = ProjectedPinholeDataset(ds, ProjectionSettings(canvas_height=64, fov_jitter_deg=20))
    for epoch in range(4):
        jit.set_epoch(epoch)
        areas.append(float((jit[0][1] != IGNORE_INDEX).float().mean()))
    assert max(areas) - min(areas) > 0.005
    stretch = ProjectedPinholeDataset(ds, ProjectionSettings(canvas_height=64, placement="stretch"))
    assert stretch[0][1].shape == (64, 128)


def test_mixed_sources_follow_their_weights(tmp_path):
    for name in ("a", "b"):
        raw = make_raw_pinhole(tmp_path / f"raw_{name}", n=4)
        prepare_pinhole_folder(raw, tmp_path / name, fov_deg=60, folds=2, progress=False)
    mix = build_training_sources(
        [f"pinhole={tmp_path / 'a'}@3", f"pinhole={tmp_path / 'b'}@1"],
        fold=1,
        modalities=("image",),
        num_classes=4,
        canvas_height=32,
    )
    assert isinstance(mix, MixedDataset) and len(mix) == 4
    mix.set_epoch(0)
    picks = [mix.pick(i)[0] for i in range(400)]
    assert 0.65 < picks.count(0) / 400 < 0.85
    x, _y = mix[0]
    assert x["image"].shape == (3, 32, 64)
    assert mix.class_pixel_counts().shape == (4,)
    with pytest.raises(ValueError, match="4 classes, the model is trained for 13"):
        build_training_sources(
            [f"pinhole={tmp_path / 'a'}"], fold=1, modalities=("image",), num_classes=13, canvas_height=32
        )
    with pytest.raises(ValueError, match="image-only"):
        build_training_sources(
            [f"pinhole={tmp_path / 'a'}"],
            fold=1,
            modalities=("image", "depth"),
            num_classes=4,
            canvas_height=32,
        )


def test_refusals(tmp_path):
    raw = make_raw_pinhole(tmp_path / "raw", n=2)
    with pytest.raises(ValueError, match="no field of view; expected --fov DEG"):
        prepare_pinhole_folder(raw, tmp_path / "P", folds=2, progress=False)
    with pytest.raises(ValueError, match=r"field of view 200; expected degrees in \(0, 180\)"):
        prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=200, folds=2, progress=False)
    (raw / "cameras.json").write_text(json.dumps({"p0": {"K": [[0, 0, 1], [0, 1, 1], [0, 0, 1]]}}))
    with pytest.raises(ValueError, match=r"expected \[\[fx, 0, cx\]"):
        prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=60, folds=2, progress=False)
    (raw / "cameras.json").write_text(json.dumps({"nope": {"fov_deg": 60}}))
    with pytest.raises(ValueError, match="entry 'nope' has no image"):
        prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=60, folds=2, progress=False)
    assert not (tmp_path / "P").exists()  # nothing written before the checks pass
    with pytest.raises(FileNotFoundError, match="make it with `panosamic prepare folder --pinhole"):
        PinholeDataset(tmp_path / "P")
    with pytest.raises(ValueError, match="expected KIND=PATH"):
        parse_source("pinhole", ("stanford2d3ds",))
    with pytest.raises(ValueError, match="expected a number > 0 after @"):
        parse_source("pinhole=x@-1", ("stanford2d3ds",))
    assert parse_source("stanford2d3ds=a/b@0.5", ("stanford2d3ds",)) == ("stanford2d3ds", "a/b", 0.5)
    assert parse_range("20", "--pitch", -90, 90) == (-20.0, 20.0)
    with pytest.raises(ValueError, match="expected MIN,MAX"):
        parse_range("10,-10", "--pitch", -90, 90)


def test_folder_dataset_refuses_a_pinhole_folder(tmp_path):
    from panosamic.data import build_dataset
    from panosamic.data.folder import FolderDataset

    raw = make_raw_pinhole(tmp_path / "raw", n=2)
    prepare_pinhole_folder(raw, tmp_path / "P", fov_deg=60, folds=2, progress=False)
    for make in (
        lambda: FolderDataset(tmp_path / "P"),
        lambda: build_dataset("folder", tmp_path / "P", 1, "train"),
    ):
        with pytest.raises(ValueError, match=r"is a pinhole folder .*`--source pinhole=") as e:
            make()
        assert "\n" not in str(e.value)


def test_fov_from_classes_json(tmp_path):
    raw = make_raw_pinhole(tmp_path / "raw", n=2, fov_in_classes=80)
    prepare_pinhole_folder(raw, tmp_path / "P", folds=2, progress=False)
    k = json.loads((tmp_path / "P" / "cameras.json").read_text())["p0"]["K"]
    assert k[0][0] == pytest.approx(16 / math.tan(math.radians(40)))


# --------------------------------------------------------------------------- Stanford2D3DS layout
def make_stanford_pinhole(root):
    """area_*/data/{rgb,semantic,pose} with the real encodings, plus assets/semantic_labels.json."""
    from panosamic.data.stanford_codec import encode_semantic

    names = ["<UNK>_0_<UNK>_0_0", "floor_1_office_1_1", "wall_2_office_1_1", "chair_1_office_1_1"]
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "semantic_labels.json").write_text(json.dumps(names))
    rng = np.random.default_rng(1)
    for area in ("area_1", "area_2", "area_5a"):
        for kind in ("rgb", "semantic", "pose"):
            (root / area / "data" / kind).mkdir(parents=True)
        for f in range(2):
            stem = f"camera_{'ab' * 16}_office_1_frame_{f}_domain"
            idx = rng.integers(0, 4, (20, 20))
            idx[0, 0] = -1  # missing
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                root / area / "data" / "rgb" / f"{stem}_rgb.png"
            )
            Image.fromarray(encode_semantic(idx)).save(
                root / area / "data" / "semantic" / f"{stem}_semantic.png"
            )
            pose = {
                "camera_k_matrix": [[18.0, 0, 10.0], [0, 18.0, 10.0], [0, 0, 1]],
                "field_of_view_rads": 1.0,
            }
            (root / area / "data" / "pose" / f"{stem}_pose.json").write_text(json.dumps(pose))
    return root


def test_stanford_pinhole_layout(tmp_path):
    raw = make_stanford_pinhole(tmp_path / "raw")
    rep = prepare_stanford_pinhole(raw, tmp_path / "P", scale=0.5, progress=False)
    assert rep.num_samples == 6
    splits = json.loads((tmp_path / "P" / "splits.json").read_text())["folds"]
    assert all(n.startswith(("area_1__", "area_2__")) for n in splits["1"]["train"])
    assert all(n.startswith("area_5a__") for n in splits["1"]["test"])
    ds = PinholeDataset(tmp_path / "P", fold=1, split="train")
    assert ds.info.num_classes == 13 and len(ds) == 4
    k = ds.intrinsics(0)
    assert k[0, 0] == pytest.approx(9.0) and k[0, 2] == pytest.approx(5.0)  # scaled with the photo
    _, labels = ds[0]
    wanted = {-1} | {ds.info.class_index(c) for c in ("floor", "wall", "chair")}
    assert labels.shape == (10, 10) and set(labels.unique().tolist()) <= wanted and len(labels.unique()) > 2
    again = prepare_stanford_pinhole(raw, tmp_path / "P", scale=0.5, progress=False)
    assert again.num_existing == 6  # a rerun resumes


# --------------------------------------------------------------------------- train on pinhole photos
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:vit_tiny has no SAM weights")
def test_train_on_pinhole_photos_validates_on_panoramas(tmp_path, monkeypatch):
    from conftest import prepared_synthetic

    from panosamic.cli import main
    from panosamic.training.checkpoint import load_checkpoint

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    panos = prepared_synthetic(tmp_path / "panos", rooms_per_area=1, size=(64, 128), seed=0)
    prepare_stanford_pinhole(
        make_stanford_pinhole(tmp_path / "raw"), tmp_path / "pin", scale=1.0, progress=False
    )
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "canvas_size": 256,
                "dual_view_fusion": True,
                "loss": {"CrossEntropyLoss": 1.0},
                "optimizer": "Ranger21",
                "lr_scheduler": {
                    "max_lr": 1e-2,
                    "start_lr": 1e-5,
                    "warm_up_ratio": 1.0,
                    "wind_down_ratio": 3.0,
                },
            }
        )
    )
    args = [
        "train",
        "--dataset-path",
        str(panos),
        "--config",
        str(cfg),
        "--experiments-path",
        str(tmp_path / "exp"),
        "--dataset",
        "stanford2d3ds",
        "--vit",
        "vit_tiny",
        "--modalities",
        "image",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--batch-size",
        "2",
        "--max-steps",
        "2",
        "--source",
        f"pinhole={tmp_path / 'pin'}@2",
        "--source",
        f"stanford2d3ds={panos}",
        "--pinhole-pitch",
        "10",
        "--pinhole-roll=-2,4",
        "--photos-per-canvas",
        "2",
    ]
    assert main(args) == 0
    run = next((tmp_path / "exp" / "stanford2d3ds").iterdir())
    ck = load_checkpoint(
        run / "model_last.pth" if (run / "model_last.pth").exists() else run / "model_best.pth"
    )
    assert ck["sources"] == [f"pinhole={tmp_path / 'pin'}@2", f"stanford2d3ds={panos}"]
    assert tuple(ck["projection"]["pitch_deg"]) == (-10.0, 10.0) and tuple(ck["projection"]["roll_deg"]) == (
        -2.0,
        4.0,
    )
    assert ck["projection"]["photos_per_canvas"] == 2


def test_train_refuses_projection_flags_without_a_pinhole_source():
    import argparse

    from panosamic.data.pinhole_layout import add_pinhole_arguments, check_source_args

    p = argparse.ArgumentParser()
    add_pinhole_arguments(p)
    with pytest.raises(
        ValueError, match=r"--pinhole-pitch: only with a pinhole source \(--source pinhole=PATH\)"
    ):
        check_source_args(p.parse_args(["--pinhole-pitch", "5"]), ("stanford2d3ds",))
    with pytest.raises(ValueError, match="--source 'mars=x': expected KIND=PATH"):
        check_source_args(p.parse_args(["--source", "mars=x"]), ("stanford2d3ds",))
    with pytest.raises(ValueError, match="--pinhole-roll '5,1': expected MIN,MAX degrees"):
        check_source_args(
            p.parse_args(["--source", "pinhole=x", "--pinhole-roll", "5,1"]), ("stanford2d3ds",)
        )
    check_source_args(p.parse_args(["--source", "pinhole=x", "--pinhole-yaw=-90,90"]), ("stanford2d3ds",))


def test_prepare_command_line(tmp_path, capsys):
    from panosamic.cli import main

    raw = make_raw_pinhole(tmp_path / "raw", n=4)
    out = tmp_path / "P"
    assert (
        main(
            [
                "prepare",
                "folder",
                "--pinhole",
                "--fov",
                "65",
                "--raw",
                str(raw),
                "--out",
                str(out),
                "--folds",
                "2",
                "--scale",
                "0.5",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "prepared 4 folder --pinhole photos" in capsys.readouterr().out
    ds = PinholeDataset(out, fold=2, split="test")
    assert ds[0][1].shape == (12, 16)  # 32x24 photos at half size
    for argv, message in (
        (["prepare", "stanford2d3ds", "--pinhole"], "--pinhole: only for `prepare folder`"),
        (["prepare", "folder", "--fov", "60"], "--fov: only with `prepare folder --pinhole`"),
        (["prepare", "folder", "--pinhole", "--fov", "0"], r"--fov must be in (0, 180) degrees, got 0"),
    ):
        assert main([*argv, "--raw", str(raw), "--out", str(tmp_path / "Q")]) != 0
        assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- the synthetic camera model
def test_synthetic_photos_see_what_the_panorama_sees():
    from panosamic.synth.render import render_room, render_views

    room = render_room(3, (128, 256))
    views = [(0.0, 0.0, 0.0), (135.0, -20.0, 10.0), (-170.0, 30.0, -15.0)]
    for v in render_views(3, views, (48, 64), fov_deg=70):
        camera = PinholeCamera(fov_deg=70, yaw_deg=v.yaw_deg, pitch_deg=v.pitch_deg, roll_deg=v.roll_deg)
        seen = erp_to_pinhole(torch.from_numpy(room.class_map), camera, width=64, height=48, nearest=True)
        assert (seen.numpy() == v.class_map).mean() > 0.95  # differences only where the panorama is coarser
        assert v.rgb.shape == (48, 64, 3) and v.intrinsics[0][2] == 32


def test_synthetic_writer_makes_the_stanford_pinhole_layout(tmp_path):
    from panosamic.synth import make_synthetic_stanford

    m = make_synthetic_stanford(tmp_path / "raw", areas=("area_1", "area_5a"), rooms_per_area=1, size=(32, 64),
                                pinhole_views=2, pinhole_size=(24, 32), pinhole_fov_deg=75)
    assert m.num_photos == 4
    rep = prepare_stanford_pinhole(tmp_path / "raw", tmp_path / "P", scale=1.0, progress=False)
    assert rep.num_samples == 4
    ds = PinholeDataset(tmp_path / "P", fold=1, split="test")  # fold 1 tests on area_5a
    assert len(ds) == 2 and ds.intrinsics(0)[0, 0] == pytest.approx(16 / math.tan(math.radians(37.5)))
    assert (ds[0][1] >= 0).float().mean() > 0.9  # photos have no unscanned caps


# --------------------------------------------------------------------------- adapt with a pinhole source
def test_adapt_takes_a_pinhole_source(tmp_path):
    import argparse

    from conftest import make_tiny_model

    from panosamic.adapt.api import build_source
    from panosamic.adapt.cli import add_arguments, check

    prepare_stanford_pinhole(make_stanford_pinhole(tmp_path / "raw"), tmp_path / "pin", scale=1.0, progress=False)
    model = make_tiny_model()
    source = build_source("pinhole", tmp_path / "pin", model, 1, 0, {"pitch_deg": (-5.0, 5.0), "photos_per_canvas": 2})
    x, y = source[0]
    assert x["image"].shape[-2:] == tuple(model.native_size) and y.shape == tuple(model.native_size)
    assert source.settings.photos_per_canvas == 2
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["pano/", "--checkpoint", "run/", "--out", str(tmp_path / "o")]
    with pytest.raises(ValueError, match="--pinhole-pitch: only with --source-dataset pinhole"):
        check(parser.parse_args([*base, "--pinhole-pitch", "5"]))
    check(parser.parse_args([*base, "--source-dataset", "pinhole", "--source-path", str(tmp_path / "pin"),
                             "--pinhole-pitch", "5"]))  # fmt: skip
