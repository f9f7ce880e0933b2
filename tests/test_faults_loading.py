"""Fault injection, loading (issue 28's rows): students and PanoSAMic under the same checks.

Each case is a fresh ``panosamic`` process (:class:`faults_helpers.CliServer`): the exit status, the one
error line naming the culprit, no traceback, no temp or partial file. The shared checks: one state-dict
check with the non-finite scan for every kind of model, one reader of weight files, config.json read
with its fields checked (the class count included) before any model is built.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_helpers import TRACEBACK, assert_error, assert_no_temp, files_under
from PIL import Image
from safetensors.torch import load_file, save_file

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the CLI fork server needs os.fork (POSIX)"),
]

DATASET = "stanford2d3ds"
SIZE = (64, 128)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    from panosamic.hub.student import save_student
    from panosamic.student import PanoStudent, StudentConfig

    torch.manual_seed(0)
    model = PanoStudent(StudentConfig(backbone="mobilenetv3_small_100", num_classes=13, native_size=SIZE,
                                      decoder_channels=8, dataset=DATASET))
    return save_student(model, tmp_path_factory.mktemp("student") / "student")


@pytest.fixture(scope="module")
def panos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("panos")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(d / "a.png")
    return d


def predict_argv(checkpoint: Path, out: Path, panos: Path) -> list:
    return ["predict", panos, "--checkpoint", checkpoint, "--out", out, "--device", "cpu"]


def _with_nan(folder: Path, dest: Path) -> tuple[Path, str]:
    shutil.copytree(folder, dest)
    tensors = load_file(dest / "model.safetensors")
    name = next(k for k in sorted(tensors) if k.startswith("decoder") and tensors[k].is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, dest / "model.safetensors")
    return dest, name


def test_student_with_nan_refused_by_predict_and_onnx_export(cli, student_dir, panos, tmp_path):
    folder, name = _with_nan(student_dir, tmp_path / "nan")
    out = tmp_path / "out"
    assert_error(cli.run(predict_argv(folder, out, panos)), "predict", name, "NaN or infinite")
    assert files_under(out) == []
    onnx = tmp_path / "student.onnx"
    assert_error(cli.run(["export", folder, onnx, "--format", "onnx"]), "export", name, "NaN or infinite")
    assert not onnx.exists()
    assert_no_temp(tmp_path)


def test_truncated_student_weights(cli, student_dir, panos, tmp_path):
    folder = shutil.copytree(student_dir, tmp_path / "trunc")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    line = assert_error(cli.run(predict_argv(folder, out, panos)), "predict", str(folder / "model.safetensors"),
                        "truncated or corrupt")
    assert "SafetensorError" not in line
    assert files_under(out) == []


def test_panosamic_config_with_student_weights(cli, student_dir, model_dir, panos, tmp_path):
    folder = shutil.copytree(student_dir, tmp_path / "mixed")
    shutil.copy(model_dir / "config.json", folder / "config.json")  # PanoSAMic's config, the student's weights
    out = tmp_path / "out"
    line = assert_error(cli.run(predict_argv(folder, out, panos)), "predict", str(folder),
                        "describes a PanoSAMic", "compact student")
    assert "SAM weights" not in line
    assert files_under(out) == []


def test_unreadable_weights_say_permission_denied(cli, model_dir, panos, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "locked")
    weights = folder / "model.safetensors"
    weights.chmod(0)
    inject = ""
    if os.geteuid() == 0:  # root reads anything: the kernel's refusal is raised where the file is opened
        inject = f"""
import builtins
_open = builtins.open
def _denied(f, *a, **k):
    if str(f) == {str(weights)!r}:
        raise PermissionError(13, "Permission denied", str(f))
    return _open(f, *a, **k)
builtins.open = _denied
"""
    out = tmp_path / "out"
    line = assert_error(cli.run(predict_argv(folder, out, panos), inject=inject), "predict", "permission denied",
                        str(weights))
    assert "No such file" not in line and "corrupt" not in line
    weights.chmod(0o644)
    assert files_under(out) == []


@pytest.mark.parametrize("value", [1_000_000_000, 1e9])
def test_huge_class_count_refused_when_read(cli, model_dir, student_dir, panos, tmp_path, value):
    for kind, src in (("panosamic", model_dir), ("student", student_dir)):
        folder = shutil.copytree(src, tmp_path / kind)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(num_classes=value, class_names=None, palette=None)
        (folder / "config.json").write_text(json.dumps(cfg))
        out = tmp_path / f"out_{kind}"
        res = cli.run(predict_argv(folder, out, panos))
        assert_error(res, "predict", str(folder / "config.json"), "num_classes")
        assert "memory" not in res.err and res.peak_mb < 2000
        assert files_under(out) == []


def test_evaluate_a_distilled_student(cli, student_dir, tmp_path):
    """A distillation run folder (its student/ and model_best.pth) scored like any model."""
    from panosamic.data.prepare import prepare_dataset
    from panosamic.student import PanoStudent, StudentConfig
    from panosamic.synth import make_synthetic_stanford

    make_synthetic_stanford(tmp_path / "raw", rooms_per_area=1, size=SIZE, seed=0, progress=False)
    prepare_dataset(DATASET, tmp_path / "raw", tmp_path / "data", scale=1.0, progress=False)
    run = tmp_path / "run"
    shutil.copytree(student_dir, run / "student")
    config = StudentConfig.from_json(student_dir / "config.json")
    torch.save({"kind": "panosamic-student", "student_config": json.loads((student_dir / "config.json").read_text()),
                "model": PanoStudent(config).state_dict(), "epoch": 1}, run / "model_best.pth")
    out = tmp_path / "r.json"
    res = cli.run(["evaluate", "--checkpoint", run, "--dataset", DATASET, "--dataset-path", tmp_path / "data",
                   "--workers", "0", "--device", "cpu", "--no-progress", "--output", out])
    assert res.rc == 0 and TRACEBACK not in res.text, res.err[-3000:]
    fold = json.loads(out.read_text())["folds"][0]
    assert fold["checkpoint"]["kind"] == "panosamic-student" and fold["num_samples"] > 0
    assert "fold 1: mIoU" in res.out
    assert_no_temp(tmp_path)


def test_panosamic_options_given_for_a_student_are_named(cli, student_dir, panos, tmp_path):
    out = tmp_path / "out"
    res = cli.run([*predict_argv(student_dir, out, panos), "--refine"])
    assert_error(res, "predict", str(student_dir), "compact student", "--refine")
    assert files_under(out) == []
