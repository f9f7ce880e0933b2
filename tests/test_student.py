"""The compact student: config, wrap-around padding (roll equivariance, seam), teacher interface, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import random_panorama
from torch import nn

from panosamic.hub.student import load_student, save_student
from panosamic.student import PanoStudent, StudentConfig, is_student_config
from panosamic.student.padding import CircularConv2d, CircularMaxPool2d

SMALL = (64, 128)  # the smallest native size: the width is a multiple of 2 x 32


def make_student(backbone: str = "mobilenetv3_small_100", modalities=("image",), seed: int = 0, **changes):
    """A student with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = PanoStudent(StudentConfig(backbone=backbone, modalities=modalities, native_size=SMALL, **changes))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_config_round_trip_and_errors(tmp_path) -> None:
    cfg = StudentConfig(modalities="rgbd", num_classes=3, class_names=["a", "b", "c"], palette=[[1, 2, 3]] * 3,
                        depth_threshold=4, dataset="stanford2d3ds", native_size=[256, 512])
    d = cfg.to_dict()
    assert d["architecture"] == "panosamic-student" and is_student_config(d)
    assert StudentConfig.from_dict(json.loads(json.dumps(d))) == cfg
    cfg.to_json(tmp_path / "config.json")
    assert StudentConfig.from_json(tmp_path / "config.json") == cfg
    assert cfg.in_channels == 6 and cfg.variant_name == "stanford2d3ds-student-mobilenetv3_large_100-rgbd"
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['vit'\]"):
        StudentConfig.from_dict({**d, "vit": "vit_h"})
    with pytest.raises(ValueError, match="architecture 'panosamic'"):
        StudentConfig.from_dict({**d, "architecture": "panosamic"})
    with pytest.raises(ValueError, match="native_size"):
        StudentConfig(native_size=(100, 200))
    with pytest.raises(ValueError, match="2 class names"):
        StudentConfig(num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="backbone 'no_such_net'"):
        PanoStudent(StudentConfig(backbone="no_such_net"))


def test_default_size_and_every_padded_layer_wraps() -> None:
    model = PanoStudent()  # the default: mobilenetv3_large_100, RGB, 13 classes
    assert 2.5e6 < model.num_parameters() < 4.5e6  # "a few million" (GoodSAM's students: 3.7 M)
    assert model.semantic_only and model.modalities == ("image",) and model.native_size == (512, 1024)
    resnet = PanoStudent(StudentConfig(backbone="resnet18", modalities="rgbdn"))
    for net in (model, resnet):
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        assert all(m.padding in ((0, 0), "valid") for m in convs)  # nothing zero-pads horizontally
        assert sum(isinstance(m, CircularConv2d) and m.wrap_padding[1] > 0 for m in convs) > 10
        assert all(not isinstance(m, nn.MaxPool2d) or isinstance(m, CircularMaxPool2d) or m.padding == 0
                   for m in net.modules())
    assert resnet.backbone.conv1.in_channels == 9  # RGB-D-N: three modalities stacked as channels
    assert any(isinstance(m, CircularMaxPool2d) for m in resnet.modules())


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_100", "efficientnet_lite0", "resnet18"])
def test_rolling_the_input_by_half_rolls_the_logits(backbone: str) -> None:
    model = make_student(backbone)
    x = torch.rand(2, 3, *SMALL) * 255
    w = SMALL[1]
    with torch.no_grad():
        rolled = model.forward_tensor(torch.roll(x, w // 2, dims=-1))
        expected = torch.roll(model.forward_tensor(x), w // 2, dims=-1)
    assert rolled.shape == (2, 13, *SMALL)
    scale = expected.abs().max()
    assert scale > 0
    assert (rolled - expected).abs().max() <= 1e-5 * max(1.0, float(scale))


def test_the_seam_is_as_continuous_as_the_interior() -> None:
    model = make_student()
    x = torch.rand(1, 3, *SMALL) * 255
    with torch.no_grad():
        y = model.forward_tensor(x)[0]
    interior = (y[:, :, 1:] - y[:, :, :-1]).abs().mean()
    seam = (y[:, :, 0] - y[:, :, -1]).abs().mean()
    assert seam <= 2 * interior
    # the same two columns, moved to the middle by rolling the input, are ordinary neighbours
    with torch.no_grad():
        z = model.forward_tensor(torch.roll(x, SMALL[1] // 2, dims=-1))[0]
    mid = SMALL[1] // 2
    torch.testing.assert_close(z[:, :, mid - 1], y[:, :, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, :, mid], y[:, :, 0], atol=1e-5, rtol=0)


def test_teacher_interface_any_2to1_size_and_modalities() -> None:
    model = make_student(modalities=("image", "depth", "normals"), num_classes=5)
    samples = [random_panorama(model.modalities, 64, 128, seed=0), random_panorama(model.modalities, 40, 80, seed=1)]
    with torch.no_grad():
        outs = model(samples)
        direct = model.forward_tensor(torch.cat([samples[0][m] for m in model.modalities])[None])[0]
    assert [tuple(o["sem_preds"].shape) for o in outs] == [(5, 64, 128), (5, 40, 80)]
    assert all(o["instance_masks"] == [] for o in outs)
    torch.testing.assert_close(outs[0]["sem_preds"], direct)  # native size: nothing resized
    with pytest.raises(ValueError, match="missing modality"):
        model([random_panorama(("image",), 64, 128)])
    with pytest.raises(ValueError, match="not an equirectangular panorama"):
        model([random_panorama(model.modalities, 64, 100)])


def test_save_load_round_trip(tmp_path) -> None:
    model = make_student(num_classes=4)
    save_student(model, tmp_path / "student", metrics={"miou": 0.5})
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_student(tmp_path / "student")
    assert loaded.config == model.config
    x = torch.rand(1, 3, *SMALL) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_tensor(x), model.forward_tensor(x))
    with pytest.raises(FileNotFoundError, match="missing is neither an existing file or folder nor a Hub repo id"):
        load_student(tmp_path / "missing")


def test_predict_accepts_a_student() -> None:
    predict = pytest.importorskip("panosamic.inference.predict").predict
    model = make_student()
    rgb = random_panorama(("image",), 32, 64)["image"]
    result = predict(model, rgb)
    assert tuple(result.labels.shape) == (32, 64)
