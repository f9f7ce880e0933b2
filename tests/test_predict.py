"""Prediction API and ``panosamic predict`` CLI on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_model
from PIL import Image

from panosamic.cli import main
from panosamic.config import PanoSAMicConfig
from panosamic.inference import inputs as I
from panosamic.inference.pipeline import prepare as _prepare
from panosamic.inference.predict import predict, predict_batch
from panosamic.model import PanoSAMic
from panosamic.modeling.instance import InstanceSettings
from panosamic.specs import FROZEN_PREFIXES

FIXTURES = Path(__file__).parent / "fixtures"
REAL_PANO = FIXTURES / "real" / "panocontext_unlabelled" / "pano_asmasuxybohhcj.png"
#: Single view keeps the tests fast (one encoder pass per modality); the refinement test and
#: tests/test_instance.py cover dual view.
TINY = PanoSAMicConfig(canvas_size=256, dual_view_fusion=False)


def tiny(modalities=("image",), semantic_only=True, seed=0, dual_view=False, **kw) -> PanoSAMic:
    torch.manual_seed(seed)
    return build_model(
        TINY.replace(dual_view_fusion=dual_view),
        vit_model="vit_tiny",
        modalities=modalities,
        num_classes=13,
        semantic_only=semantic_only,
        **kw,
    ).eval()


@pytest.fixture(scope="module")
def rgb_model() -> PanoSAMic:
    return tiny()


def random_pano(h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, 2 * h, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- API
def test_predict_real_panorama_and_outputs(rgb_model, tmp_path):
    res = predict(rgb_model, REAL_PANO)
    assert res.labels.shape == (512, 1024) and res.labels.dtype == np.int64
    assert res.logits.shape == (13, 512, 1024) and res.logits.dtype == torch.float32
    np.testing.assert_array_equal(res.labels, res.logits.argmax(0).numpy())
    assert torch.allclose(res.probabilities().sum(0), torch.ones(512, 1024), atol=1e-5)
    assert res.name == REAL_PANO.stem and not res.refined and res.instance_masks == []
    np.testing.assert_array_equal(res.image, np.asarray(Image.open(REAL_PANO).convert("RGB")))
    fr = res.class_fractions
    assert len(fr) == 13 and sum(fr.values()) == pytest.approx(1.0)

    files = res.save(tmp_path)
    assert set(files) == {"labels", "color", "overlay", "legend"}
    labels_png = np.asarray(Image.open(files["labels"]))
    np.testing.assert_array_equal(labels_png, res.labels)
    color = np.asarray(Image.open(files["color"]))
    np.testing.assert_array_equal(color, res.palette[res.labels])
    overlay = Image.open(files["overlay"])
    assert overlay.format == "JPEG" and overlay.size == (1024, 512)
    legend = Image.open(files["legend"])
    legend.load()
    assert legend.size[1] > 13 * 16
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left


@pytest.mark.parametrize("h", [32, 100, 257])
def test_outputs_have_the_input_size(rgb_model, h):
    res = predict(rgb_model, random_pano(h, seed=h))
    assert res.labels.shape == (h, 2 * h) and res.logits.shape == (13, h, 2 * h)


def test_predict_batch_mixed_sizes_matches_single(rgb_model):
    imgs = [random_pano(48, 1), random_pano(64, 2)]
    batch = predict_batch(rgb_model, imgs, batch_size=2)
    assert [r.size for r in batch] == [(48, 96), (64, 128)]
    single = predict(rgb_model, imgs[1])
    torch.testing.assert_close(batch[1].logits, single.logits, atol=1e-4, rtol=1e-4)
    bf16 = predict(rgb_model, imgs[1], precision="bf16")
    assert bf16.logits.dtype == torch.float32 and bf16.labels.shape == (64, 128)
    assert (bf16.labels == single.labels).mean() > 0.5  # same model, lower precision
    with pytest.raises(TypeError, match="sequence"):
        predict_batch(rgb_model, imgs[0])
    with pytest.raises(ValueError, match="equal counts"):
        predict_batch(rgb_model, imgs, depths=[None])


def test_input_types_agree(rgb_model, tmp_path):
    arr = random_pano(32, 7)
    path = tmp_path / "p.png"
    Image.fromarray(arr).save(path)
    chw = torch.from_numpy(arr).permute(2, 0, 1)
    ref = chw.float()
    for source in (
        path,
        str(path),
        Image.fromarray(arr),
        chw,
        chw.float(),
        torch.from_numpy(arr),
        arr.astype(np.float64),
    ):
        loaded = I.load_image(source)
        assert loaded.dtype == torch.float32
        torch.testing.assert_close(loaded, ref)
    torch.testing.assert_close(predict(rgb_model, path).logits, predict(rgb_model, chw).logits)


def test_non_panorama_refused(rgb_model):
    with pytest.raises(ValueError, match=r"width to be exactly twice the height.*resize it to 2:1"):
        predict(rgb_model, np.zeros((64, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="66x32"):  # 2 px off: not a rounding of 2:1
        predict(rgb_model, np.zeros((32, 66, 3), np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        predict(rgb_model, np.full((32, 64, 3), 300.0))
    with pytest.raises(TypeError, match="file path, PIL image"):
        predict(rgb_model, [1, 2, 3])
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        predict(rgb_model, "nope.png")
    with pytest.raises(ValueError, match="precision"):
        predict(rgb_model, random_pano(16), precision="fp8")


def test_greyscale_is_converted_with_a_note(rgb_model):
    grey = np.random.default_rng(3).integers(0, 256, (32, 64), dtype=np.uint8)
    with pytest.warns(UserWarning, match="greyscale: converted to RGB"):
        res = predict(rgb_model, grey)
    rgb = predict(rgb_model, np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(res.labels, rgb.labels)
    np.testing.assert_array_equal(res.image, np.repeat(grey[..., None], 3, axis=-1))


def test_one_pixel_off_2to1_is_resized_and_answered_at_its_own_size(rgb_model):
    img = random_pano(32, 4)
    wide = np.concatenate([img, img[:, -1:]], axis=1)  # 65x32, as a rounding export would write it
    with pytest.warns(UserWarning, match="within 1 px of 2:1"):
        res = predict(rgb_model, wide)
    assert res.labels.shape == (32, 65) and res.logits.shape == (13, 32, 65)


def test_result_repr_is_one_line_and_fractions_an_attribute(rgb_model):
    res = predict(rgb_model, random_pano(16, 2))
    text = repr(res)
    assert "\n" not in text and len(text) < 300 and text.startswith("PredictionResult(") and "32x16" in text
    assert isinstance(res.class_fractions, dict) and sum(res.class_fractions.values()) == pytest.approx(1.0)
    assert res.class_fractions() == res.class_fractions  # the older call still answers


def test_refine_needs_instance_branch(rgb_model):
    with pytest.raises(ValueError, match="semantic_only=False"):
        predict(rgb_model, random_pano(16), refine=True)


# ----------------------------------------------------------------------------- depth
def test_depth_conversion_and_errors(tmp_path):
    d = np.array([[0.0, 1.0, 2.0, 8.0], [4.0, np.nan, 10.0, 3.0]])
    disp = I.depth_to_disparity(d, threshold=8.0)
    expected = np.array([[0, 255 * 7 / 8, 255 * 6 / 8, 0], [255 / 2, 0, 0, 255 * 5 / 8]], np.float32)
    np.testing.assert_allclose(disp, expected, rtol=1e-6)

    mm = (np.arange(32 * 64).reshape(32, 64) % 9000).astype(np.uint16)
    mm[0, 0] = 65535  # missing
    png = tmp_path / "d.png"
    Image.fromarray(mm).save(png)
    t = I.load_depth(png, depth_scale=0.001, depth_threshold=8.0)
    assert t.shape == (3, 32, 64)
    np.testing.assert_allclose(t[0].numpy(), I.depth_to_disparity(mm * 0.001, 8.0, mm != 65535), rtol=1e-6)
    assert t[0, 0, 0] == 0
    with pytest.raises(ValueError, match="depth_scale"):
        I.load_depth(png)  # 16-bit values > 255 without a scale
    with pytest.raises(ValueError, match="depth_threshold"):
        I.load_depth(png, depth_scale=0.001)
    grey = np.random.default_rng(0).integers(0, 256, (32, 64), dtype=np.uint8)
    torch.testing.assert_close(I.load_depth(grey), I.load_depth(np.repeat(grey[..., None], 3, -1)))


def test_rgbd_model_needs_depth_and_uses_threshold():
    model = tiny(("image", "depth"), depth_threshold=8.0)
    img = random_pano(32, 1)
    with pytest.raises(ValueError, match="depth"):
        predict(model, img)
    metres = np.random.default_rng(2).uniform(0.5, 12.0, (32, 64))
    a = predict(model, img, metres, depth_scale=1.0)
    assert a.logits.shape == (13, 32, 64)
    # what the model is given: the threshold of the checkpoint, or the override
    b = _prepare(model, img, metres, None, depth_scale=1.0, depth_threshold=model.depth_threshold)
    torch.testing.assert_close(b.inputs["depth"][0], torch.from_numpy(I.depth_to_disparity(metres, 8.0)))
    c = _prepare(model, img, metres, None, depth_scale=1.0, depth_threshold=4.0)
    torch.testing.assert_close(c.inputs["depth"][2], torch.from_numpy(I.depth_to_disparity(metres, 4.0)))
    with pytest.raises(ValueError, match="depth_threshold"):
        predict(tiny(("image", "depth")), img, metres, depth_scale=1.0)  # no threshold anywhere
    with pytest.raises(ValueError, match="same size"):
        predict(model, img, np.zeros((16, 32), np.uint8))


# ----------------------------------------------------------------------------- refinement
def test_refine_labels_constant_within_masks():
    model = tiny(semantic_only=False, seed=1, dual_view=True)
    # random SAM weights: let every mask through so that there is something to refine
    model.instance_settings = InstanceSettings(
        points_per_side=4, pred_iou_thresh=-1e9, stability_score_thresh=0.0, box_nms_thresh=0.95
    )
    img = random_pano(64, 5)
    res = predict(model, img, refine=True)
    assert res.refined and len(res.instance_masks) > 0
    masks = [m["segmentation"].numpy() for m in res.instance_masks]
    areas = [m["area"] for m in res.instance_masks]
    assert areas == sorted(areas, reverse=True)
    raw = res.logits.argmax(0).numpy()
    for i, m in enumerate(masks):
        assert m.shape == (64, 128)
        later = np.zeros_like(m)
        for other in masks[i + 1 :]:
            later |= other
        own = m & ~later  # pixels no smaller mask overwrote
        if own.any():
            assert len(np.unique(res.labels[own])) == 1
            counts = np.bincount(raw[m], minlength=13)
            assert res.labels[own][0] == counts.argmax()
    outside = ~np.any(masks, axis=0)
    np.testing.assert_array_equal(res.labels[outside], raw[outside])


# ----------------------------------------------------------------------------- CLI helpers
def test_collect_and_match(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "dep").mkdir()
    for name in ("a.png", "b_rgb.jpg", "c.webp", "notes.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    for name in ("a_depth.png", "b_depth.png", "c.npy"):
        (tmp_path / "dep" / name).write_bytes(b"x")
    inputs = I.collect_inputs([tmp_path / "in", tmp_path / "in" / "a.png"])
    assert [p.name for p in inputs] == ["a.png", "b_rgb.jpg", "c.webp"]
    matched = I.match_aux(inputs, tmp_path / "dep", "depth")
    assert [m.name for m in matched] == ["a_depth.png", "b_depth.png", "c.npy"]
    assert I.match_aux(inputs, None, "depth") == [None, None, None]
    with pytest.raises(ValueError, match="single file"):
        I.match_aux(inputs, tmp_path / "dep" / "c.npy", "depth")
    with pytest.raises(FileNotFoundError):
        I.collect_inputs([tmp_path / "missing"])


# ----------------------------------------------------------------------------- CLI end to end
@pytest.fixture()
def checkpoint_dir(tmp_path) -> tuple[Path, Path]:
    model = tiny(seed=3, dataset="stanford2d3ds")
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    sam = tmp_path / "sam_vit_tiny.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith(FROZEN_PREFIXES)}, sam)
    return ckpt, sam


def test_cli_folder_with_corrupt_file(checkpoint_dir, tmp_path, capsys):
    ckpt, sam = checkpoint_dir
    inp = tmp_path / "panos"
    inp.mkdir()
    Image.fromarray(random_pano(32, 1)).save(inp / "one.png")
    Image.fromarray(random_pano(40, 2)).save(inp / "two.jpg")
    (inp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(inp / "square.webp")
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            str(inp),
            "--checkpoint",
            str(ckpt),
            "--sam-weights",
            str(sam),
            "--out",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.png" in err and "square.webp" in err and "twice the height" in err
    for name, size in (("one", (64, 32)), ("two", (80, 40))):
        lab = Image.open(out / f"{name}_labels.png")
        assert lab.size == size
        assert Image.open(out / f"{name}_color.png").size == size
        assert Image.open(out / f"{name}_overlay.jpg").size == size
    assert Image.open(out / "legend.png").size[0] > 0
    assert not list(out.glob("broken*")) and not list(out.glob("square*")) and not list(out.glob(".*"))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["predictions"]) == {"one", "two"}
    assert sorted(Path(s["input"]).name for s in summary["skipped"]) == ["broken.png", "square.webp"]
    assert summary["class_names"][0] == "beam"  # from the checkpoint's dataset
    fr = summary["predictions"]["one"]["class_fractions"]
    assert sum(fr.values()) == pytest.approx(1.0)


def test_cli_all_good_returns_zero(checkpoint_dir, tmp_path):
    ckpt, sam = checkpoint_dir
    img = tmp_path / "x.png"
    Image.fromarray(random_pano(16, 9)).save(img)
    out = tmp_path / "o"
    rc = main(["predict", str(img), "--checkpoint", str(ckpt), "--sam-weights", str(sam), "--out", str(out),
               "--overlay-format", "png"])  # fmt: skip
    assert rc == 0
    assert (out / "x_overlay.png").is_file() and (out / "x_labels.png").is_file()
    assert json.loads((out / "summary.json").read_text())["skipped"] == []


def test_cli_depth_folder_matched_by_name(tmp_path, capsys):
    model = tiny(("image", "depth"), seed=4, depth_threshold=8.0)
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    sam = tmp_path / "sam.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith(FROZEN_PREFIXES)}, sam)
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(random_pano(16, 1)).save(tmp_path / "rgb" / "room_rgb.png")
    Image.fromarray(random_pano(16, 2)).save(tmp_path / "rgb" / "lonely.png")  # no depth
    mm = np.random.default_rng(0).integers(500, 9000, (16, 32)).astype(np.uint16)
    Image.fromarray(mm).save(tmp_path / "depth" / "room_depth.png")
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "rgb"), "--checkpoint", str(ckpt), "--sam-weights", str(sam)]
    argv += ["--depth", str(tmp_path / "depth"), "--depth-scale", "0.001", "--out", str(out)]
    assert main(argv) == 1
    assert "no depth file matching lonely.png" in capsys.readouterr().err
    assert (out / "room_rgb_labels.png").is_file() and not (out / "lonely_labels.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["predictions"]) == ["room_rgb"]
