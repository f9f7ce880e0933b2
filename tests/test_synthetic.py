"""Tests of the synthetic Stanford2D3DS generator (``panosamic.synth``, ``panosamic synth``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panosamic import synth as S
from panosamic.cli import main

CLASSES = ("beam", "board", "bookcase", "ceiling", "chair", "clutter", "column",
           "door", "floor", "sofa", "table", "wall", "window")  # fmt: skip
SIZE = (64, 128)
NAME_RE = re.compile(r"^camera_[0-9a-f]{32}_([A-Za-z]+)_(\d+)_frame_equirectangular_domain$")


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.array(im)


def decode_classes(sem_rgb: np.ndarray, labels: list[str]) -> np.ndarray:
    """Full decode rule of the README: index -> name -> class -> train index (-1 = <UNK> / missing)."""
    idx = S.decode_semantic(sem_rgb)
    lut = np.array([CLASSES.index(n.split("_")[0]) if n.split("_")[0] in CLASSES else -1 for n in labels] + [-1])
    return lut[np.where(idx < len(labels), idx, len(labels))]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "raw"
    manifest = S.make_synthetic_stanford(out, rooms_per_area=2, size=SIZE, seed=0)
    return out, manifest


def test_raw_layout_and_names(dataset):
    out, manifest = dataset
    assert sorted(p.name for p in out.iterdir()) == sorted(S.DEFAULT_AREAS + ("assets",))
    assert len(manifest.samples) == 14
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {"assets/semantic_labels.json"}
    for s in manifest.samples:
        assert NAME_RE.match(s.name), s.name
        assert s.name == f"camera_{s.camera_id}_{s.room_name}_frame_equirectangular_domain"
        for folder, suffix, path in (("rgb", "rgb", s.rgb_path), ("depth", "depth", s.depth_path),
                                     ("normal", "normals", s.normals_path), ("semantic", "semantic", s.semantic_path)):  # fmt: skip
            rel = f"{s.area}/pano/{folder}/{s.name}_{suffix}.png"
            assert path == out / rel
            expected.add(rel)
    assert written == expected  # nothing else, no temp files left behind
    assert len({s.camera_id for s in manifest.samples}) == 14
    for area in S.DEFAULT_AREAS:  # room names unique per area, numbered from 1
        rooms = [s.room_name for s in manifest.samples_in(area)]
        assert len(set(rooms)) == 2 and [int(r.rsplit("_", 1)[1]) for r in rooms] == [1, 2]


def test_semantic_labels_json(dataset):
    out, manifest = dataset
    labels = json.loads((out / "assets" / "semantic_labels.json").read_text())
    assert labels == list(manifest.semantic_labels)
    assert labels[0] == "<UNK>_0_<UNK>_0_0"
    assert len(set(labels)) == len(labels) < 65536
    area_of = {s.label_indices[i]: s.area for s in manifest.samples for i in range(1, len(s.label_indices))}
    assert sorted(area_of) == list(range(1, len(labels)))  # every label belongs to exactly one room
    for i, name in enumerate(labels[1:], start=1):
        cls, num, _room_type, room_num, area_num = name.split("_")
        assert cls in CLASSES and int(num) >= 1 and int(room_num) >= 1
        assert area_of[i].startswith(f"area_{area_num}")


def test_files_decode_to_render_room(dataset):
    _out, manifest = dataset
    labels = list(manifest.semantic_labels)
    for s in (manifest.samples[0], manifest.samples[9]):
        room = S.render_room(S.room_seed(0, s.area, s.room_index), SIZE, room_number=s.room_index + 1)
        assert (room.camera_id, room.room_name, room.sample_name) == (s.camera_id, s.room_name, s.name)
        np.testing.assert_array_equal(read_png(s.rgb_path), room.rgb)

        raw = read_png(s.depth_path).astype(np.int64)
        assert raw.shape == SIZE
        missing = np.isnan(room.depth_m)
        np.testing.assert_array_equal(raw == 65535, missing)
        np.testing.assert_allclose(raw[~missing] / 512.0, room.depth_m[~missing], atol=0.5 / 512 + 1e-6)

        nrm = read_png(s.normals_path)
        nmiss = np.isnan(room.normals).any(-1)
        np.testing.assert_array_equal(nmiss, missing)
        assert (nrm[nmiss] == 128).all()
        np.testing.assert_allclose((nrm[~nmiss] - 127.5) / 127.5, room.normals[~nmiss], atol=0.5 / 127.5 + 1e-6)

        sem = read_png(s.semantic_path)
        idx = S.decode_semantic(sem)
        assert (sem[room.instance_index == -1] == 13).all()  # 0x0D0D0D where nothing was scanned
        lut = np.array(s.label_indices)
        ok = room.instance_index >= 0
        np.testing.assert_array_equal(idx[ok], lut[room.instance_index[ok]])
        np.testing.assert_array_equal(decode_classes(sem, labels), room.class_map)


def test_hohonet_shortcut_decode_agrees(dataset):
    """The loaders' shortcut (R != 0 -> <UNK>, id = G*256 + B) gives the same classes as the full rule."""
    _, manifest = dataset
    labels = list(manifest.semantic_labels)
    id2label = np.array([CLASSES.index(n.split("_")[0]) if n.split("_")[0] in CLASSES else -1 for n in labels] + [-1])
    for s in manifest.samples[:4]:
        sem = read_png(s.semantic_path).astype(np.int64)
        gb = sem[..., 1] * 256 + sem[..., 2]
        short = id2label[np.minimum(gb, len(labels))]
        short[sem[..., 0] != 0] = -1
        np.testing.assert_array_equal(short, decode_classes(sem.astype(np.uint8), labels))


def test_every_class_unknown_and_missing_appear(dataset):
    _, manifest = dataset
    labels = list(manifest.semantic_labels)
    seen, n_unk, n_missing = set(), 0, 0
    for s in manifest.samples:
        sem = read_png(s.semantic_path)
        seen |= set(np.unique(decode_classes(sem, labels)).tolist())
        idx = S.decode_semantic(sem)
        n_unk += int((idx == 0).sum())
        n_missing += int((idx == 0x0D0D0D).sum())
    assert seen == set(range(13)) | {-1}
    assert n_unk > 0 and n_missing > 0


def test_deterministic_and_seed_dependent(dataset, tmp_path):
    out, manifest = dataset
    again = S.make_synthetic_stanford(tmp_path / "again", rooms_per_area=2, size=SIZE, seed=0)
    for a, b in zip(manifest.samples, again.samples, strict=True):
        for pa, pb in ((a.rgb_path, b.rgb_path), (a.depth_path, b.depth_path),
                       (a.normals_path, b.normals_path), (a.semantic_path, b.semantic_path)):  # fmt: skip
            assert pa.relative_to(out) == pb.relative_to(tmp_path / "again")
            assert pa.read_bytes() == pb.read_bytes()
    assert manifest.labels_path.read_bytes() == again.labels_path.read_bytes()

    other = S.make_synthetic_stanford(tmp_path / "other", areas=("area_1",), rooms_per_area=2, size=SIZE, seed=1)
    assert {s.camera_id for s in other.samples}.isdisjoint(s.camera_id for s in manifest.samples)
    assert read_png(other.samples[0].rgb_path).tolist() != read_png(manifest.samples[0].rgb_path).tolist()


def test_render_room_reproducible_and_size_independent_layout():
    a, b = S.render_room(7, SIZE), S.render_room(np.random.default_rng(7), SIZE)
    for field in ("rgb", "depth_m", "normals", "instance_index", "class_map"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    big = S.render_room(7, (128, 256))
    assert (big.camera_id, big.room_name, big.instance_classes) == (a.camera_id, a.room_name, a.instance_classes)
    assert big.room_size == a.room_size and big.camera_position == a.camera_position
    c = S.render_room(8, SIZE)
    assert c.camera_id != a.camera_id and not np.array_equal(c.rgb, a.rgb)


def test_render_room_types_and_caps():
    room = S.render_room(3, SIZE)
    h, w = SIZE
    assert room.rgb.shape == (h, w, 3) and room.rgb.dtype == np.uint8
    assert room.depth_m.shape == (h, w) and room.depth_m.dtype == np.float32
    assert room.normals.shape == (h, w, 3) and room.normals.dtype == np.float32
    assert room.instance_index.dtype == np.int32 and room.class_map.dtype == np.int64
    assert re.fullmatch(r"[0-9a-f]{32}", room.camera_id)
    assert room.instance_classes[0] == "<UNK>"
    # class_map is the class of each local instance
    lut = np.array([-1] + [CLASSES.index(c) for c in room.instance_classes[1:]])
    ok = room.instance_index >= 0
    np.testing.assert_array_equal(room.class_map[ok], lut[room.instance_index[ok]])

    black = (room.rgb == 0).all(-1)
    missing = room.instance_index == -1
    np.testing.assert_array_equal(black, missing)  # black only in the caps, caps all black
    np.testing.assert_array_equal(np.isnan(room.depth_m), missing)
    np.testing.assert_array_equal(np.isnan(room.normals).any(-1), missing)
    assert (room.class_map[missing] == -1).all()
    rows = missing.all(1)
    assert rows[0] and rows[-1] and not rows[h // 2]  # both poles, nothing around the horizon
    assert (missing == rows[:, None]).all()  # caps are whole rows
    top, bottom = room.cap_latitudes_deg
    lat = 90 - 180 * (np.arange(h) + 0.5) / h
    np.testing.assert_array_equal(rows, (lat > 90 - top) | (lat < bottom - 90))
    # caps vary per room
    assert {S.render_room(s, (256, 512)).cap_latitudes_deg for s in range(4)}.__len__() == 4


def test_normals_face_camera_and_depth_matches_geometry():
    for seed in (0, 1, 2):
        room = S.render_room(seed, (128, 256))
        d = S.ray_directions((128, 256)).astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-6)
        ok = room.instance_index >= 0
        n = room.normals[ok].astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-6)
        assert ((n * d[ok]).sum(-1) < 0).all()

        lx, ly, lz = room.room_size
        cx, cy, cz = room.camera_position
        lat = np.pi / 2 - np.pi * (np.arange(128) + 0.5) / 128
        lat2 = np.broadcast_to(lat[:, None], (128, 256))
        floor, ceiling = room.class_map == CLASSES.index("floor"), room.class_map == CLASSES.index("ceiling")
        assert floor.any() and ceiling.any()
        np.testing.assert_allclose(room.depth_m[floor], cz / np.sin(-lat2[floor]), rtol=1e-4)
        np.testing.assert_allclose(room.depth_m[ceiling], (lz - cz) / np.sin(lat2[ceiling]), rtol=1e-4)
        # every hit point lies inside the room; wall hits lie on a wall plane
        p = np.array([cx, cy, cz]) + d * room.depth_m[..., None]
        assert (p[ok] >= -1e-3).all() and (p[ok] <= np.array([lx, ly, lz]) + 1e-3).all()
        wall = room.class_map == CLASSES.index("wall")
        on_plane = np.minimum.reduce([np.abs(p[..., 0]), np.abs(p[..., 0] - lx), np.abs(p[..., 1]), np.abs(p[..., 1] - ly)])
        assert wall.any() and (on_plane[wall] < 1e-3).all()


def test_heading_convention():
    """Centre column looks north (+y), a quarter to the right east (+x), the top row up."""
    d = S.ray_directions((64, 128))
    row = 32  # just below the horizon
    assert d[row, 64, 1] > 0.99 and abs(d[row, 64, 0]) < 0.03
    assert d[row, 96, 0] > 0.99
    assert d[row, 0, 1] < -0.99
    assert d[0, 0, 2] > 0.99 and d[-1, 0, 2] < -0.99


def test_refuses_non_empty_dir_and_overwrite_replaces(tmp_path):
    out = tmp_path / "raw"
    first = S.make_synthetic_stanford(out, areas=("area_2",), rooms_per_area=2, size=(16, 32), seed=1)
    with pytest.raises(ValueError, match="not empty"):
        S.make_synthetic_stanford(out, areas=("area_2",), size=(16, 32), seed=2)
    keep = out / "area_2" / "notes.txt"
    keep.write_text("mine")
    second = S.make_synthetic_stanford(out, areas=("area_2",), rooms_per_area=1, size=(16, 32), seed=2, overwrite=True)
    pngs = sorted(p for p in out.rglob("*.png"))
    assert len(pngs) == 4 and all(second.samples[0].name in p.name for p in pngs)  # stale panoramas gone
    assert not first.samples[0].rgb_path.exists()
    assert keep.read_text() == "mine"  # other files are left alone


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"size": (64, 100)}, ValueError),
        ({"size": (4, 8)}, ValueError),
        ({"size": "64x128"}, TypeError),
        ({"areas": ("room_1",)}, ValueError),
        ({"areas": ()}, ValueError),
        ({"areas": ("area_1", "area_1")}, ValueError),
        ({"rooms_per_area": 0}, ValueError),
        ({"seed": -1}, ValueError),
        ({"rooms_per_area": 2000}, ValueError),  # more instances than the 16-bit index holds
    ],
)
def test_bad_arguments(tmp_path, kwargs, error):
    with pytest.raises(error):
        S.make_synthetic_stanford(tmp_path / "x", **{"size": (16, 32), **kwargs})
    assert not any(tmp_path.iterdir())  # nothing written


def test_instance_bound_holds():
    """MAX_INSTANCES_PER_ROOM bounds what rooms really hold (it guards the 65536-label limit)."""
    counts = [len(S.render_room(s, (16, 32)).instance_classes) - 1 for s in range(60)]
    assert max(counts) <= S.MAX_INSTANCES_PER_ROOM
    assert min(counts) >= 6 + 1 + 1  # shell, a door, a table or chair at least


def test_render_room_bad_arguments():
    with pytest.raises(TypeError):
        S.render_room("seed", SIZE)
    with pytest.raises(ValueError):
        S.render_room(-3, SIZE)
    with pytest.raises(ValueError):
        S.render_room(0, (64, 64))


def test_parse_size():
    assert S.parse_size("1024x2048") == (1024, 2048)
    assert S.parse_size(" 32X64 ") == (32, 64)
    for bad in ("2048x1024", "1024", "axb", "1024x2049"):
        with pytest.raises(ValueError):
            S.parse_size(bad)


def test_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "raw"
    argv = ["synth", "--out", str(out), "--areas", "area_1", "area_5a", "--rooms-per-area", "1",
            "--size", "32x64", "--seed", "3", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "wrote 2 panoramas (32x64)" in capsys.readouterr().out
    rgbs = sorted(out.glob("area_*/pano/rgb/*_domain_rgb.png"))
    assert [p.parts[-4] for p in rgbs] == ["area_1", "area_5a"]
    assert read_png(rgbs[0]).shape == (32, 64, 3)
    labels = json.loads((out / "assets" / "semantic_labels.json").read_text())
    assert any(name.endswith("_5") for name in labels)  # area_5a -> area number 5
    # same call again: refused (exit 1, clear message), then accepted with --overwrite
    assert main(argv) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(out), "--size", "64x64"])


def test_prepare_and_loader_run_on_synthetic_data(dataset, tmp_path):
    """Integration with the data engineers' prepare + loader, once they exist."""
    prepare = pytest.importorskip("panosamic.data.prepare")
    data = pytest.importorskip("panosamic.data")
    if not hasattr(data, "build_dataset"):
        pytest.skip("panosamic.data.build_dataset not written yet")
    raw, manifest = dataset
    prepare.prepare_dataset("stanford2d3ds", raw, tmp_path / "prepared", scale=1.0)
    ds = data.build_dataset("stanford2d3ds", tmp_path / "prepared", fold=1, split="test",
                            modalities=("image", "depth"), augment=False)  # fmt: skip
    assert len(ds) == len(manifest.samples_in("area_5a")) + len(manifest.samples_in("area_5b"))
    inputs, labels = ds[0]
    assert inputs["image"].shape == (3, *SIZE) and labels.shape == SIZE
    assert int(labels.min()) >= -1 and int(labels.max()) <= 12 and (labels >= 0).any()


# ---------------------------------------------------------------------------- domains
def test_default_domain_is_the_original_look():
    from panosamic.synth.domains import DEFAULT_DOMAIN, SyntheticDomain

    base = S.render_room(5, (32, 64))
    for domain in ("default", DEFAULT_DOMAIN, SyntheticDomain()):
        other = S.render_room(5, (32, 64), domain=domain)
        assert np.array_equal(base.rgb, other.rgb) and np.array_equal(base.class_map, other.class_map)


def test_domains_differ_in_look_and_camera():
    from panosamic.synth.domains import DOMAINS

    rooms = {name: [S.render_room(s, (48, 96), domain=name) for s in range(6)] for name in DOMAINS}
    for name, domain in DOMAINS.items():
        for room in rooms[name]:
            assert domain.camera_height_m[0] <= room.camera_position[2] <= domain.camera_height_m[1]
            assert domain.cap_top_deg[0] <= room.cap_latitudes_deg[0] <= domain.cap_top_deg[1]
    mean = {n: np.mean([r.rgb[r.class_map >= 0].reshape(-1, 3).mean(0) for r in rs], 0) for n, rs in rooms.items()}
    warm, cold = mean["residential_warm"], mean["industrial_cold"]
    assert warm[0] / warm[2] > 1.3 * mean["default"][0] / mean["default"][2]  # tungsten light is red-heavy
    assert cold[2] / cold[0] > mean["default"][2] / mean["default"][0]  # cold light is blue-heavy


def test_domain_blur_and_noise():
    from panosamic.synth.domains import SyntheticDomain

    def roughness(domain):
        rgb = S.render_room(2, (64, 128), domain=domain).rgb.astype(float)[20:44]
        return np.abs(np.diff(rgb, axis=1)).mean()

    sharp = roughness(SyntheticDomain(noise_std=0.0))
    assert roughness(SyntheticDomain(noise_std=0.0, blur_sigma_deg=2.0)) < 0.8 * sharp
    assert roughness(SyntheticDomain(noise_std=12.0)) > 1.5 * sharp


@pytest.mark.parametrize("domain, error", [("nowhere", "unknown synthetic domain"), (3, "unknown synthetic domain")])
def test_bad_domain(domain, error):
    with pytest.raises(ValueError, match=error):
        S.render_room(0, (16, 32), domain=domain)


def test_bad_domain_settings():
    from panosamic.synth.domains import SyntheticDomain

    with pytest.raises(ValueError, match="materials"):
        SyntheticDomain(materials="marble")
    with pytest.raises(ValueError, match="camera_height_m"):
        SyntheticDomain(camera_height_m=(1.5, 1.0))
    with pytest.raises(ValueError, match="colour temperature"):
        SyntheticDomain(colour_temperature_k=300.0)


def test_cli_domain(tmp_path, capsys):
    out = tmp_path / "raw"
    argv = ["synth", "--out", str(out), "--areas", "area_1", "--rooms-per-area", "1", "--size", "32x64",
            "--seed", "3", "--quiet", "--domain", "residential_warm"]  # fmt: skip
    assert main(argv) == 0
    assert "domain residential_warm" in capsys.readouterr().out
    rgb = read_png(next(out.glob("area_1/pano/rgb/*.png")))
    room = S.render_room(S.room_seed(3, "area_1", 0), (32, 64), domain="residential_warm")
    assert np.array_equal(rgb, room.rgb)
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path / "x"), "--domain", "nowhere"])
