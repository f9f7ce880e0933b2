"""benchmarks/gpu_suite.py: its dry run (CPU, vit_tiny) works end to end, so the GPU run is known to work
before a GPU is lent; the step runner keeps its time limits and budget."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.py"


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("panosamic_gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["panosamic_gpu_suite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("panosamic_gpu_suite", None)


def test_full_plan_orders_the_most_valuable_rows_first(suite, tmp_path):
    steps = suite.plan(suite.parse_args(["--out", str(tmp_path)]), tmp_path)
    names = [s.name for s in steps]
    assert names[:4] == ["env", "cuda_tests", "forward_vit_h_rgbdn", "train_vit_h_rgbdn_b8"]
    assert names.index("compile_vit_b") > names.index("predict_scale") and names[-2:] == ["sam3_views", "sam3"]
    flags = {s.name: s.argv for s in steps}
    train = flags["train_vit_h_rgbdn_b8"]
    for a, b in (("--vit", "vit_h"), ("--modalities", "rgbdn"), ("--batch", "8"), ("--precision", "bf16"),
                 ("--device", "cuda")):
        assert train[train.index(a) + 1] == b
    assert "--compile" in flags["compile_vit_h"] and "--compile" not in flags["forward_vit_b"]
    scale = flags["predict_scale"]
    assert scale[scale.index("--batch") + 1: scale.index("--batch") + 3] == ["4", "8"]
    assert sum(s.timeout for s in steps if s.skip is None) > suite.GPU_BUDGET_S  # the budget bounds the run
    assert steps[-1].skip  # no SAM 3 arguments: the hook is skipped, with its reason


def test_step_time_limit_and_budget(suite, tmp_path):
    slow = suite.Step("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], 1.0, "sleeps")
    res = suite.run_step(slow, 0, tmp_path, remaining=100)
    assert res.status == "timeout" and res.seconds < 20
    assert json.loads((tmp_path / "00_sleeper.json").read_text())["status"] == "timeout"
    res = suite.run_step(slow, 1, tmp_path, remaining=2)
    assert res.status == "skipped" and "budget" in res.note
    bad = suite.Step("bad", [sys.executable, "-c", "raise SystemExit('the step broke')"], 30, "fails")
    res = suite.run_step(bad, 2, tmp_path, remaining=100)
    assert res.status == "failed" and res.rc == 1 and res.note == "the step broke"


def test_refuses_a_gpu_run_without_cuda_and_unknown_steps(tmp_path):
    import torch

    run = [sys.executable, str(SCRIPT), "--out", str(tmp_path / "o")]
    if not torch.cuda.is_available():
        res = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, check=False)
        assert res.returncode == 2 and "no CUDA device" in res.stderr and "--dry-run" in res.stderr
    res = subprocess.run([*run, "--dry-run", "--only", "nonsense"], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    assert res.returncode == 2 and "nonsense" in res.stderr and "forward_vit_b" in res.stderr


@pytest.mark.slow
def test_dry_run_writes_every_step_and_the_summary(tmp_path):
    out, archive = tmp_path / "suite", tmp_path / "suite.tar.gz"
    res = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--archive", str(archive)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    status = {json.loads(f.read_text())["name"]: json.loads(f.read_text())["status"] for f in out.glob("*.json")
              if f.name[:2].isdigit()}
    assert status == {"env": "ok", "cuda_tests": "ok", "forward_vit_h_rgbdn": "ok", "train_vit_h_rgbdn_b8": "ok",
                      "forward_vit_b": "ok", "students": "ok", "predict_scale": "ok", "forward_vit_h_more": "skipped",
                      "compile_vit_b": "skipped", "compile_vit_h": "skipped", "sam3_views": "skipped",
                      "sam3": "skipped"}
    summary = (out / "summary.md").read_text()
    assert "vit_tiny inference, one panorama | ≥ 16 GB | rgbdn b1 exact fp32: " in summary
    assert "vit_tiny training | ≥ 24 GB | rgbdn b2 fast bf16: " in summary
    assert "| vit_tiny | rgbdn | cpu | 1 | fast | bf16 |" in summary and "| vit_tiny | rgb | cpu | 2 | fast | bf16 |" in summary
    assert "student (onnxruntime) [mobilenetv3_small_050]" in summary
    assert "| 1 | 2 | 1 |" in summary  # the scaled-prediction row (procs, batch, workers)
    bench = json.loads(next((out / "forward_vit_h_rgbdn").glob("*.json")).read_text())["results"]
    assert all(r["error"] is None for r in bench) and bench[2]["parity"]["argmax_agreement"] > 0.95
    assert not (out / "weights_cache").exists()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "suite/summary.md" in names and "suite/01_cuda_tests.log" in names
