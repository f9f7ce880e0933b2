"""CUDA checks (marker ``cuda``; skipped without a CUDA device): the GPU computes what the CPU oracle does.

- ViT-B parity, fp32 exact path on the GPU, against the reference's CPU logits of the parity case
  (``tests/fixtures/parity`` and, where the checkout has one beside it, ``../shared/parity``), with
  TF32 off: the same bounds as tests/test_parity.py (|logit diff| < 1e-3, argmax >= 99.9 %).
- The fast path in bf16 on the GPU keeps >= 99.5 % of the exact fp32 path's argmax decisions.
- The compact student in torch on the GPU equals its ONNX export in onnxruntime, on onnxruntime's CUDA
  provider where installed (else its CPU provider, and the test output says so).

Run on a GPU machine: ``python3 -m pytest tests/test_cuda.py -m cuda -s`` (benchmarks/gpu_suite.py does).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PARITY, build_parity_case

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

#: Copies of the parity case: the test fixture and the shared oracle beside the checkout (if present).
PARITY_ROOTS = [PARITY] + [p for p in (Path(__file__).resolve().parents[2] / "shared" / "parity",) if p.is_dir()]
CASE = "vit_b_rgb_dv_s1"


@pytest.fixture(scope="module")
def gpu_parity():
    """The parity model on the GPU (exact path, fp32, TF32 off), its input and its fp32 logits (CPU)."""
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        model, x, _ = build_parity_case(CASE)
        model = model.cuda().eval()
        model.set_inference_path("exact")
        with torch.no_grad():
            logits = model([{"image": x.cuda()}])[0]["sem_preds"].float().cpu()
        yield model, x, logits
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32


@pytest.mark.parametrize("root", PARITY_ROOTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_vit_b_parity_fp32_on_gpu(gpu_parity, root):
    _, _, logits = gpu_parity
    expected = np.load(root / CASE / "expected.npz")
    assert logits.shape == (13, 512, 1024)
    diff = np.abs(logits[:, ::4, ::4].numpy() - expected["logits_sub4"]).max()
    agree = (logits.argmax(0).numpy() == expected["argmax"]).mean()
    print(f"cuda parity [{root}]: max |logit diff| {diff:.2e}, argmax agreement {agree:.5%}")
    assert diff < 1e-3
    assert agree >= 0.999


def test_bf16_fast_path_keeps_the_argmax_of_exact_fp32(gpu_parity):
    model, x, exact = gpu_parity
    model.set_inference_path("fast", precision="bf16")
    try:
        with torch.no_grad():
            fast = model([{"image": x.cuda()}])[0]["sem_preds"].float().cpu()
    finally:
        model.set_inference_path("exact")
    agree = (fast.argmax(0) == exact.argmax(0)).float().mean().item()
    print(f"cuda fast bf16 vs exact fp32: argmax agreement {agree:.4%}, max |logit diff| "
          f"{(fast - exact).abs().max():.3e}")
    assert agree >= 0.995


def test_student_torch_on_gpu_equals_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from test_student import SMALL, make_student

    from panosamic.student.onnx import OnnxStudent, export_onnx

    student = make_student(modalities=("image",), num_classes=6)
    path = export_onnx(student, tmp_path / "student.onnx")
    cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_ep else ["CPUExecutionProvider"]
    if not cuda_ep:
        note = (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider here (providers: "
                f"{', '.join(ort.get_available_providers())}): the ONNX side ran on the CPU provider")
        print(note)
        warnings.warn(note, stacklevel=1)
    runtime = OnnxStudent(path, providers=providers)
    student = student.cuda()
    x = torch.rand(2, 3, *SMALL, generator=torch.Generator().manual_seed(0)) * 255
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions, as in the ONNX graph
    try:
        with torch.no_grad():
            expected = student.forward_tensor(x.cuda()).float().cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
    got = runtime.forward_tensor(x)
    diff = (got - expected).abs().max().item()
    print(f"student torch cuda vs onnxruntime ({providers[0]}): max |diff| {diff:.2e}")
    assert got.shape == expected.shape == (2, 6, *SMALL)
    assert diff <= 1e-3  # GPU kernels vs the ONNX provider: same fp32 arithmetic, other summation orders
