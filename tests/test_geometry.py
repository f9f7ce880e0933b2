"""panosamic.geometry: conventions, exactness at pixel centres, solid angles, seam, poles, roll, batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from panosamic.geometry import (
    PinholeCamera,
    cube_views,
    directions_to_erp,
    erp_directions,
    erp_lonlat,
    erp_pixel_solid_angles,
    erp_to_pinhole,
    intrinsics_from_fov,
    pinhole_to_erp,
    rotation_matrix,
    solid_angle_of_fov,
    tangent_views,
)


# ------------------------------------------------------------------ an independent per-pixel reference
def _direct_pinhole_index(
    u: int, v: int, erp_h: int, w: int, h: int, fov: float, yaw: float, pitch: float, roll: float
):
    """Pinhole pixel (i, j) seen at the centre of ERP pixel (u, v), or None: plain math, one pixel."""
    lon = (u + 0.5) / (2 * erp_h) * 2 * math.pi - math.pi
    lat = math.pi / 2 - (v + 0.5) / erp_h * math.pi
    d = [math.cos(lat) * math.sin(lon), -math.sin(lat), math.cos(lat) * math.cos(lon)]
    # undo yaw (about the down axis), then pitch (about the right axis), then roll (about the optical axis)
    a = math.radians(yaw)
    d = [math.cos(a) * d[0] - math.sin(a) * d[2], d[1], math.sin(a) * d[0] + math.cos(a) * d[2]]
    b = math.radians(pitch)
    d = [d[0], math.cos(b) * d[1] + math.sin(b) * d[2], -math.sin(b) * d[1] + math.cos(b) * d[2]]
    c = math.radians(roll)
    d = [math.cos(c) * d[0] + math.sin(c) * d[1], -math.sin(c) * d[0] + math.cos(c) * d[1], d[2]]
    if d[2] <= 0:
        return None
    f = (w / 2) / math.tan(math.radians(fov) / 2)
    x, y = f * d[0] / d[2] + w / 2, f * d[1] / d[2] + h / 2  # continuous, pixel i spans [i, i + 1)
    if not (0 <= x < w and 0 <= y < h):
        return None
    return math.floor(x), math.floor(y)


CASES = [  # (fov, yaw, pitch, roll)
    (90.0, 0.0, 0.0, 0.0),
    (70.0, 180.0, 0.0, 0.0),  # across the ±180° seam
    (60.0, 40.0, 80.0, 0.0),  # over the north pole
    (75.0, -120.0, -50.0, 30.0),
    (100.0, 10.0, 20.0, -60.0),
]


@pytest.mark.parametrize("fov,yaw,pitch,roll", CASES)
def test_projection_matches_a_direct_per_pixel_computation(fov, yaw, pitch, roll):
    w, h, erp_h = 24, 18, 40
    index = np.arange(w * h, dtype=np.int32).reshape(h, w)  # every pixel its own label
    camera = PinholeCamera(fov_deg=fov, yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    out, mask = pinhole_to_erp(index, camera, erp_height=erp_h, nearest=True, fill=-1)
    assert out.shape == (erp_h, 2 * erp_h) and mask.shape == out.shape and out.dtype == np.int32
    agree = total = mask_agree = 0
    for v in range(erp_h):
        for u in range(2 * erp_h):
            ref = _direct_pinhole_index(u, v, erp_h, w, h, fov, yaw, pitch, roll)
            mask_agree += (ref is not None) == bool(mask[v, u])
            if ref is not None and mask[v, u]:
                total += 1
                agree += out[v, u] == ref[1] * w + ref[0]
    assert total > 20
    assert agree / total >= 0.999
    assert mask_agree / out.size >= 0.999
    assert np.all(out[~mask] == -1)


@pytest.mark.parametrize("fov,yaw,pitch,roll", CASES)
def test_a_label_grid_projected_and_read_back_agrees(fov, yaw, pitch, roll):
    w, h = 32, 24
    labels = torch.randint(0, 13, (h // 4, w // 4), generator=torch.Generator().manual_seed(0))
    labels = labels.repeat_interleave(4, 0).repeat_interleave(4, 1).to(torch.uint8)
    camera = PinholeCamera(fov_deg=fov, yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    erp, _mask = pinhole_to_erp(labels, camera, erp_height=160, nearest=True, fill=255)
    back = erp_to_pinhole(erp, camera, width=w, height=h, nearest=True)
    assert back.dtype == torch.uint8 and back.shape == labels.shape
    assert (back == labels).float().mean() >= 0.999


@pytest.mark.parametrize("fov,yaw,pitch,roll", CASES)
def test_the_mask_area_is_the_solid_angle_of_the_field_of_view(fov, yaw, pitch, roll):
    w, h, erp_h = 40, 30, 256
    camera = PinholeCamera(fov_deg=fov, yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    _, mask = pinhole_to_erp(torch.zeros(h, w), camera, erp_height=erp_h)
    area = (mask.double() * erp_pixel_solid_angles(erp_h)).sum().item()
    vfov = math.degrees(2 * math.atan((h / 2) / ((w / 2) / math.tan(math.radians(fov) / 2))))
    assert area == pytest.approx(solid_angle_of_fov(fov, vfov), rel=0.01)


def test_pixel_solid_angles_sum_to_the_sphere():
    assert (erp_pixel_solid_angles(33) * 66).sum().item() == pytest.approx(4 * math.pi)


# ------------------------------------------------------------------ conventions
def test_erp_pixel_centres_have_the_documented_longitude_and_latitude():
    lon, lat = erp_lonlat(4, dtype=torch.float64)
    assert math.degrees(lon[0, 0]) == pytest.approx(0.5 / 8 * 360 - 180)
    assert math.degrees(lon[0, 7]) == pytest.approx(7.5 / 8 * 360 - 180)
    assert math.degrees(lat[0, 0]) == pytest.approx(90 - 0.5 / 4 * 180)
    assert math.degrees(lat[3, 0]) == pytest.approx(90 - 3.5 / 4 * 180)
    u, v = directions_to_erp(erp_directions(4, dtype=torch.float64), 4)
    uu, vv = torch.meshgrid(torch.arange(4.0), torch.arange(8.0), indexing="ij")
    assert torch.allclose(u, vv.double(), atol=1e-9) and torch.allclose(v, uu.double(), atol=1e-9)


def _centre_on_erp(yaw, pitch, erp_h=180):
    """(u, v) of the optical axis."""
    axis = rotation_matrix(yaw, pitch, 0.0) @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    u, v = directions_to_erp(axis, erp_h)
    return u.item(), v.item()


def test_yaw_turns_towards_increasing_longitude_and_pitch_upwards():
    u0, v0 = _centre_on_erp(0, 0)
    assert (u0, v0) == pytest.approx((179.5, 89.5))  # the panorama's centre (360 x 180)
    u, v = _centre_on_erp(30, 0)
    assert u == pytest.approx(u0 + 30) and v == pytest.approx(v0)
    u, v = _centre_on_erp(0, 20)
    assert u == pytest.approx(u0) and v == pytest.approx(v0 - 20)  # up = smaller row


def test_a_photo_lands_upright_and_unmirrored_at_the_centre():
    photo = torch.zeros(3, 20, 20)
    photo[0, :, 15:] = 1  # right side red
    photo[1, :5, :] = 1  # top green
    erp, mask = pinhole_to_erp(photo, PinholeCamera(fov_deg=60), erp_height=90)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    red = erp[0][mask] > 0.5
    green = erp[1][mask] > 0.5
    assert xs[red].float().mean() > xs.float().mean() and ys[green].float().mean() < ys.float().mean()


def test_positive_roll_turns_the_camera_clockwise_as_seen_by_the_camera():
    # The camera's right axis tilts downwards: a mark on the photo's right edge lands below the view centre.
    photo = torch.zeros(1, 21, 21)
    photo[0, 9:12, 17:] = 1
    for roll, below in ((60.0, True), (-60.0, False)):
        erp, _mask = pinhole_to_erp(
            photo, PinholeCamera(fov_deg=60, roll_deg=roll), erp_height=90, nearest=True
        )
        rows = torch.nonzero(erp[0] > 0.5, as_tuple=True)[0].float()
        assert (rows.mean().item() > 44.5) == below
    r = rotation_matrix(0, 0, 90)
    assert torch.allclose(
        r @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
        torch.tensor([0.0, 1, 0], dtype=torch.float64),
        atol=1e-12,
    )


def test_seam_and_pole_crossings():
    erp_h = 64
    _, mask = pinhole_to_erp(torch.ones(30, 30), PinholeCamera(fov_deg=60, yaw_deg=180), erp_height=erp_h)
    assert mask[:, 0].any() and mask[:, -1].any()
    assert torch.equal(mask, mask.flip(1))  # symmetric about the seam
    _, mask = pinhole_to_erp(torch.ones(30, 30), PinholeCamera(fov_deg=60, pitch_deg=80), erp_height=erp_h)
    assert mask[0].all()  # the pole's row is covered at every longitude
    # Reading a panorama smooth across the seam gives a view without a step at the seam.
    d = erp_directions(erp_h, dtype=torch.float64)
    erp = d.permute(2, 0, 1).clone()  # the direction itself, a smooth function on the sphere
    for yaw, pitch in ((180.0, 0.0), (0.0, 80.0), (90.0, -85.0)):
        camera = PinholeCamera(fov_deg=60, yaw_deg=yaw, pitch_deg=pitch)
        view = erp_to_pinhole(erp, camera, width=30, height=30)
        rays = camera.rays(30, 30, dtype=torch.float64).permute(2, 0, 1)
        assert (view - rays).abs().max().item() < 0.06  # bilinear on a 64-row grid near the pole


def test_intrinsics_are_the_same_as_a_field_of_view():
    labels = torch.arange(20 * 16).reshape(16, 20)
    a, ma = pinhole_to_erp(labels, PinholeCamera(fov_deg=70, yaw_deg=20), erp_height=48, nearest=True)
    camera = PinholeCamera(intrinsics=intrinsics_from_fov(20, 16, 70), yaw_deg=20)
    b, mb = pinhole_to_erp(labels, camera, erp_height=48, nearest=True)
    assert torch.equal(a, b) and torch.equal(ma, mb)


# ------------------------------------------------------------------ batches, dtypes, devices
def test_per_sample_angles_equal_separate_calls():
    photos = torch.rand(3, 2, 12, 16)
    yaws, pitches = [0.0, 170.0, -90.0], [10.0, -30.0, 60.0]
    out, mask = pinhole_to_erp(
        photos, PinholeCamera(fov_deg=[60.0, 80.0, 90.0], yaw_deg=yaws, pitch_deg=pitches), erp_height=32
    )
    assert out.shape == (3, 2, 32, 64) and mask.shape == (3, 32, 64)
    for i, fov in enumerate((60.0, 80.0, 90.0)):
        camera = PinholeCamera(fov_deg=fov, yaw_deg=yaws[i], pitch_deg=pitches[i])
        one, m = pinhole_to_erp(photos[i], camera, erp_height=32)
        assert torch.allclose(out[i], one) and torch.equal(mask[i], m)
    # One panorama, several views.
    views = erp_to_pinhole(
        torch.rand(3, 32, 64), PinholeCamera(fov_deg=70, yaw_deg=yaws, pitch_deg=pitches), width=10, height=8
    )
    assert views.shape == (3, 3, 8, 10)


def test_dtypes_and_numpy_round_trip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    camera = PinholeCamera(fov_deg=90)
    out, mask = pinhole_to_erp(img, camera, erp_height=24, channels_last=True)
    assert (
        isinstance(out, np.ndarray)
        and out.dtype == np.uint8
        and out.shape == (24, 48, 3)
        and mask.dtype == bool
    )
    ref, _ = pinhole_to_erp(img.astype(np.float64), camera, erp_height=24, channels_last=True)
    assert ref.dtype == np.float64
    assert np.abs(out.astype(np.float64) - ref).max() <= 0.5 + 1e-9  # rounded, not truncated
    half, _ = pinhole_to_erp(torch.from_numpy(img).float().half(), camera, erp_height=24, channels_last=True)
    assert half.dtype == torch.float16
    boolean, _ = pinhole_to_erp(torch.from_numpy(img[..., 0] > 127), camera, erp_height=24, nearest=True)
    assert boolean.dtype == torch.bool
    view = erp_to_pinhole(ref, camera, width=16, height=12, channels_last=True)
    assert view.shape == (12, 16, 3) and view.dtype == np.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_result_on_cuda():
    labels = torch.randint(0, 13, (2, 1, 24, 32), dtype=torch.uint8)
    camera = PinholeCamera(fov_deg=75, yaw_deg=[10.0, 170.0])
    cpu, mcpu = pinhole_to_erp(labels, camera, erp_height=64, nearest=True)
    gpu, mgpu = pinhole_to_erp(labels.cuda(), camera, erp_height=64, nearest=True)
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu()) and torch.equal(mcpu, mgpu.cpu())


def test_bad_parameters_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"fov_deg must be in \(0, 180\)"):
        pinhole_to_erp(torch.zeros(4, 4), PinholeCamera(fov_deg=180), erp_height=8)
    with pytest.raises(ValueError, match="exactly one of fov_deg"):
        pinhole_to_erp(torch.zeros(4, 4), PinholeCamera(), erp_height=8)
    with pytest.raises(ValueError, match="H x 2H"):
        erp_to_pinhole(torch.zeros(8, 8), PinholeCamera(fov_deg=60), width=4, height=4)
    with pytest.raises(ValueError, match="2 photos but 3"):
        pinhole_to_erp(
            torch.zeros(2, 1, 4, 4), PinholeCamera(fov_deg=60, yaw_deg=[0.0, 1.0, 2.0]), erp_height=8
        )


@pytest.mark.parametrize(
    "params,message",
    [
        ({}, "exactly one of fov_deg"),
        ({"fov_deg": 60, "intrinsics": intrinsics_from_fov(4, 4, 60)}, "exactly one of fov_deg"),
        ({"fov_deg": 0}, r"fov_deg must be in \(0, 180\)"),
        ({"intrinsics": torch.zeros(3, 3)}, "focal lengths"),
        ({"intrinsics": torch.eye(2)}, "3x3 matrix"),
        ({"fov_deg": 60, "pitch_deg": [[1.0]]}, "1-D sequence"),
        (
            {"fov_deg": [60.0, 70.0], "yaw_deg": [0.0, 1.0, 2.0]},
            "fov_deg has 2 values per sample, others have 3",
        ),
        (
            {"fov_deg": 60, "yaw_deg": [0.0, 1.0], "roll_deg": [0.0, 1.0, 2.0]},
            "yaw_deg has 2 values per sample",
        ),
    ],
)
def test_a_camera_is_checked_when_made(params, message):
    with pytest.raises(ValueError, match=message):
        PinholeCamera(**params)


def test_a_camera_counts_its_samples():
    assert PinholeCamera(fov_deg=60).num_samples == 1
    assert PinholeCamera(fov_deg=60, yaw_deg=[0.0]).num_samples == 1
    assert PinholeCamera(fov_deg=[60.0, 70.0], pitch_deg=[1.0]).num_samples == 2
    k = intrinsics_from_fov(8, 6, torch.tensor([50.0, 60.0, 70.0]))
    assert PinholeCamera(intrinsics=k, yaw_deg=torch.zeros(3)).num_samples == 3
    assert PinholeCamera(intrinsics=k).rays(8, 6).shape == (3, 6, 8, 3)


# ------------------------------------------------------------------ view sets
@pytest.mark.parametrize(
    "views,fov",
    [
        (cube_views(), 90.0),
        (tangent_views(60.0, 15.0), 60.0),
        (tangent_views(90.0, 20.0), 90.0),
        (tangent_views(45.0, 10.0), 45.0),
    ],
)
def test_view_sets_cover_the_sphere(views, fov):
    yaws = [v.yaw_deg for v in views]
    pitches = [v.pitch_deg for v in views]
    _, mask = pinhole_to_erp(
        torch.ones(1, 32, 32), PinholeCamera(fov_deg=fov, yaw_deg=yaws, pitch_deg=pitches), erp_height=64
    )
    assert mask.any(0).all()


def test_tangent_views_overlap():
    views = tangent_views(60.0, 15.0)
    camera = PinholeCamera(
        fov_deg=60.0, yaw_deg=[v.yaw_deg for v in views], pitch_deg=[v.pitch_deg for v in views]
    )
    _, mask = pinhole_to_erp(torch.ones(1, 32, 32), camera, erp_height=64)
    count = mask.sum(0)
    assert (count >= 2).float().mean() > 0.2  # a real overlap, not edge-to-edge tiling
    with pytest.raises(ValueError, match="overlap_deg"):
        tangent_views(60.0, 60.0)
