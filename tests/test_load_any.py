"""``panosamic.load_model`` takes every kind of checkpoint: PanoSAMic ones and compact students."""

from __future__ import annotations

import torch
from conftest import make_tiny_model, random_panorama
from test_student import make_student

import panosamic
from panosamic.student import PanoStudent
from panosamic.student.hub import save_student
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
