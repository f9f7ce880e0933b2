"""Synthetic raw Stanford2D3DS -> ``prepare`` -> loaders: labels, depth and splits are exact."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panosamic.cli import main
from panosamic.data import build_dataset, collate_panoramas, prepare as prepare_module
from panosamic.data.depth import STANFORD_DEPTH
from panosamic.data.prepare import RawFileError, prepare_dataset
from panosamic.data.stanford2d3ds import AREAS, FOLDS
from panosamic.io import is_temp_file
from panosamic.synth import make_synthetic_stanford, render_room, room_seed

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
    with pytest.raises(FileNotFoundError, match=r"semantic_labels.json"):
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


# --------------------------------------------------------------------------- settings, overwrite, kill -9
def _sizes(out: Path) -> set[tuple[int, int]]:
    """(width, height) of every prepared sample's files."""
    return {Image.open(p).size for p in out.glob("area_*/*/*") if p.suffix in (".webp", ".png")}


def _temp_files(root: Path) -> list[Path]:
    """Leftover temp files of panosamic.io."""
    return [p for p in root.rglob(".*") if is_temp_file(p.name)]


def test_settings_are_recorded_first_and_other_settings_are_refused(synth, tmp_path, monkeypatch):
    manifest, _, _, _ = synth
    out = tmp_path / "out"
    calls = []
    original = prepare_module.process_sample

    def crash_after_five(*args, **kwargs):
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "process_sample", crash_after_five)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_dataset("stanford2d3ds", manifest.out_dir, out, scale=1.0, progress=False)
    monkeypatch.undo()
    settings = json.loads((out / "cache_prepare_settings.json").read_text())
    assert settings == {"dataset": "stanford2d3ds", "depth_resize": "reference", "scale": 1.0}
    assert _sizes(out) == {(64, 32)} and len(list(out.glob("area_*/*/rgb.webp"))) == 5
    assert not (out / "cache_samples_file_names.json").exists()

    before = sorted(out.rglob("*"))
    with pytest.raises(ValueError) as info:
        prepare_dataset("stanford2d3ds", manifest.out_dir, out, scale=0.5, progress=False)
    message = str(info.value)
    assert "\n" not in message and "scale=1.0" in message and "scale=0.5" in message and "--overwrite" in message
    with pytest.raises(ValueError, match=r"depth_resize='reference'.*depth_resize='hole-aware'"):
        prepare_dataset("stanford2d3ds", manifest.out_dir, out, scale=1.0, depth_resize="hole-aware", progress=False)
    assert sorted(out.rglob("*")) == before  # a refused run writes nothing

    (out / "notes.txt").write_text("mine")  # not prepare's: overwrite keeps it
    report = prepare_dataset("stanford2d3ds", manifest.out_dir, out, scale=0.5, overwrite=True, progress=False)
    assert (report.num_written, report.num_existing, report.num_samples) == (14, 0, 14)
    assert _sizes(out) == {(32, 16)} and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "cache_prepare_settings.json").read_text())["scale"] == 0.5
    ds = build_dataset("stanford2d3ds", out, fold=1, split="train", augment=False)
    assert collate_panoramas([ds[0], ds[len(ds) - 1]])[1].shape == (2, 16, 32)
    # A resumed run with the same settings is accepted and redoes nothing.
    report = prepare_dataset("stanford2d3ds", manifest.out_dir, out, scale=0.5, progress=False)
    assert (report.num_written, report.num_existing) == (0, 14)


def test_overwrite_removes_only_what_prepare_wrote(synth, tmp_path):
    manifest, _, out, _ = synth
    root = tmp_path / "out"
    shutil.copytree(out, root)
    s = manifest.samples[0]
    (root / s.area / s.name / "my_notes.txt").write_bytes(b"x")  # a user's file inside a sample folder
    foreign = root / "extra" / "x" / "rgb.webp"  # a folder that is neither in the raw folder nor in the caches
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"x")
    report = prepare_dataset("stanford2d3ds", manifest.out_dir, root, scale=0.5, overwrite=True, progress=False)
    assert report.num_written == 14 and _sizes(root) == {(32, 16)} and foreign.read_bytes() == b"x"
    assert sorted(p.name for p in (root / s.area / s.name).iterdir()) == [
        "depth.png", "depth_mask.webp", "instances.webp", "my_notes.txt", "normals.webp", "rgb.webp"
    ]  # fmt: skip


def test_resume_removes_stale_temp_files(synth, tmp_path):
    manifest, _, out, _ = synth
    root = tmp_path / "out"
    shutil.copytree(out, root)
    s = manifest.samples[2]
    targets = [root / s.area / s.name / "depth.png", root / "cache_samples_file_names.json"]
    # Temp files of a writer that is gone (as a killed prepare leaves them): made by a finished process.
    code = "import sys; from panosamic.io import temp_path_for as t; [open(t(p), 'w').close() for p in sys.argv[1:]]"
    subprocess.run([sys.executable, "-c", code, *map(str, targets)], check=True)
    assert len(_temp_files(root)) == 2
    targets[0].unlink()  # the sample a killed run was writing
    report = prepare_dataset("stanford2d3ds", manifest.out_dir, root, progress=False)
    assert (report.num_written, report.num_existing) == (1, 13)
    assert not _temp_files(root)


def _prepare_cli(raw: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "panosamic.cli", "prepare", "stanford2d3ds", "--raw", str(raw), "--out", str(out),
            "--no-progress", *flags]  # fmt: skip


def _kill_mid_write(process, out: Path, min_done: int, deadline_s: float = 120.0) -> list[Path]:
    """SIGKILL ``process`` while it writes a file, once ``min_done`` samples are done; returns the temp
    files it left."""
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < deadline_s:
        if len(list(out.glob("area_*/*/rgb.webp"))) < min_done:
            time.sleep(0.005)
        elif [p for p in out.glob("area_*/*/.*") if is_temp_file(p.name)]:  # busy: a write takes milliseconds
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    return _temp_files(out)


@pytest.mark.slow
def test_kill_9_mid_prepare_then_rerun(tmp_path):
    make_synthetic_stanford(tmp_path / "raw", areas=AREAS, rooms_per_area=2, size=(128, 256), seed=4)
    out = tmp_path / "out"
    process = subprocess.Popen(_prepare_cli(tmp_path / "raw", out, "--scale", "1.0"), stderr=subprocess.PIPE)
    left = _kill_mid_write(process, out, min_done=3)
    assert process.returncode == -9, "prepare finished before it could be killed"
    assert left, "the kill should have interrupted a write"
    assert (out / "cache_prepare_settings.json").is_file() and not (out / "cache_samples_file_names.json").exists()
    assert 3 <= len(list(out.glob("area_*/*/rgb.webp"))) < 14

    refused = subprocess.run(_prepare_cli(tmp_path / "raw", out, "--scale", "0.5"), capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "scale=1.0" in refused.stderr and "--overwrite" in refused.stderr

    resumed = subprocess.run(_prepare_cli(tmp_path / "raw", out), capture_output=True, text=True)  # default scale 1.0
    assert resumed.returncode == 0, resumed.stderr
    names = json.loads((out / "cache_samples_file_names.json").read_text())
    assert sum(len(v) for v in names.values()) == 14 and _sizes(out) == {(256, 128)} and not _temp_files(out)

    again = subprocess.run(_prepare_cli(tmp_path / "raw", out, "--scale", "0.5", "--overwrite"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _sizes(out) == {(128, 64)} and len(list(out.glob("area_*/*/rgb.webp"))) == 14 and not _temp_files(out)
