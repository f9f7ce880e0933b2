"""ONNX export of the student: checked, self-describing, equal to PyTorch within 1e-4."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
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


#: ``panosamic predict`` of an .onnx student in a fresh process; prints which heavy modules it imported.
_NO_TORCH = """
import sys
from panosamic.cli import main
rc = main(sys.argv[1:])
print("IMPORTED", sorted(m for m in ("torch", "torchvision", "sympy", "timm") if m in sys.modules))
sys.exit(rc)
"""


def test_predict_with_an_onnx_student_imports_no_torch(tmp_path) -> None:
    from PIL import Image

    student = make_student(num_classes=5)
    path = export_onnx(student, tmp_path / "student.onnx")
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (64, 128), dtype=np.uint8)).save(folder / "grey.png")  # converted, a note
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, "predict", str(folder), "--checkpoint", str(path),
                           "--runtime", "onnx", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stdout, proc.stdout  # neither torch nor torchvision (nor sympy, timm)
    assert "grey.png is greyscale: converted to RGB" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["predictions"]) == ["a", "grey"]
    # the torch-free path gives the labels the PyTorch student gives
    from panosamic.inference import predict

    labels = np.asarray(Image.open(out / "a_labels.png"))
    expected = predict(student, folder / "a.png")
    assert labels.shape == (32, 64)
    assert (labels == expected.labels).mean() > 0.999
    got = predict(OnnxStudent(path), np.asarray(Image.open(folder / "a.png")))
    assert isinstance(got.logits, np.ndarray)
    np.testing.assert_allclose(got.logits, expected.logits.numpy(), atol=1e-3)
