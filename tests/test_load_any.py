"""``panosamic.load_model`` takes every kind of checkpoint: PanoSAMic ones and compact students."""

from __future__ import annotations

import torch
from conftest import make_tiny_model, random_panorama
from test_student import make_student

import panosamic
from panosamic.hub.student import save_student
from panosamic.student import PanoStudent
from panosamic.student.onnx import OnnxStudent, export_onnx


def test_student_folder_and_onnx_load_through_load_model(tmp_path):
    student = make_student().eval()
    save_student(student, tmp_path / "student")
    loaded = panosamic.load_model(tmp_path / "student")
    assert isinstance(loaded, PanoStudent) and loaded.config == student.config
    x = random_panorama(height=student.config.native_size[0], width=student.config.native_size[1])
    with torch.no_grad():
        torch.testing.assert_close(loaded([x])[0]["sem_preds"], student([x])[0]["sem_preds"])
    export_onnx(student, tmp_path / "student.onnx")
    assert isinstance(panosamic.load_model(tmp_path / "student.onnx"), OnnxStudent)


def test_panosamic_folder_is_not_taken_for_a_student(tmp_path):
    model = make_tiny_model()
    model.save_pretrained(tmp_path / "m")
    assert type(panosamic.load_model(tmp_path / "m")).__name__ == "PanoSAMic"


def test_export_onnx_then_predict_with_onnxruntime_from_the_cli(tmp_path):
    from PIL import Image

    from panosamic.cli import main

    student = make_student().eval()
    save_student(student, tmp_path / "student")
    onnx = tmp_path / "student.onnx"
    assert main(["export", str(tmp_path / "student"), str(onnx), "--format", "onnx"]) == 0
    h, _ = student.config.native_size
    Image.new("RGB", (2 * h, h), (120, 80, 40)).save(tmp_path / "pano.png")
    out = tmp_path / "pred"
    assert main(["predict", str(tmp_path / "pano.png"), "--checkpoint", str(onnx), "--runtime", "onnx",
                 "--out", str(out)]) == 0
    assert Image.open(out / "pano_labels.png").size == (2 * h, h)
    assert main(["predict", str(tmp_path / "pano.png"), "--checkpoint", str(tmp_path / "student"), "--runtime", "onnx",
                 "--out", str(out)]) == 1  # --runtime onnx needs an .onnx file
