"""Distillation: losses, SAM boundaries, the teacher cache, the loop (exact resume), the CLI's light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, prepared_synthetic

from panosamic.distill.cache import TeacherCache, teacher_fingerprint
from panosamic.distill.losses import DistillLoss, DistillLossConfig, boundary_map

DATASET = "stanford2d3ds"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores
    yield
    torch.set_num_threads(n)


def test_kd_term_is_the_tempered_kl_times_t_squared() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 4, 8, generator=g), torch.randn(2, 5, 4, 8, generator=g)
    for temp in (1.0, 3.0):
        out = DistillLoss(DistillLossConfig(temperature=temp))(s, t)
        p = torch.softmax(t / temp, 1)
        expected = (p * (p.log() - torch.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
        assert out.total.item() == pytest.approx(expected.item(), rel=1e-5)
        assert out.terms["kd"] == pytest.approx(expected.item(), rel=1e-5)
    assert DistillLoss()(t, t).total.abs().item() < 1e-6  # a student equal to the teacher: no loss


def test_ce_ignores_unlabelled_pixels_and_boundary_term_uses_only_boundaries() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(1, 3, 4, 4, generator=g, requires_grad=True), torch.randn(1, 3, 4, 4, generator=g)
    loss = DistillLoss(DistillLossConfig(kd_weight=0.0, ce_weight=1.0, boundary_weight=1.0))
    labels = torch.full((1, 4, 4), -1)
    assert "ce" not in loss(s, t, labels).terms  # nothing labelled: no CE term
    labels[0, 0, :2] = torch.tensor([0, 2])
    bounds = torch.zeros(1, 4, 4, dtype=torch.bool)
    bounds[0, 1, 1] = True
    out = loss(s, t, labels, bounds)
    ce = torch.nn.functional.cross_entropy(s[0, :, 0, :2].T, torch.tensor([0, 2]))
    assert out.terms["ce"] == pytest.approx(ce.item(), rel=1e-5)
    p = torch.softmax(t[0, :, 1, 1] / 2, 0)
    kl = (p * (p.log() - torch.log_softmax(s[0, :, 1, 1] / 2, 0))).sum() * 4
    assert out.terms["boundary"] == pytest.approx(kl.item(), rel=1e-5)
    out.total.backward()
    assert s.grad is not None and s.grad[0, :, 3, 3].abs().sum() == 0  # unlabelled, off-boundary: no gradient
    with pytest.raises(ValueError, match="all 0"):
        DistillLossConfig(kd_weight=0)
    with pytest.raises(ValueError, match="temperature"):
        DistillLossConfig(temperature=0)


def test_boundary_map_marks_mask_edges_and_wraps_at_the_seam() -> None:
    square = torch.zeros(8, 16, dtype=torch.bool)
    square[2:6, 4:8] = True
    edges = boundary_map([{"segmentation": square}], (8, 16))
    assert edges[2, 4:8].all() and edges[2:6, 4].all() and not edges[3:5, 5:7].any() and edges.sum() == 12
    across = torch.zeros(8, 16, dtype=torch.bool)
    across[2:6, :2] = True
    across[2:6, -2:] = True  # one object split by the ±180° seam
    edges = boundary_map([{"segmentation": across}], (8, 16))
    assert not edges[3:5, 0].any() and not edges[3:5, -1].any()  # no edge at the seam itself
    assert edges[3:5, 1].all() and edges[3:5, -2].all()


def test_cache_round_trip_keys_and_bad_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Conv2d(3, 4, 3)
    torch.manual_seed(1)
    tid, other = teacher_fingerprint(teacher), teacher_fingerprint(torch.nn.Conv2d(3, 4, 3))
    assert tid == teacher_fingerprint(teacher) != other
    assert teacher_fingerprint(teacher, revision="v2") != tid
    cache = TeacherCache(tmp_path, tid, stride=2)
    digests = {"image": "abc"}
    assert cache.get(digests) is None and digests not in cache
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.arange(32) * (2 * torch.pi / 32), indexing="ij")
    logits = torch.stack([y, x.cos(), y * x.sin()])  # smooth and periodic: 1/2 resolution is nearly lossless
    bounds = torch.rand(16, 32) > 0.5
    path = cache.put(digests, logits, bounds)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temp file left
    got = cache.get(digests)
    assert got is not None and got.logits.shape == (3, 16, 32)
    assert (got.logits - logits).abs().max() < 0.1
    assert torch.equal(got.boundaries, bounds)
    assert cache.get({"image": "abd"}) is None  # another file
    assert TeacherCache(tmp_path, other, stride=2).get(digests) is None
    path.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.get(digests) is None


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return prepared_synthetic(tmp_path_factory.mktemp("distill_data"), rooms_per_area=1, size=(64, 128), seed=0)


def settings(out: Path, data: Path, **changes):
    from panosamic.distill.trainer import DistillSettings

    base = {"output": str(out), "dataset": DATASET, "dataset_path": str(data), "backbone": "mobilenetv3_small_100",
            "native_size": (64, 128), "epochs": 2, "batch_size": 2, "ce_weight": 0.5, "boundary_weight": 0.0,
            "cache_dir": str(out.parent / "cache"), "progress": False, "log_every": 1, "keep_last": True,
            "validate": False}
    return DistillSettings(**{**base, **changes})


def _losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in lines if "train/loss" in r}


@pytest.mark.slow
def test_resume_mid_epoch_equals_uninterrupted_and_the_cache_is_reused(synthetic: Path, tmp_path: Path) -> None:
    from panosamic.distill.trainer import Distiller
    from panosamic.hub.student import load_student
    from panosamic.training.checkpoint import load_checkpoint

    teacher = make_tiny_model()
    a = Distiller(settings(tmp_path / "a", synthetic), teacher=teacher)
    assert a.iters_per_epoch == 2 and len(a.train_ds) == 5  # fold 1: 5 training rooms, batch 2
    result_a = a.fit()
    assert result_a.finished and result_a.global_step == 4
    b = Distiller(settings(tmp_path / "b", synthetic, max_steps=3), teacher=teacher)
    assert b.label() == 0  # every panorama's teacher output came from the cache
    assert not b.fit().finished
    interrupted = load_checkpoint(b.run_dir / "model_last.pth")
    assert (interrupted["epoch"], interrupted["epoch_complete"], interrupted["global_step"]) == (2, False, 3)
    result_b = Distiller(settings(tmp_path / "b", synthetic, resume="last"), teacher=teacher).fit()
    assert result_b.finished and result_b.run_dir == b.run_dir
    last_a = load_checkpoint(result_a.run_dir / "model_last.pth")["model"]
    last_b = load_checkpoint(result_b.run_dir / "model_last.pth")["model"]
    for k, v in last_a.items():
        assert torch.equal(v, last_b[k]), k
    la, lb = _losses(result_a.run_dir), _losses(result_b.run_dir)
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]
    np.testing.assert_allclose([la[s] for s in la], [lb[s] for s in la], rtol=0, atol=0)
    student = load_student(result_b.run_dir)  # a run directory: its student/ folder (the best = last here)
    assert student.config.num_classes == 13 and student.config.native_size == (64, 128)
    from_ckpt = load_student(result_b.run_dir / "model_last.pth")
    for k, v in from_ckpt.state_dict().items():
        assert torch.equal(v, student.state_dict()[k]), k
    torch.save({"model": {}}, tmp_path / "not_student.pth")
    with pytest.raises(ValueError, match="not a distillation checkpoint"):
        load_student(tmp_path / "not_student.pth")


def test_bad_input_fails_before_any_work(synthetic: Path, tmp_path: Path) -> None:
    from panosamic.distill.trainer import Distiller, DistillSettings

    teacher = make_tiny_model()
    with pytest.raises(FileNotFoundError, match="missing"):
        Distiller(settings(tmp_path / "x", tmp_path / "missing"), teacher=teacher)
    with pytest.raises(ValueError, match="nothing to distil on"):
        DistillSettings(output=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no previous run"):
        Distiller(settings(tmp_path / "x", synthetic, resume="last"), teacher=teacher)
    with pytest.raises(ValueError, match="RGB only"):
        Distiller(settings(tmp_path / "x", synthetic, panoramas=(str(synthetic),)),
                  teacher=make_tiny_model(modalities=("image", "depth")))


def test_cli_help_does_not_import_torch() -> None:
    code = ("import argparse, sys; import panosamic.distill.cli as c; p = argparse.ArgumentParser(); "
            "c.add_parser(p.add_subparsers()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
