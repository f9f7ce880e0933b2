"""Bounded memory in prediction: the pixel limit, banded upsampling and the banded input path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model
from PIL import Image

from panosamic import viz
from panosamic.cli import main
from panosamic.inference import inputs as I, predict, predict_batch, result as R
from panosamic.modeling.upsample import banded_labels, banded_resize, label_dtype, source_rows
from panosamic.specs import FROZEN_PREFIXES


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(dual_view_fusion=False).eval()


def pano(h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, 2 * h, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- banded upsampling
@pytest.mark.parametrize(
    "k,h,w,size,band",
    [(13, 32, 64, (256, 512), 64), (13, 32, 64, (77, 154), 7), (5, 40, 80, (17, 34), 3),
     (3, 17, 35, (100, 7), 1), (13, 32, 64, (32, 192), 5), (300, 8, 16, (24, 48), 4)],
)  # fmt: skip
def test_banded_labels_equal_full_argmax(k, h, w, size, band):
    logits = torch.randn(k, h, w, generator=torch.Generator().manual_seed(k + h))
    full = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    lab = banded_labels(logits, size, band_rows=band)
    assert lab.shape == size and lab.dtype == label_dtype(k)
    assert torch.equal(lab.long(), full.argmax(0))


def test_source_rows_weights():
    y0, y1, w0, w1 = source_rows(4, 8)
    assert y0.tolist() == [0, 0, 0, 1, 1, 2, 2, 3] and y1.tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    torch.testing.assert_close(w0 + w1, torch.ones(8))
    assert label_dtype(13) == torch.uint8 and label_dtype(300) == torch.int16


@pytest.mark.parametrize("shape,size,mode", [((200, 400, 3), (32, 64), "bilinear"), ((101, 202, 3), (40, 80), "bilinear"),
                                             ((99, 198, 3), (32, 64), "nearest"), ((20, 40, 3), (32, 64), "bilinear")])
def test_banded_resize_equals_the_networks_resize(shape, size, mode):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    x = torch.from_numpy(arr).permute(2, 0, 1).float()[None]
    kw = {} if mode == "nearest" else {"align_corners": False, "antialias": shape[1] > size[1]}
    ref = F.interpolate(x, size=size, mode=mode, **kw)[0]
    assert torch.equal(banded_resize(arr, size, mode=mode, band_rows=9), ref)


# ----------------------------------------------------------------------------- pixel limit
def test_limit_refuses_files_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(pano(64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated: decoding would fail, the header is enough
    with pytest.raises(ValueError, match=r"128x64 \(WxH\) = 8,192 pixels, above the limit of 1,000 .*max_pixels"):
        I.load_image(path, max_pixels=1000)
    monkeypatch.setattr(I, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match="--max-pixels"):
        I.load_image(path)
    with pytest.raises(ValueError, match="above the limit"):
        I.load_image(pano(64))  # arrays too
    with pytest.raises(ValueError, match="cannot decode"):
        I.load_image(path, max_pixels=10_000)


def test_limit_replaces_pils_bomb_check(tmp_path, monkeypatch):
    path = tmp_path / "p.jpg"
    Image.fromarray(pano(64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL would warn (and at 2x, raise)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert I.load_image(path).shape == (3, 64, 128)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored


def test_predict_max_pixels_argument(model, tmp_path):
    with pytest.raises(ValueError, match="above the limit of 100 pixels"):
        predict(model, pano(16), max_pixels=100)
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        predict_batch(model, [pano(16)], max_pixels=0)
    np.save(tmp_path / "d.npy", np.zeros((16, 32), np.float32))
    with pytest.raises(ValueError, match="above the limit"):
        I.load_depth(tmp_path / "d.npy", max_pixels=100)


# ----------------------------------------------------------------------------- banded path end to end
def test_banded_path_matches_the_full_path(model, monkeypatch, tmp_path):
    img = pano(384, seed=2)  # 384x768: 9x the tiny model's native 128x256
    full = predict(model, img)
    monkeypatch.setattr(I, "FULL_LOGITS_MAX_PIXELS", 128 * 256 * 4)
    banded = predict(model, img)
    assert banded.size == (384, 768) and banded.logits_size == tuple(model.native_size)
    assert banded.labels.dtype == np.uint8 and full.labels.dtype == np.int64
    up = F.interpolate(banded.logits[None], size=(384, 768), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(up, full.logits)
    assert np.array_equal(banded.labels, full.labels)
    assert banded.class_fractions == pytest.approx(full.class_fractions)
    assert banded.probabilities().shape == banded.logits.shape
    assert np.array_equal(banded.image, img) and not np.shares_memory(banded.image, img)
    Image.fromarray(img).save(tmp_path / "p.png")
    from_file = predict(model, tmp_path / "p.png")
    assert np.array_equal(from_file.labels, full.labels) and torch.equal(from_file.logits, banded.logits)
    files = from_file.save(tmp_path / "out")
    assert np.array_equal(np.asarray(Image.open(files["labels"])), full.labels)
    assert Image.open(files["overlay"]).size == (768, 384)


def test_banded_pictures_equal_viz(monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 13, (50, 100)).astype(np.uint8)
    image = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)
    res = R.PredictionResult(torch.zeros(13, 4, 8), labels, viz.default_class_names(13), viz.default_palette(13), image)
    monkeypatch.setattr(R, "_BAND_PIXELS", 700)  # 7 rows per band
    assert np.array_equal(np.asarray(res.colorize()), viz.colorize(labels, res.palette))
    assert np.array_equal(np.asarray(res.overlay(0.3)), viz.overlay(image, labels, res.palette, 0.3))
    counts = np.bincount(labels.ravel(), minlength=13) / labels.size
    assert list(res.class_fractions.values()) == pytest.approx(counts.tolist())


def test_cli_refused_panorama_does_not_stop_the_folder(model, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    sam = tmp_path / "sam.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith(FROZEN_PREFIXES)}, sam)
    inp = tmp_path / "panos"
    inp.mkdir()
    Image.fromarray(pano(16, 1)).save(inp / "small.png")
    Image.fromarray(pano(64, 2)).save(inp / "huge.jpg")
    out = tmp_path / "out"
    argv = ["predict", str(inp), "--checkpoint", str(ckpt), "--sam-weights", str(sam), "--out", str(out)]
    assert main(argv + ["--max-pixels", "0"]) == 1
    assert "--max-pixels must be >= 1" in capsys.readouterr().err
    rc = main(argv + ["--max-pixels", str(32 * 32)])
    err = capsys.readouterr().err
    assert rc == 1 and "huge.jpg" in err and "above the limit of 1,024" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["predictions"]) == {"small"}
    assert [Path(s["input"]).name for s in summary["skipped"]] == ["huge.jpg"]


def test_banded_path_with_depth_and_normals(monkeypatch):
    net = make_tiny_model(modalities=("image", "depth", "normals"), dual_view_fusion=False, seed=1).eval()
    img, normals = pano(192, seed=3), pano(192, seed=4)
    depth = pano(192, seed=5)[..., 0]
    full = predict(net, img, depth, normals)
    monkeypatch.setattr(I, "FULL_LOGITS_MAX_PIXELS", 128 * 256)
    banded = predict(net, img, depth, normals)
    assert banded.logits_size == (128, 256) and banded.size == (192, 384)
    up = F.interpolate(banded.logits[None], size=(192, 384), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(up, full.logits)
    assert np.array_equal(banded.labels, full.labels)
