"""The model's state dict is exactly the reference's (the 9 compat tables), and loads strictly."""

from __future__ import annotations

import pytest
import torch
from conftest import COMPAT, build_model, make_tiny_model
from make_weights import make_weights, read_table

from panosamic.config import PanoSAMicConfig
from panosamic.modeling import load_state_dict_checked
from panosamic.specs import FROZEN_PREFIXES

MODS = {"rgb": ("image",), "rgbd": ("image", "depth"), "rgbdn": ("image", "depth", "normals")}
INSTANCE = ("prompt_encoder.", "_cached_prompt_encoder.", "mask_decoder.")
CASES = [(vit, mods) for vit in ("vit_b", "vit_l", "vit_h") for mods in MODS]


def build_meta(vit, mods, **kw):
    kw.setdefault("num_classes", 13)
    config = kw.pop("config", "config/config_stanford2d3ds_dv.json")
    with torch.device("meta"):
        return build_model(config, vit_model=vit, modalities=MODS[mods], **kw)


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("vit,mods", CASES)
def test_full_model_matches_reference_table(vit, mods):
    table = read_table(str(COMPAT / f"state_dict_{vit}_{mods}.tsv"))
    assert shapes(build_meta(vit, mods, semantic_only=False)) == table


@pytest.mark.parametrize("vit,mods", CASES)
def test_semantic_only_drops_exactly_the_instance_branch(vit, mods):
    table = read_table(str(COMPAT / f"state_dict_{vit}_{mods}.tsv"))
    expected = [(k, s) for k, s in table if not k.startswith(INSTANCE)]
    model = build_meta(vit, mods, semantic_only=True)
    assert shapes(model) == expected
    trainable = [k for k in model.state_dict() if not k.startswith(FROZEN_PREFIXES)]
    assert all(k.startswith(("feature_fuser.", "semantic_decoder.")) for k in trainable)
    assert len(trainable) == 66


def test_class_count_and_single_view_change_only_the_spec_keys():
    base = dict(shapes(build_meta("vit_b", "rgbd")))
    k20 = dict(shapes(build_meta("vit_b", "rgbd", num_classes=20)))
    changed = {k for k in base if base[k] != k20.get(k)}
    assert changed == {
        "semantic_decoder.decoder_head.3.weight",
        "semantic_decoder.decoder_head.3.bias",
        "semantic_decoder.decoder_attention.0.conv.weight",
        "semantic_decoder.decoder_attention.0.conv.bias",
        "semantic_decoder.decoder_attention.2.conv.weight",
    }
    assert k20["semantic_decoder.decoder_head.3.weight"] == (20, 256, 1, 1)
    sv = dict(shapes(build_meta("vit_b", "rgbd", config="config/config_stanford2d3ds_sv.json")))
    assert set(base) - set(sv) == {k for k in base if k.startswith("semantic_decoder.decoder_attention.")}
    assert len(set(base) - set(sv)) == 4 and all(sv[k] == base[k] for k in sv)


def test_baseline_variant_keys():
    model = build_meta("vit_b", "rgbd", config="config/config_baseline.json")
    keys = dict(shapes(model))
    assert not any(k.startswith("feature_fuser.") for k in keys)
    assert keys["semantic_decoder.decoder_head.1.weight"] == (256, 512, 1, 1)
    assert keys["semantic_decoder.decoder_head.2.weight"] == (256, 128, 128)
    assert keys["semantic_decoder.decoder_head.5.weight"] == (13, 256, 1, 1)


def test_trainable_counts_match_the_published_sizes():
    model = build_meta("vit_h", "rgbdn")
    assert sum(v.numel() for v in model.trainable_state_dict().values()) == 367_808_522
    assert sum(p.numel() for p in model.image_encoder.parameters()) == 637_026_048
    assert all(not p.requires_grad for p in model.image_encoder.parameters())


def test_full_reference_state_dict_loads_strictly():
    weights = make_weights(str(COMPAT / "state_dict_vit_b_rgbd.tsv"), seed=3, semantic_only=False)
    model = build_meta("vit_b", "rgbd", semantic_only=False)
    load_state_dict_checked(model, {k: torch.from_numpy(v) for k, v in weights.items()})
    sd = model.state_dict()
    key = "_cached_prompt_encoder.no_mask_embed.weight"
    assert torch.equal(sd[key], torch.from_numpy(weights[key]))
    assert not any(v.is_meta for v in sd.values())


def test_mismatched_checkpoints_are_diagnosed():
    weights = {k: torch.from_numpy(v) for k, v in make_weights(str(COMPAT / "state_dict_vit_b_rgbdn.tsv")).items()}
    model = build_meta("vit_b", "rgb")
    with pytest.raises(ValueError, match="sized for 3 modalities, the model was built for 1"):
        load_state_dict_checked(model, weights)
    model_h = build_meta("vit_h", "rgbdn")
    with pytest.raises(ValueError, match="checkpoint is for vit_b, the model was built for vit_h"):
        load_state_dict_checked(model_h, weights)
    model20 = build_meta("vit_b", "rgbdn", num_classes=20)
    with pytest.raises(ValueError, match="13 classes, the model 20"):
        load_state_dict_checked(model20, weights)
    partial = dict(weights)
    partial.pop("semantic_decoder.decoder_head.0.bias")
    partial["feature_fuser.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 missing key\(s\): semantic_decoder.decoder_head.0.bias.*1 unexpected"):
        load_state_dict_checked(build_meta("vit_b", "rgbdn"), partial)


def test_failed_load_changes_nothing():
    model = make_tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = {k: torch.zeros_like(v) for k, v in before.items()}
    sd.pop(next(iter(model.trainable_state_dict())))
    with pytest.raises(ValueError):
        load_state_dict_checked(model, sd)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_config_round_trip_and_reference_files(tmp_path):
    for name in ("stanford2d3ds_dv", "stanford2d3ds_sv", "matterport3d_dv", "baseline"):
        cfg = PanoSAMicConfig.from_json(f"config/config_{name}.json")
        cfg.to_json(tmp_path / "c.json")
        assert PanoSAMicConfig.from_json(tmp_path / "c.json") == cfg
    mp = PanoSAMicConfig.from_json("config/config_matterport3d_dv.json")
    assert mp.loss.scheduled is not None and mp.lr_scheduler.max_lr == 1e-3
    dv = PanoSAMicConfig.from_json("config/config_stanford2d3ds_dv.json")
    assert dv.channel_attention.aggregation == "max" and dv.spatial_attention.aggregation == "none"
    assert (dv.channel_attention.window_size, dv.channel_attention.stride) == (8, 4)


def test_config_refuses_unknown_fields(tmp_path):
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['chanel_attention'\]"):
        PanoSAMicConfig.from_dict({"chanel_attention": None})
    with pytest.raises(ValueError, match=r"aggregation: expected one of"):
        PanoSAMicConfig.from_dict({"spatial_attention": {"aggregation": "median"}})
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PanoSAMicConfig.from_json(p)
    assert PanoSAMicConfig.from_dict({"// note": "_comment", "dual_view_fusion": False}).dual_view_fusion is False


def test_non_finite_tensors_are_named_with_their_counts():
    from panosamic.modeling.state_dict import check_state_dict

    model = make_tiny_model()
    sd = dict(model.state_dict())
    key = "semantic_decoder.decoder_head.3.weight"
    sd[key] = sd[key].clone()
    sd[key].view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    with pytest.raises(ValueError, match=rf"run/model.safetensors does not fit the model: 1 tensor\(s\) with NaN or "
                                         rf"infinite values: {key} \(3 values\)"):
        check_state_dict(model, sd, source="run/model.safetensors")
    sd[key] = sd[key].to(torch.float16)
    with pytest.raises(ValueError, match=rf"{key} \(3 values\)"):
        check_state_dict(model, sd)


def test_non_finite_count_runs_in_chunks(monkeypatch):
    import panosamic.modeling.state_dict as sdm

    monkeypatch.setattr(sdm, "_CHUNK", 7)
    t = torch.zeros(100)
    t[93] = float("inf")
    t[5] = float("nan")
    assert sdm.count_non_finite(t) == 2
    assert sdm.count_non_finite(torch.empty(10, device="meta")) == 0
    assert sdm.count_non_finite(torch.tensor([2**62])) == 0


def test_weights_of_another_kind_of_model_are_named():
    from panosamic.modeling.state_dict import check_state_dict

    with pytest.raises(ValueError, match=r"none of its tensors belongs to this kind of model \(it holds backbone"):
        check_state_dict(make_tiny_model(), {"backbone.conv.weight": torch.zeros(1)}, source="x",
                         only_prefixes=("feature_fuser.", "semantic_decoder."))
