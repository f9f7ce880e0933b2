"""Prediction at scale (issue 16): sharding over torchrun ranks, resume after kill -9, output formats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from PIL import Image

from panosamic.inference.manifest import (
    PROGRESS_DIR,
    ProgressLog,
    file_fingerprint,
    is_finished,
    read_progress,
)
from panosamic.inference.scale import ScaleOptions, collect_items, predict_dataset
from panosamic.inference.sources import items_from_list, shard
from panosamic.inference.writers import FAILED_JSONL, SUMMARY_JSONL, parse_outputs

GOOD = 5
#: Runs a scaled prediction; argv: model dir, input folder, output folder, batch size, workers, outputs.
SCRIPT = """
import sys
import panosamic
from panosamic.inference.scale import predict_dataset
model = panosamic.load_model(sys.argv[1])
r = predict_dataset(model, [sys.argv[2]], sys.argv[3], batch_size=int(sys.argv[4]), workers=int(sys.argv[5]),
                    outputs=sys.argv[6], progress=False)
print("REPORT", r.rank, r.predicted, r.resumed, len(r.failed), flush=True)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A saved tiny model (native 64x128), 5 panoramas of 64x128 and one corrupt file."""
    root = tmp_path_factory.mktemp("scale")
    make_tiny_model(canvas_size=128).save_pretrained(root / "model")
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        Image.fromarray(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    (root / "script.py").write_text(SCRIPT)
    return root


def _load(setup):
    import panosamic

    return panosamic.load_model(setup / "model")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return dict(env, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _entries(out: Path) -> dict[str, list[dict]]:
    logs = {}
    for p in sorted((out / PROGRESS_DIR).glob("rank-*.jsonl")):
        logs[p.name] = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return logs


def _labels(out: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / f"{name}_labels.png"))


@pytest.mark.slow
def test_two_processes_write_each_panorama_once_like_one_process(setup, tmp_path):
    out2, out1 = tmp_path / "two", tmp_path / "one"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "panosamic.cli", "predict", str(setup / "in"), "--checkpoint", str(setup / "model"), "--out", str(out2),
           "--outputs", "labels,probs", "--batch-size", "2", "--workers", "1", "--no-progress"]  # what users run
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert "6 panorama(s) on 2 process(es): predicted 5, already finished 0, failed 1" in proc.stdout, proc.stderr
    assert proc.returncode == 0, proc.stderr  # under torchrun a finished run exits 0 (no launcher crash) ...
    assert "(exit status 0 under torchrun; --strict for 1)" in proc.stdout  # ... and says so
    assert "ChildFailedError" not in proc.stderr
    assert "broken.png" in proc.stderr  # the corrupt file is reported ...
    failed = [json.loads(line) for line in (out2 / FAILED_JSONL).read_text().splitlines()]
    assert [Path(f["input"]).name for f in failed] == ["broken.png"]  # ... and listed, once

    keys = sorted(str(p.resolve()) for p in (setup / "in").iterdir())
    logs = _entries(out2)
    assert sorted(logs) == ["rank-00000.jsonl", "rank-00001.jsonl"]
    for r, name in enumerate(sorted(logs)):  # rank r took inputs r, r + 2, ...: no input twice
        assert [e["key"] for e in logs[name]] == [k for k in keys[r::2] if not k.endswith("broken.png")]
    assert sorted(p.name for p in out2.glob("*_labels.png")) == [f"p{i}_labels.png" for i in range(GOOD)]

    report = predict_dataset(_load(setup), [setup / "in"], out1, batch_size=2, workers=0, outputs="labels,probs",
                             progress=False)
    assert (report.predicted, report.resumed, len(report.failed)) == (GOOD, 0, 1)
    for i in range(GOOD):
        assert np.array_equal(_labels(out1, f"p{i}"), _labels(out2, f"p{i}"))
        with np.load(out1 / f"p{i}_probs.npz") as a, np.load(out2 / f"p{i}_probs.npz") as b:
            assert a["probs"].dtype == np.float16 and a["probs"].shape == (13, 64, 128)
            np.testing.assert_allclose(a["probs"].astype(np.float32), b["probs"].astype(np.float32), atol=2e-3)
    rows1 = [json.loads(x) for x in (out1 / SUMMARY_JSONL).read_text().splitlines()]
    rows2 = [json.loads(x) for x in (out2 / SUMMARY_JSONL).read_text().splitlines()]
    assert [r["name"] for r in rows2] == [f"p{i}" for i in range(GOOD)] and rows1 == rows2
    assert abs(sum(rows2[0]["class_fractions"].values()) - 1.0) < 1e-9


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_finishes_without_redoing(setup, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(setup / "script.py"), str(setup / "model"), str(setup / "in"), str(out), "1", "0",
           "labels"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / PROGRESS_DIR / "rank-00000.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if log.is_file() and log.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = [e["name"] for e in _entries(out)["rank-00000.jsonl"]]
    assert 1 <= len(finished) < GOOD, "the run must be killed mid-way"
    mtimes = {n: (out / f"{n}_labels.png").stat().st_mtime_ns for n in finished}

    report = predict_dataset(_load(setup), [setup / "in"], out, workers=0, outputs="labels", progress=False)
    assert report.resumed == len(finished) and report.predicted == GOOD - len(finished)
    assert {n: (out / f"{n}_labels.png").stat().st_mtime_ns for n in finished} == mtimes  # not rewritten
    assert sorted(p.name for p in out.glob("*_labels.png")) == [f"p{i}_labels.png" for i in range(GOOD)]
    assert len((out / SUMMARY_JSONL).read_text().splitlines()) == GOOD


def test_rerun_skips_and_redoes_changed_inputs_and_checkpoints(setup, tmp_path):
    from panosamic.inference import predict

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        (folder / f"p{i}.png").write_bytes((setup / "in" / f"p{i}.png").read_bytes())
    out = tmp_path / "out"
    model = _load(setup)
    def run(m):
        return predict_dataset(m, [folder], out, workers=0, outputs="labels,color", progress=False)
    first = run(model)
    assert (first.predicted, first.resumed) == (2, 0)
    assert np.array_equal(_labels(out, "p0"), predict(model, folder / "p0.png").labels)  # the same as predict()
    again = run(model)
    assert (again.predicted, again.resumed) == (0, 2)

    img = np.asarray(Image.open(folder / "p1.png")).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(folder / "p1.png")  # a changed input is predicted again, alone
    changed = run(model)
    assert (changed.predicted, changed.resumed) == (1, 1)

    other = make_tiny_model(canvas_size=128, seed=1)  # another checkpoint: everything again
    redo = run(other)
    assert (redo.predicted, redo.resumed) == (2, 0)
    assert not np.array_equal(_labels(out, "p0"), predict(model, folder / "p0.png").labels)


# ------------------------------------------------------------------------------ fast units
def test_progress_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / PROGRESS_DIR / "rank-00000.jsonl"
    with ProgressLog(path) as log:
        log.append({"key": "a", "time": 1.0})
    with open(path, "ab") as f:
        f.write(b'{"key": "b", "ti')  # kill -9 in the middle of a write
    with ProgressLog(path) as log:
        log.append({"key": "c", "time": 2.0})
    assert sorted(read_progress(tmp_path)) == ["a", "c"]
    assert sorted(read_progress(tmp_path, {"c"})) == ["c"]


def test_is_finished_needs_same_input_checkpoint_options_and_files(tmp_path):
    (tmp_path / "x_labels.png").write_bytes(b"png")
    src = tmp_path / "x.png"
    src.write_bytes(b"data")
    expected = {"fingerprint": file_fingerprint({"image": src}), "checkpoint": "c1", "options": "o1",
                "files": {"labels": "x_labels.png"}}
    entry = json.loads(json.dumps(expected))
    assert is_finished(entry, expected, tmp_path)
    for key, value in (("checkpoint", "c2"), ("options", "o2"), ("files", {"labels": "y_labels.png"})):
        assert not is_finished(dict(entry, **{key: value}), expected, tmp_path)
    src.write_bytes(b"other data")
    assert not is_finished(entry, dict(expected, fingerprint=file_fingerprint({"image": src})), tmp_path)
    assert file_fingerprint({"image": src}, "hash")["image"] != file_fingerprint({"image": src})["image"]
    (tmp_path / "x_labels.png").unlink()
    assert not is_finished(entry, expected, tmp_path)  # a deleted output is written again


def test_list_files_and_sharding(tmp_path):
    for name in ("b.png", "a.png", "a_depth.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# panoramas\nb.png\n\na.png\nb.png\n")
    items = items_from_list(tmp_path / "list.txt")
    assert [i.name for i in items] == ["a", "b"]
    (tmp_path / "list.csv").write_text("image,depth\nb.png,\na.png,a_depth.png\n")
    items = items_from_list(tmp_path / "list.csv")
    assert items[0].files == {"image": tmp_path / "a.png", "depth": tmp_path / "a_depth.png"}
    assert items[1].files == {"image": tmp_path / "b.png"}
    (tmp_path / "bad.csv").write_text("file\nb.png\n")
    with pytest.raises(ValueError, match="none of the columns"):
        items_from_list(tmp_path / "bad.csv")
    seven = list(range(7))
    shards = [shard(seven, r, 3) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]] and sorted(i for s in shards for i in s) == seven


def test_options_are_checked():
    assert parse_outputs("probs, labels") == ("labels", "probs")
    with pytest.raises(ValueError, match="subset of labels,color,overlay,probs"):
        parse_outputs("labels,depth")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        ScaleOptions(batch_size=0)
    with pytest.raises(ValueError, match="exactly one of"):
        collect_items(["a.png"], manifest="list.txt")
    with pytest.raises(ValueError, match="needs --dataset-path"):
        collect_items(dataset="stanford2d3ds")


@pytest.mark.slow
def test_dataset_split_with_depth(tmp_path):
    from panosamic.data import build_dataset
    from panosamic.data.prepare import prepare_dataset
    from panosamic.inference import predict
    from panosamic.synth import make_synthetic_stanford

    make_synthetic_stanford(tmp_path / "raw", rooms_per_area=1, size=(64, 128))  # depth statistics need all areas
    root = tmp_path / "processed"
    prepare_dataset("stanford2d3ds", tmp_path / "raw", root, scale=1.0, progress=False)
    model = make_tiny_model(modalities=("image", "depth"), canvas_size=128)
    out = tmp_path / "out"
    report = predict_dataset(model, out_dir=out, dataset="stanford2d3ds", dataset_path=root, split="test", fold=1,
                             outputs="labels", workers=1, progress=False)  # fmt: skip
    ds = build_dataset("stanford2d3ds", root, fold=1, split="test", modalities=("image", "depth"), augment=False)
    assert (report.predicted, len(report.failed)) == (len(ds), 0) == (2, 0)
    rows = [json.loads(x) for x in (out / SUMMARY_JSONL).read_text().splitlines()]
    assert [r["name"] for r in rows] == ds.sample_names  # area/sample, in the dataset's order
    inputs = ds.load_inputs(0)
    expected = predict(model, inputs["image"], depth=inputs["depth"]).labels
    assert np.array_equal(_labels(out, ds.sample_names[0]), expected)


def test_panosamic_predict_takes_the_scaled_path(setup, tmp_path, capsys):
    from panosamic.cli import main, parse_args
    from panosamic.inference.scale_cli import wants_scaled

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "p0.png").write_bytes((setup / "in" / "p0.png").read_bytes())
    out = tmp_path / "out"
    argv = ["predict", str(folder), "--checkpoint", str(setup / "model"), "--out", str(out)]
    assert not wants_scaled(parse_args(argv)) and wants_scaled(parse_args([*argv, "--workers", "0"]))
    assert main([*argv, "--outputs", "labels,overlay", "--workers", "0", "--no-resume", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0_labels.png", "p0_overlay.jpg", "progress", SUMMARY_JSONL]
    assert "predicted 1, already finished 0, failed 0" in capsys.readouterr().out


def test_source_decodes_resizes_and_reports_bad_inputs(tmp_path):
    from panosamic.inference.sources import PanoramaSource, items_from_paths, resize_inputs

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 64), dtype=np.uint8)).save(tmp_path / "a_depth.png")
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"junk")
    items = items_from_paths([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"], depth=tmp_path)
    source = PanoramaSource(items, ("image", "depth"), (64, 128), keep_rgb=True)
    a, b, c = (source[i] for i in range(3))
    assert a["error"] is None and a["size"] == (32, 64) and a["rgb"].shape == (32, 64, 3)
    assert {k: tuple(v.shape) for k, v in a["inputs"].items()} == {"image": (3, 64, 128), "depth": (3, 64, 128)}
    assert "no depth file for" in b["error"] and "cannot decode" in c["error"]
    x = {"image": torch.rand(3, 32, 64) * 255, "normals": torch.rand(3, 32, 64) * 255}
    y = resize_inputs(x, (64, 128))  # bilinear for the image, nearest for normals, like the model
    assert torch.equal(y["normals"][:, ::2, ::2], x["normals"])
