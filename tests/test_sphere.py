"""Metrics on the sphere: area weights, latitude bands, seam consistency (panosamic.evaluation.sphere)."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from panosamic.evaluation.metrics import ConfusionMatrix, RowConfusion
from panosamic.evaluation.sphere import (
    band_of_rows,
    latitude_bands,
    row_latitudes,
    seam_columns,
    sphere_metrics,
)
from panosamic.evaluation.validation import run_validation


def _rows(pred: np.ndarray, target: np.ndarray, k: int) -> RowConfusion:
    rc = RowConfusion(k)
    rc.update(torch.from_numpy(pred), torch.from_numpy(target))
    return rc


def test_wrong_only_near_the_poles_costs_exactly_the_polar_caps_area() -> None:
    h, w, k, wrong_rows = 16, 32, 2, 2
    target = np.zeros((h, w), np.int64)
    pred = np.zeros((h, w), np.int64)
    pred[:wrong_rows] = 1  # wrong in the top two and the bottom two rows only
    pred[-wrong_rows:] = 1
    rc = _rows(pred, target, k)
    planar = rc.compute()
    sphere = sphere_metrics(rc.rows(), ("a", "b")).weighted
    # independent: the two polar caps above / below latitude phi cover (1 - sin phi) of the sphere
    phi = math.radians(90.0 - 180.0 * wrong_rows / h)
    cap_share = 1.0 - math.sin(phi)
    assert planar.acc[0] == pytest.approx(1 - 2 * wrong_rows / h, abs=1e-12)
    assert sphere.acc[0] == pytest.approx(1 - cap_share, abs=1e-12)
    assert sphere.iou[0] == pytest.approx(1 - cap_share, abs=1e-12)
    assert sphere.pixel_acc == pytest.approx(1 - cap_share, abs=1e-12)
    assert sphere.acc[0] > planar.acc[0] and sphere.miou > planar.miou  # cheaper on the sphere
    # wrong only at the equator: dearer on the sphere
    pred_eq = np.zeros((h, w), np.int64)
    pred_eq[h // 2 - 2 : h // 2 + 2] = 1
    rc_eq = _rows(pred_eq, target, k)
    assert sphere_metrics(rc_eq.rows()).weighted.acc[0] < rc_eq.compute().acc[0]


def test_row_weights_are_the_rows_solid_angle() -> None:
    h = 10
    lat = row_latitudes(h)
    assert lat[0] == pytest.approx(90 - 9.0) and lat[-1] == pytest.approx(-90 + 9.0)
    edges = np.radians(90.0 - 180.0 * np.arange(h + 1) / h)
    exact = np.sin(edges[:-1]) - np.sin(edges[1:])  # area of each row's zone
    weights = np.cos(np.radians(lat))
    assert np.allclose(weights / weights.sum(), exact / exact.sum(), atol=1e-14)


@pytest.mark.parametrize("h,bands", [(24, 6), (24, 4), (24, 5), (7, 6), (30, 1)])
def test_bands_add_up_to_the_whole(h: int, bands: int) -> None:
    rng = np.random.default_rng(h * 10 + bands)
    k = 5
    target = rng.integers(-1, k, size=(3, h, 2 * h))
    pred = rng.integers(0, k, size=(3, h, 2 * h))
    rc = _rows(pred, target, k)
    cm = ConfusionMatrix(k)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    assert np.array_equal(rc.planar(), cm.matrix.numpy()) and rc.planar().dtype == np.int64
    sm = sphere_metrics(rc.rows(), num_bands=bands)
    assert len(sm.bands) == bands
    total = sum(b.metrics.confusion for b in sm.bands)
    assert np.array_equal(total, rc.planar())  # every labelled pixel in exactly one band
    assert sum(b.pixel_share for b in sm.bands) == pytest.approx(1.0)
    assert sum(b.area_share for b in sm.bands) == pytest.approx(1.0)
    inter = sum(np.diag(b.metrics.confusion) for b in sm.bands)
    assert np.array_equal(inter, np.diag(cm.matrix.numpy()))
    lat, index = row_latitudes(h), band_of_rows(h, bands)
    for i, (top, bottom) in enumerate(latitude_bands(bands)):
        assert np.all((lat[index == i] <= top) & (lat[index == i] >= bottom))


def test_row_confusion_refuses_a_second_height() -> None:
    rc = RowConfusion(3)
    rc.update(torch.zeros(4, 8, dtype=torch.int64), torch.zeros(4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="one height"):
        rc.update(torch.zeros(6, 12, dtype=torch.int64), torch.zeros(6, 12, dtype=torch.int64))
    with pytest.raises(ValueError, match="latitude bands"):
        latitude_bands(0)


# ---------------------------------------------------------------------------- seam consistency
class _Fake(torch.nn.Module):
    """A stand-in for PanoSAMic in run_validation: ``classes(image)`` gives the (H, W) prediction."""

    def __init__(self, classes, k: int):
        super().__init__()
        self.classes, self.k = classes, k

    def inference_options_applied(self, **_):
        return contextlib.nullcontext()

    def forward(self, inputs):
        out = []
        for s in inputs:
            labels = self.classes(s["image"])
            out.append({"sem_preds": torch.nn.functional.one_hot(labels, self.k).permute(2, 0, 1).float()})
        return out


def _dataset(n: int, h: int, w: int, k: int):
    g = torch.Generator().manual_seed(0)
    return [({"image": torch.randint(0, 256, (3, h, w), generator=g).float()},
             torch.randint(-1, k, (h, w), generator=g)) for _ in range(n)]  # fmt: skip


def test_seam_of_a_roll_equivariant_model_is_perfect() -> None:
    k, h, w = 4, 8, 32
    model = _Fake(lambda image: (image[0].long() % k), k)  # per pixel: rolls with the panorama
    res = run_validation(model, _dataset(3, h, w, k), num_classes=k, batch_size=2, seam_check=True,
                         latitude_rows=True)
    assert res.seam.agreement == 1.0 and res.seam.band_agreement == 1.0
    assert res.seam.total == 3 * h * w
    assert np.array_equal(res.seam.rolled.confusion, res.metrics.confusion)
    assert res.seam.rolled.miou == res.metrics.miou


@pytest.mark.parametrize("c,band_deg", [(3, 20.0), (1, 10.0), (5, 40.0)])
def test_seam_of_a_seam_breaking_model(c: int, band_deg: float) -> None:
    """Class 1 in the first ``c`` columns of whatever it is shown: the rolled-back prediction has them
    at columns W/2 .. W/2 + c instead, so 2c columns of W disagree, c of them at the seam."""
    k, h, w = 2, 8, 64

    def classes(image):
        out = torch.zeros(image.shape[-2:], dtype=torch.int64)
        out[:, :c] = 1
        return out

    res = run_validation(_Fake(classes, k), _dataset(2, h, w, k), num_classes=k, seam_check=True,
                         seam_band_deg=band_deg)
    per_side = sum(1 for u in range(w) if (u + 0.5) * 360.0 / w < band_deg)  # columns within band_deg of the edge
    assert c <= per_side
    assert res.seam.agreement == pytest.approx(1 - 2 * c / w, abs=1e-12)
    assert res.seam.band_agreement == pytest.approx(1 - c / (2 * per_side), abs=1e-12)
    assert res.seam.band_total == 2 * h * 2 * per_side
    assert seam_columns(w, band_deg).sum() == 2 * per_side


# ---------------------------------------------------------------------------- the command
def test_evaluate_writes_sphere_bands_and_seam(tmp_path: Path, capsys) -> None:
    from test_evaluate import _checkpoint, _eval_args  # noqa: I001
    from conftest import prepared_synthetic
    from panosamic.cli import main

    data = prepared_synthetic(tmp_path / "data", rooms_per_area=1, size=(64, 128), seed=1)
    ck = _checkpoint(tmp_path / "ck.pth", 1)
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    assert main(_eval_args(data, "--checkpoint", str(ck), "--fold", "1", "--output", str(out), "--plots",
                           str(plots), "--seam-check", "--latitude-bands", "4")) == 0
    text = capsys.readouterr().out
    assert "on the sphere (area-weighted): mIoU" in text and "sphere IoU %" in text
    assert "latitude (deg)" in text and "+45..0" in text and "seam check" in text
    res = json.loads(out.read_text())
    fold = res["folds"][0]
    assert set(fold["sphere"]) >= {"miou", "macc", "pixel_acc", "iou_per_class", "acc_per_class", "weighting"}
    assert [b["band"] for b in fold["latitude_bands"]] == ["+90..+45", "+45..0", "0..-45", "-45..-90"]
    assert sum(b["num_pixels"] for b in fold["latitude_bands"]) == fold["num_pixels"]
    seam = fold["seam"]
    assert 0.0 <= seam["seam_band_agreement"] <= 1.0 and 0.0 <= seam["agreement"] <= 1.0
    assert seam["pixels"] == fold["num_samples"] * 64 * 128
    summary = res["summary"]
    assert summary["mean_sphere_miou"] == pytest.approx(fold["sphere"]["miou"])
    assert summary["mean_seam_agreement"] == pytest.approx(seam["agreement"])
    assert len(summary["mean_latitude_bands"]) == 4
    assert (plots / "fold1_latitude.png").is_file()
    assert main(_eval_args(data, "--checkpoint", str(ck), "--latitude-bands", "0", "--output", str(out))) == 1
    assert "--latitude-bands must be in 1..180, got 0" in capsys.readouterr().err


def test_latitude_figure(tmp_path: Path) -> None:
    from panosamic.evaluation.plots import plot_latitude_bands

    rng = np.random.default_rng(0)
    rc = _rows(rng.integers(0, 3, (2, 12, 24)), rng.integers(-1, 3, (2, 12, 24)), 3)
    sm = sphere_metrics(rc.rows())
    path = plot_latitude_bands([b.to_dict() for b in sm.bands], tmp_path / "lat.png", planar_miou=rc.compute().miou,
                               sphere_miou=sm.weighted.miou)
    assert path.is_file() and path.stat().st_size > 5000
    with pytest.raises(ValueError, match="bands is empty"):
        plot_latitude_bands([], tmp_path / "empty.png")


# ---------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        rng = np.random.default_rng(rank)
        rc = RowConfusion(3)
        if rank == 0:  # rank 1 sees no panorama at all (a split smaller than the world)
            rc.update(torch.from_numpy(rng.integers(0, 3, (2, 6, 12))), torch.from_numpy(rng.integers(-1, 3, (2, 6, 12))))
        rc.all_reduce()
        np.save(f"{out}/rank{rank}.npy", rc.rows())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_row_confusion_all_reduce_with_a_rank_without_samples(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    rng = np.random.default_rng(0)
    want = _rows(rng.integers(0, 3, (2, 6, 12)), rng.integers(-1, 3, (2, 6, 12)), 3).rows()
    for rank in (0, 1):
        assert np.array_equal(np.load(tmp_path / f"rank{rank}.npy"), want)
