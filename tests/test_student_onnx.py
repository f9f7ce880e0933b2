"""ONNX export of the student: checked, self-describing, equal to PyTorch within 1e-4."""

from __future__ import annotations

import pytest
import torch
from conftest import random_panorama
from test_student import SMALL, make_student

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from panosamic.student.onnx import OnnxStudent, export_onnx, read_onnx_config


@pytest.fixture(scope="module")
def student():
    return make_student(modalities=("image", "depth"), num_classes=6)


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_equals_pytorch(student, tmp_path, dynamic: bool) -> None:
    path = export_onnx(student, tmp_path / "student.onnx", dynamic_size=dynamic)
    onnx.checker.check_model(onnx.load(str(path)))
    assert [p.name for p in tmp_path.iterdir()] == ["student.onnx"]  # written atomically, no temp file left
    runtime = OnnxStudent(path)
    assert runtime.config == student.config and runtime.dynamic_size is dynamic
    sizes = [SMALL, (96, 192)] if dynamic else [SMALL]
    for h, w in sizes:
        for batch in (1, 2):
            x = torch.rand(batch, 6, h, w) * 255
            with torch.no_grad():
                expected = student.forward_tensor(x)
            got = runtime.forward_tensor(x)
            assert got.shape == expected.shape == (batch, 6, h, w)
            assert (got - expected).abs().max() <= 1e-4
    if not dynamic:
        with pytest.raises(ValueError, match="exported for"):
            runtime.forward_tensor(torch.zeros(1, 6, 96, 192))


def test_onnx_runtime_has_the_predict_interface(student, tmp_path) -> None:
    runtime = OnnxStudent(export_onnx(student, tmp_path / "s.onnx"))
    samples = [random_panorama(("image", "depth"), 32, 64, seed=3), random_panorama(("image", "depth"), *SMALL)]
    with torch.no_grad():
        expected = student(samples)
    got = runtime(samples)
    for e, g in zip(expected, got):
        assert g["instance_masks"] == [] and g["sem_preds"].shape == e["sem_preds"].shape
        assert (g["sem_preds"] - e["sem_preds"]).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="missing modality"):
        runtime([random_panorama(("image",), *SMALL)])
    predict = pytest.importorskip("panosamic.inference.predict").predict
    result = predict(runtime, samples[0]["image"], depth=samples[0]["depth"])
    assert tuple(result.labels.shape) == (32, 64)


def test_foreign_onnx_files_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        read_onnx_config(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        read_onnx_config(tmp_path / "junk.onnx")
    plain = torch.nn.Conv2d(3, 2, 1)
    torch.onnx.export(plain, (torch.zeros(1, 3, 4, 4),), str(tmp_path / "plain.onnx"), dynamo=False)
    with pytest.raises(ValueError, match="carries no 'panosamic_student_config' metadata"):
        OnnxStudent(tmp_path / "plain.onnx")
    with pytest.raises(TypeError, match="exports a PanoStudent"):
        export_onnx(plain, tmp_path / "x.onnx")  # type: ignore[arg-type]
