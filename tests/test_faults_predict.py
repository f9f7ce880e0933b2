"""Fault cases of prediction (issue 28's prediction rows, issue 26's folder rows), in the style of
tests/test_faults.py: each case runs ``panosamic predict`` as a fresh CLI process (the fork server of
:mod:`faults_helpers`), and asserts the exit status, the line naming the culprit, that no traceback
is printed and that no temp or partial file is left.

Run: ``uv run pytest -m faults tests/test_faults_predict.py`` (the torchrun case is ``slow``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import TRACEBACK, assert_error, assert_no_temp, files_under, record
from PIL import Image

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the CLI fork server needs os.fork (POSIX)"),
]

SIZE = (64, 128)


def predict_argv(checkpoint: Path, out: Path, *inputs) -> list:
    return ["predict", *inputs, "--checkpoint", checkpoint, "--out", out]


def predicted(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["predictions"]


def assert_clean(res, rc: int = 0) -> None:
    assert TRACEBACK not in res.text and "Warning:" not in res.err, res.err[-3000:]
    assert res.rc == rc, f"exit status {res.rc}, expected {rc}\n{res.out[-1500:]}\n{res.err[-1500:]}"


#: The disk fills between panorama a's two files (its labels are written, its colour map is not).
DISK_FULL_AT_A_COLOR = """
import errno
import panosamic.inference.result as r
_orig = r._save_image
def _save(image, path, **kw):
    if path.name == "a_color.png":
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return _orig(image, path, **kw)
r._save_image = _save
"""


def test_scaled_predict_disk_full_midway_names_the_panorama_and_leaves_none_of_it(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    argv = [*predict_argv(model_dir, out, panos), "--outputs", "labels,color", "--workers", "0", "--no-progress"]
    res = cli.run(argv, inject=DISK_FULL_AT_A_COLOR)
    assert_clean(res, rc=1)
    lines = [ln for ln in res.err.splitlines() if "a.png" in ln and "disk full" in ln]
    assert lines, res.err  # the failure is named: which panorama and why
    record(lines[0])
    assert "failed 1" in res.out, res.out
    assert not list(out.glob("a_*")), "a panorama that failed left part of its outputs"
    assert sorted(p.name for p in out.glob("b_*")) == ["b_color.png", "b_labels.png"]
    rows = [json.loads(x) for x in (out / "summary.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == ["b"]
    assert [Path(f["input"]).name for f in map(json.loads, (out / "failed.jsonl").read_text().splitlines())] == ["a.png"]
    assert_no_temp(out)


def test_predict_out_is_the_input_folder_run_twice(cli, model_dir, panos, tmp_path):
    folder = shutil.copytree(panos, tmp_path / "in")
    for _ in range(2):
        res = cli.run(predict_argv(model_dir, folder, folder))
        assert_clean(res)
        assert sorted(predicted(folder)) == ["a", "b"], res.err  # its own outputs never became inputs
    assert "ignored" not in res.err, res.err  # nor are they reported as strangers
    assert_no_temp(folder)


def test_predict_manifest_of_binary_garbage(cli, model_dir, tmp_path):
    manifest = tmp_path / "list.txt"
    manifest.write_bytes(b"\xff\xfe\x00\x01" + os.urandom(200))
    out = tmp_path / "out"
    res = cli.run([*predict_argv(model_dir, out), "--manifest", manifest])
    assert_error(res, "predict", str(manifest), "not a text list")
    assert files_under(out) == []


def test_predict_empty_outputs_refused(cli, model_dir, panos, tmp_path):
    res = cli.run([*predict_argv(model_dir, tmp_path / "out", panos), "--outputs", ""])
    assert_error(res, "predict", "--outputs", "write nothing")
    assert files_under(tmp_path / "out") == []


def test_depth_given_to_an_rgb_model_is_one_note(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    res = cli.run([*predict_argv(model_dir, out, panos), "--depth", panos], env={"PYTHONWARNINGS": None})
    assert_clean(res)
    notes = [ln for ln in res.err.splitlines() if "--depth" in ln]
    assert notes == ["panosamic predict: note: --depth is ignored: this model uses only image"], res.err
    record(notes[0])
    assert sorted(predicted(out)) == ["a", "b"]


def test_folder_extras_reported_and_recursive_walks_sub_folders(cli, model_dir, panos, tmp_path):
    folder = shutil.copytree(panos, tmp_path / "in")
    (folder / "notes.txt").write_text("not a panorama")
    sub = folder / "more"
    sub.mkdir()
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(sub / "c.png")
    out = tmp_path / "out"
    res = cli.run(predict_argv(model_dir, out, folder))
    assert_clean(res)
    ignored = [ln for ln in res.err.splitlines() if "ignored" in ln]
    assert len(ignored) == 1 and "1 sub-folder (more" in ignored[0] and "notes.txt" in ignored[0], res.err
    assert "--recursive" in ignored[0]
    record(ignored[0])
    assert sorted(predicted(out)) == ["a", "b"]
    res = cli.run([*predict_argv(model_dir, tmp_path / "rec", folder), "--recursive"])
    assert_clean(res)
    assert sorted(predicted(tmp_path / "rec")) == ["a", "b", "c"]


def test_greyscale_and_one_pixel_off_inputs_are_predicted_with_a_note(cli, model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 256, (64, 129, 3), dtype=np.uint8)).save(folder / "wide.png")  # 129x64
    Image.fromarray(rng.integers(0, 256, (64, 140, 3), dtype=np.uint8)).save(folder / "bad.png")
    out = tmp_path / "out"
    res = cli.run(predict_argv(model_dir, out, folder))
    assert_clean(res, rc=1)  # documented: 1 when some inputs were skipped (bad.png)
    assert "grey.png is greyscale: converted to RGB" in res.err and "wide.png is 129x64, within 1 px" in res.err
    bad = next(ln for ln in res.err.splitlines() if "bad.png" in ln)
    assert "140x64" in bad and "resize it to 2:1" in bad, bad
    record(bad)
    assert sorted(predicted(out)) == ["grey", "wide"]
    assert Image.open(out / "wide_labels.png").size == (129, 64)


@pytest.mark.slow
def test_torchrun_over_corrupt_panoramas_is_no_crash(model_dir, panos, tmp_path):
    folder = shutil.copytree(panos, tmp_path / "in")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "panosamic.cli", "predict", str(folder), "--checkpoint", str(model_dir), "--out", str(out),
           "--workers", "0", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "ChildFailedError" not in text and TRACEBACK not in text, text[-3000:]
    summary = [ln for ln in proc.stdout.splitlines() if "panorama(s) on 2 process(es)" in ln]
    assert len(summary) == 1 and "failed 1" in summary[0] and "--strict" in summary[0], proc.stdout
    assert "broken.png" in proc.stderr
    record(summary[0])
    assert sorted(p.name for p in out.glob("*_labels.png")) == ["a_labels.png", "b_labels.png"]
    assert_no_temp(out)
