"""Synthetic raw Stanford2D3DS -> ``prepare`` -> loaders: labels, depth and splits are exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panosamic.cli import main
from panosamic.data import build_dataset
from panosamic.data.depth import STANFORD_DEPTH
from panosamic.data.prepare import RawFileError, prepare_dataset
from panosamic.data.stanford2d3ds import AREAS, FOLDS
from panosamic.data.synthetic import make_synthetic_stanford, render_room, room_seed

SIZE = (32, 64)
SEED = 3
ALL_MODALITIES = ("image", "depth", "normals")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    manifest = make_synthetic_stanford(base / "raw", areas=AREAS, rooms_per_area=2, size=SIZE, seed=SEED)
    report = prepare_dataset("stanford2d3ds", base / "raw", base / "out", progress=False)
    rooms = {f"{s.area}/{s.name}": render_room(room_seed(SEED, s.area, s.room_index), SIZE, room_number=s.room_index + 1)
             for s in manifest.samples}  # fmt: skip
    return manifest, report, base / "out", rooms


def test_report_and_layout(synth):
    manifest, report, out, _ = synth
    assert report.num_samples == report.num_written == len(manifest.samples) == 14
    assert not report.skipped
    names = json.loads((out / "cache_samples_file_names.json").read_text())
    assert list(names) == list(AREAS)
    assert all(names[a] == sorted(s.name for s in manifest.samples_in(a)) for a in AREAS)
    assert (out / "assets" / "semantic_labels.json").read_bytes() == manifest.labels_path.read_bytes()
    s = manifest.samples[0]
    d = out / s.area / s.name
    assert sorted(p.name for p in d.iterdir()) == ["depth.png", "depth_mask.webp", "instances.webp", "normals.webp", "rgb.webp"]
    assert Image.open(d / "depth.png").mode == "I;16"
    mask = np.asarray(Image.open(d / "depth_mask.webp"))
    assert mask.ndim == 3 and set(np.unique(mask)) <= {0, 255}
    # Scale 1: lossless copies of the raw images.
    for processed, raw in (("rgb.webp", s.rgb_path), ("normals.webp", s.normals_path), ("instances.webp", s.semantic_path)):
        assert np.array_equal(np.asarray(Image.open(d / processed).convert("RGB")), np.asarray(Image.open(raw).convert("RGB")))
    stats = json.loads((out / "cache_area_depth_statistics.json").read_text())
    for area in AREAS:
        counts, edges = stats[area]
        assert len(counts) == 1280 and len(edges) == 1281 and edges[-1] == 128.0
        valid = sum(int((np.asarray(Image.open(out / area / n / "depth_mask.webp"))[..., -1] > 0).sum()) for n in names[area])
        assert sum(counts) == valid > 0


@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_folds_decode_exactly_what_the_generator_placed(synth, fold):
    manifest, _, out, rooms = synth
    seen = []
    for split in ("train", "test"):
        ds = build_dataset("stanford2d3ds", out, fold=fold, split=split, modalities=ALL_MODALITIES, augment=False)
        assert [n.split("/")[0] for n in ds.sample_names] == sorted(n.split("/")[0] for n in ds.sample_names)
        assert {n.split("/")[0] for n in ds.sample_names} == set(FOLDS[fold][0 if split == "train" else 1])
        assert len(ds.sample_names) == len(set(ds.sample_names))
        seen += ds.sample_names
        for i, name in enumerate(ds.sample_names):
            inputs, labels = ds[i]
            room = rooms[name]
            assert np.array_equal(labels.numpy(), room.class_map), name
            assert np.array_equal(inputs["image"].numpy().transpose(1, 2, 0), room.rgb.astype(np.float32))
            assert inputs["depth"].shape == inputs["normals"].shape == (3, *SIZE)
    assert sorted(seen) == sorted(f"{s.area}/{s.name}" for s in manifest.samples)  # each sample exactly once


def test_depth_round_trips_within_quantisation(synth):
    manifest, _, out, rooms = synth
    for s in manifest.samples:
        room = rooms[f"{s.area}/{s.name}"]
        d = out / s.area / s.name
        raw = np.asarray(Image.open(d / "depth.png"))
        valid = np.asarray(Image.open(d / "depth_mask.webp"))[..., -1] > 0
        assert np.array_equal(valid, np.isfinite(room.depth_m))
        metres = STANFORD_DEPTH.to_metres(raw)[valid]
        truth = room.depth_m[valid].astype(np.float64)
        # Raw files store metres * 512; we read raw * 128 / 65535 like the reference (1.5e-5 relative).
        assert np.all(np.abs(metres - truth) <= 0.5 / 512 + truth / 65535 + 1e-6)


@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_fold_threshold_is_the_direct_percentile(synth, fold):
    _, _, out, _ = synth
    train = build_dataset("stanford2d3ds", out, fold=fold, split="train", augment=False)
    test = build_dataset("stanford2d3ds", out, fold=fold, split="test", augment=False)
    values = []
    for d in train.sample_dirs:
        raw = np.asarray(Image.open(d / "depth.png"))
        valid = np.asarray(Image.open(d / "depth_mask.webp"))[..., -1] > 0
        values.append(STANFORD_DEPTH.to_metres(raw)[valid])
    values = np.sort(np.concatenate(values))
    direct = values[int(np.ceil(0.995 * values.size)) - 1]  # smallest depth with 99.5 % at or below it
    assert train.depth_threshold <= direct < train.depth_threshold + 0.1
    assert test.depth_threshold == train.depth_threshold  # the test split uses the training statistics
    cache = json.loads((out / "cache_splits_depth_statistics.json").read_text())
    assert cache[str(fold)][3] == train.depth_threshold


def test_threshold_needs_the_histograms(synth, tmp_path):
    _, _, out, _ = synth
    root = tmp_path / "copy"
    shutil.copytree(out, root)
    (root / "cache_area_depth_statistics.json").unlink()
    (root / "cache_splits_depth_statistics.json").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="panosamic prepare stanford2d3ds"):
        build_dataset("stanford2d3ds", root, fold=1, split="test", modalities=("image", "depth"))
    # Without depth no statistics are needed; with a reference-style threshold cache they are read from it.
    assert len(build_dataset("stanford2d3ds", root, fold=1, split="test", modalities=("image",))) == 4
    (root / "cache_splits_depth_statistics.json").write_text(json.dumps({"1": [1, 2, 3, 4.5, 5, 6]}))
    assert build_dataset("stanford2d3ds", root, fold=1, split="test").depth_threshold == 4.5


def test_resume_skips_done_samples(synth, tmp_path):
    manifest, _, out, _ = synth
    root = tmp_path / "resume"
    shutil.copytree(out, root)
    before = (root / "cache_area_depth_statistics.json").read_text()
    s = manifest.samples[5]
    (root / s.area / s.name / "depth.png").unlink()
    report = prepare_dataset("stanford2d3ds", manifest.out_dir, root, progress=False)
    assert (report.num_written, report.num_existing) == (1, 13)
    assert (root / "cache_area_depth_statistics.json").read_text() == before
    with pytest.raises(ValueError, match="--overwrite"):
        prepare_dataset("stanford2d3ds", manifest.out_dir, root, scale=0.5, progress=False)


def _raw_copy(synth, tmp_path) -> tuple[Path, object]:
    manifest = synth[0]
    raw = tmp_path / "raw"
    shutil.copytree(manifest.out_dir, raw)
    return raw, manifest


def test_corrupted_raw_file_is_named(synth, tmp_path, capsys):
    raw, manifest = _raw_copy(synth, tmp_path)
    s = manifest.samples[3]
    bad = raw / s.semantic_path.relative_to(manifest.out_dir)
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with pytest.raises(RawFileError, match=s.name + "_semantic.png") as info:
        prepare_dataset("stanford2d3ds", raw, tmp_path / "out", progress=False)
    assert info.value.path == bad and "--skip-bad" in str(info.value)
    assert main(["prepare", "stanford2d3ds", "--raw", str(raw), "--out", str(tmp_path / "out2"), "--no-progress"]) == 1
    assert "_semantic.png" in capsys.readouterr().err

    report = prepare_dataset("stanford2d3ds", raw, tmp_path / "out", skip_bad=True, progress=False)
    assert report.num_samples == 13 and [n for n, _ in report.skipped] == [f"{s.area}/{s.name}"]
    names = json.loads((tmp_path / "out" / "cache_samples_file_names.json").read_text())
    assert s.name not in names[s.area]
    rc = main(["prepare", "stanford2d3ds", "--raw", str(raw), "--out", str(tmp_path / "out3"), "--skip-bad", "--no-progress"])
    assert rc == 0 and "skipped 1 bad sample" in capsys.readouterr().out


def test_missing_raw_file_stops_before_any_work(synth, tmp_path):
    raw, manifest = _raw_copy(synth, tmp_path)
    s = manifest.samples[8]
    (raw / s.depth_path.relative_to(manifest.out_dir)).unlink()
    with pytest.raises(FileNotFoundError, match=s.name + "_depth.png"):
        prepare_dataset("stanford2d3ds", raw, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_dataset("stanford2d3ds", tmp_path / "nope", tmp_path / "out", progress=False)
    shutil.rmtree(raw / "assets")
    with pytest.raises(FileNotFoundError, match="semantic_labels.json"):
        prepare_dataset("stanford2d3ds", raw, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="scale"):
        prepare_dataset("stanford2d3ds", raw, tmp_path / "out", scale=1.5, progress=False)


def test_quarter_scale_cli_matches_reference_facts(tmp_path):
    manifest = make_synthetic_stanford(tmp_path / "raw", areas=("area_1",), rooms_per_area=1, size=(64, 128), seed=1)
    out = tmp_path / "out"
    rc = main(["prepare", "stanford2d3ds", "--raw", str(tmp_path / "raw"), "--out", str(out), "--scale", "0.25", "--no-progress"])
    assert rc == 0
    s = manifest.samples[0]
    d = out / "area_1" / s.name
    raw_sem = np.asarray(Image.open(s.semantic_path).convert("RGB"))
    raw_depth = np.asarray(Image.open(s.depth_path))
    assert np.array_equal(np.asarray(Image.open(d / "instances.webp").convert("RGB")), raw_sem[2::4, 2::4])
    assert np.array_equal(np.asarray(Image.open(d / "normals.webp").convert("RGB")), np.asarray(Image.open(s.normals_path))[2::4, 2::4])
    assert np.array_equal(np.asarray(Image.open(d / "depth_mask.webp"))[..., -1] > 0, (raw_depth != 65535)[2::4, 2::4])
    lanczos = Image.open(s.depth_path).resize((32, 16), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(Image.open(d / "depth.png")), np.asarray(lanczos))
    rgb = Image.open(s.rgb_path).convert("RGB").resize((32, 16), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(Image.open(d / "rgb.webp")), np.asarray(rgb))
    room = render_room(room_seed(1, "area_1", 0), (64, 128), room_number=1)
    with pytest.warns(UserWarning, match="missing"):
        ds = build_dataset("stanford2d3ds", out, 3, "test", ("image",), augment=False, allow_missing_areas=True)
    with pytest.raises(FileNotFoundError, match="training area"), pytest.warns(UserWarning):  # area_1 alone has no fold-3 training data
        build_dataset("stanford2d3ds", out, 3, "test", ("image", "depth"), allow_missing_areas=True)
    assert np.array_equal(ds[0][1].numpy(), room.class_map[2::4, 2::4])
