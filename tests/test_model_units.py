"""Unit tests of the model's components on tiny models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import build_model, make_tiny_model, random_panorama, tiny_config

from panosamic.config import AttentionConfig
from panosamic.modeling.attention import MovingAttention, _coverage
from panosamic.modeling.decoder import SphericalConv2d
from panosamic.modeling.fusion import FusionBlock
from panosamic.modeling.positional import HorizontalPositionalEncoding, horizontal_encoding


# ---------------------------------------------------------------- MCBAM, against a window loop
def loop_channel_attention(layer, x, win, stride, aggregation):
    _n, _c, h, w = x.shape
    total = torch.zeros_like(x)
    count = torch.zeros(1, 1, h, w)
    for i in range(0, h - win + 1, stride):
        for j in range(0, w - win + 1, stride):
            patch = x[:, :, i : i + win, j : j + win]
            z = layer(patch.mean(dim=(2, 3)), patch.amax(dim=(2, 3)))
            g = z if aggregation == "none" else torch.sigmoid(z)
            total[:, :, i : i + win, j : j + win] += g[:, :, None, None]
            count[:, :, i : i + win, j : j + win] += 1
    if aggregation == "none":
        return torch.sigmoid(total)
    if aggregation == "mean":
        return total / count
    return torch.sigmoid(15 * (total - 0.5))


def loop_spatial_attention(conv, x, win, stride, aggregation):
    n, _c, h, w = x.shape
    total = torch.zeros(n, 1, h, w)
    count = torch.zeros(1, 1, h, w)
    for i in range(0, h - win + 1, stride):
        for j in range(0, w - win + 1, stride):
            patch = x[:, :, i : i + win, j : j + win]
            maps = torch.cat([patch.mean(1, keepdim=True), patch.amax(1, keepdim=True)], 1)
            z = conv(maps)  # zero padding inside the window
            total[:, :, i : i + win, j : j + win] += z if aggregation == "none" else torch.sigmoid(z)
            count[:, :, i : i + win, j : j + win] += 1
    if aggregation == "none":
        return torch.sigmoid(total)
    if aggregation == "mean":
        return total / count
    return torch.sigmoid(15 * (total - 0.5))


@pytest.mark.parametrize("aggregation", ["none", "mean", "max"])
@pytest.mark.parametrize("size", [16, 20])
def test_moving_attention_equals_window_loop(aggregation, size):
    torch.manual_seed(0)
    cfg = AttentionConfig(window_size=8, stride=4, aggregation=aggregation)
    x = torch.randn(2, 6, size, size)
    ca = MovingAttention("channel", 6, cfg)
    sa = MovingAttention("spatial", 6, cfg)
    with torch.no_grad():
        torch.testing.assert_close(ca(x), loop_channel_attention(ca.att_layer, x, 8, 4, aggregation))
        torch.testing.assert_close(sa(x), loop_spatial_attention(sa.att_layer.conv, x, 8, 4, aggregation))


def test_window_coverage_counts():
    count = _coverage((64, 64), 8, 4, torch.zeros(1))[0, 0]
    # 15 x 15 windows; 1 window per axis in the 4 outermost rows/columns, else 2
    per_axis = torch.tensor([1] * 4 + [2] * 56 + [1] * 4, dtype=torch.float32)
    assert torch.equal(count, per_axis[:, None] * per_axis[None, :])
    assert count.sum() == 15 * 15 * 64


def test_fusion_block_modality_major_stacking():
    """Channel m*E + e of the stacked map comes from modality m (the published layout)."""
    block = FusionBlock(4, 3, 16, None, None).eval()
    x = torch.randn(2 * 3, 4, 16, 16)
    seen = {}
    block.neck[0].register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0]))
    with torch.no_grad():
        block(x)
    normed = block.norm(x)
    assert torch.equal(seen["x"][1, 8:12], normed[5])  # sample 1, modality 2
    assert torch.equal(seen["x"][0, 4:8], normed[1])  # sample 0, modality 1


# ---------------------------------------------------------------- spherical convolution
def test_spherical_conv_wraps_left_right_and_zero_pads_top_bottom():
    conv = SphericalConv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 5, 8)
    x[0, 0, 2, 0] = 1.0  # a dot on the left edge
    y = conv(x)
    assert y.shape == x.shape
    assert y[0, 0, 2, 7] == 1.0 and y[0, 0, 1, 7] == 1.0  # it reaches across the seam
    x = torch.zeros(1, 1, 5, 8)
    x[0, 0, 0, 3] = 1.0
    assert conv(x)[0, 0, 4].abs().sum() == 0  # no wrap vertically
    # rolling the input rolls the output: equivariant to longitude shifts
    x = torch.randn(1, 1, 6, 12)
    torch.testing.assert_close(conv(torch.roll(x, 5, -1)), torch.roll(conv(x), 5, -1))


# ---------------------------------------------------------------- positional encoding
def test_horizontal_encoding_formula_and_float64_table():
    pe = horizontal_encoding(8, 16)[0, :, 0]
    w = torch.arange(16, dtype=torch.float64)
    for i in range(4):
        freq = 10000.0 ** (-2 * i / 8)
        torch.testing.assert_close(pe[2 * i], torch.sin(w * freq).float(), rtol=0, atol=1e-7)
        torch.testing.assert_close(pe[2 * i + 1], torch.cos(w * freq).float(), rtol=0, atol=1e-7)


def test_both_views_carry_the_true_longitude():
    """Features of view 1 rolled back by W/2 receive the same encoding as view 0."""
    enc = HorizontalPositionalEncoding()
    x = torch.zeros(2, 16, 3, 32)
    y = enc(x)
    torch.testing.assert_close(torch.roll(y[1], -16, dims=-1), y[0])
    assert not torch.equal(y[0], y[1])


# ---------------------------------------------------------------- model forward
def test_forward_shapes_and_output_format(tiny_model):
    out = tiny_model([random_panorama(), random_panorama(seed=1)])
    assert len(out) == 2
    assert out[0]["sem_preds"].shape == (13, 128, 256)
    assert out[0]["instance_masks"] == []


@pytest.mark.parametrize("size", [(64, 128), (100, 200), (256, 512)])
def test_any_2to1_size_is_resized_and_back(tiny_model, size):
    h, w = size
    pano = random_panorama(height=h, width=w)
    out = tiny_model([pano])[0]["sem_preds"]
    assert out.shape == (13, h, w)
    # same as running the native-size version and resizing the logits back
    native = F.interpolate(pano["image"][None], size=(128, 256), mode="bilinear", align_corners=False,
                           antialias=w > 256)[0]
    ref = tiny_model([{"image": native}])[0]["sem_preds"]
    back = F.interpolate(ref[None], size=size, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, back)


def test_native_size_is_not_resized(tiny_model, monkeypatch):
    calls = []
    orig = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(k.get("size")) or orig(*a, **k))
    tiny_model([random_panorama()])
    assert all(size is None for size in calls)  # only the scale_factor upsampling of the logits


def test_view_one_is_the_panorama_rolled_by_half_its_width():
    """The second view's encoder input is the first view of the half-rolled panorama."""
    model = make_tiny_model()
    pano = random_panorama()
    rolled = {"image": torch.roll(pano["image"], 128, -1)}
    imgs_a, imgs_b = model.preprocess([pano]), model.preprocess([rolled])
    assert imgs_a.shape == (2, 3, 256, 256)
    torch.testing.assert_close(imgs_a[1], imgs_b[0])
    torch.testing.assert_close(imgs_a[0], imgs_b[1])
    # padding (below and right of the panorama) is zero after normalisation
    assert imgs_a[:, :, 128:].abs().sum() == 0


def test_batch_equals_single(tiny_model):
    p0, p1 = random_panorama(seed=3), random_panorama(seed=4)
    both = tiny_model([p0, p1])
    torch.testing.assert_close(both[1]["sem_preds"], tiny_model([p1])[0]["sem_preds"], atol=1e-5, rtol=1e-5)


def test_exact_and_sdpa_attention_agree():
    model = make_tiny_model(modalities=("image", "depth"))
    pano = random_panorama(("image", "depth"))
    model.image_encoder.attention_impl = "exact"
    a = model([pano])[0]["sem_preds"]
    model.image_encoder.attention_impl = "sdpa"
    b = model([pano])[0]["sem_preds"]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_single_view_and_baseline_forward():
    sv = make_tiny_model(modalities=("image", "depth"), dual_view_fusion=False)
    assert sv([random_panorama(("image", "depth"))])[0]["sem_preds"].shape == (13, 128, 256)
    base = make_tiny_model(
        modalities=("image", "depth"), dual_view_fusion=False, basic_fusion="concat",
        channel_attention=None, spatial_attention=None,
    )
    assert base([random_panorama(("image", "depth"))])[0]["sem_preds"].shape == (13, 128, 256)


def test_build_on_meta_device_allocates_nothing():
    with torch.device("meta"):
        model = build_model(tiny_config(), vit_model="vit_h", modalities="image,depth,normals",
                                      num_classes=20, semantic_only=False)
    assert all(p.is_meta for p in model.parameters())
    assert model.modalities == ("image", "depth", "normals")


def test_gradients_reach_only_trainable_parts(tiny_model):
    tiny_model.train()
    out = tiny_model([random_panorama()])[0]["sem_preds"]
    out.square().mean().backward()
    assert all(p.grad is None for p in tiny_model.image_encoder.parameters())
    grads = [p.grad for n, p in tiny_model.named_parameters() if n.startswith(("feature_fuser.", "semantic_decoder."))]
    assert grads and all(g is not None for g in grads)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "sample,error,match",
    [
        ({"depth": torch.zeros(3, 128, 256)}, ValueError, r"missing modality \['image'\]"),
        ({"image": torch.zeros(3, 128, 256), "normals": torch.zeros(3, 128, 256)}, ValueError,
         r"modality \['normals'\] given, but the model was built for \['image'\]"),
        ({"image": torch.zeros(4, 128, 256)}, ValueError, r"expected shape \(3, H, W\), got \(4, 128, 256\)"),
        ({"image": torch.zeros(3, 128, 256, dtype=torch.uint8)}, TypeError, "expected a float tensor"),
        ({"image": torch.zeros(3, 128, 200)}, ValueError, "expected width = 2 x height"),
        ({"image": [[0.0]]}, TypeError, "expected a torch.Tensor"),
    ],
)
def test_bad_input_is_refused_clearly(tiny_model, sample, error, match):
    with pytest.raises(error, match=match):
        tiny_model([sample])


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="unknown ViT 'vit_x'"):
        build_model(tiny_config(), vit_model="vit_x", modalities=("image",), num_classes=13)
    with pytest.raises(ValueError, match="must include 'image'"):
        build_model(tiny_config(), vit_model="vit_tiny", modalities=("depth",), num_classes=13)
    with pytest.raises(ValueError, match="unknown modality"):
        build_model(tiny_config(), vit_model="vit_tiny", modalities=("image", "lidar"), num_classes=13)


def test_reused_mask_buffers_change_nothing():
    """Without gradients the SDPA masks share one buffer; the result is bit-identical."""
    model = make_tiny_model(modalities=("image", "depth"))
    images = model.preprocess([random_panorama(("image", "depth"))])
    model.image_encoder.max_mask_elements = 2**12  # several query chunks per block
    with torch.no_grad():
        _, shared = model.image_encoder(images)
    _, fresh = model.image_encoder(images)  # gradients on: a new mask per chunk
    assert all(torch.equal(a, b) for a, b in zip(shared, fresh))
