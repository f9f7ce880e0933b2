"""The fast inference path, bf16 and training-memory options compute what the exact path computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model, random_panorama

import panosamic.modeling.fusion as fusion_mod
from panosamic.modeling import InferenceOptions
from panosamic.modeling.encoder import _sdpa_attention

MODS = ("image", "depth")


def _logits(model, panos):
    with torch.no_grad():
        return torch.stack([o["sem_preds"] for o in model(panos)])


def _encoder_batches(model, monkeypatch):
    """Record the number of images of every encoder call."""
    calls: list[int] = []
    original = type(model.image_encoder).forward

    def counting(self, x, with_neck=False):
        calls.append(x.shape[0])
        return original(self, x, with_neck=with_neck)

    monkeypatch.setattr(type(model.image_encoder), "forward", counting)
    return calls


# ---------------------------------------------------------------- options
def test_presets_and_validation():
    exact, fast = InferenceOptions.exact(), InferenceOptions.fast()
    assert (exact.attention, exact.encoder_batch, exact.precision) == ("exact", "per_view", "fp32")
    assert (fast.attention, fast.precision) == ("sdpa", "fp32")
    assert InferenceOptions.fast(precision="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="attention"):
        InferenceOptions(attention="flash")
    with pytest.raises(ValueError, match="encoder_batch"):
        InferenceOptions(encoder_batch=0)
    with pytest.raises(ValueError, match="encoder_batch"):
        InferenceOptions(encoder_batch=True)
    with pytest.raises(ValueError, match="precision"):
        InferenceOptions(precision="fp16")
    with pytest.raises(TypeError, match="compile"):
        InferenceOptions(compile="yes")
    with pytest.raises(ValueError, match="inference path"):
        InferenceOptions.for_path("turbo")


def test_configure_inference_sets_the_encoder_and_refuses_unknown_options(tiny_model):
    assert tiny_model.inference_options == InferenceOptions.fast()  # the default
    opts = tiny_model.set_inference_path("exact")
    assert opts == InferenceOptions.exact() and tiny_model.image_encoder.attention_impl == "exact"
    tiny_model.configure_inference(attention="sdpa")
    assert tiny_model.image_encoder.attention_impl == "sdpa"
    assert tiny_model.inference_options.encoder_batch == "per_view"  # the other fields are kept
    tiny_model.image_encoder.attention_impl = "exact"  # set directly: the options follow
    assert tiny_model.inference_options.attention == "exact"
    with pytest.raises(TypeError, match="unknown inference option"):
        tiny_model.configure_inference(precison="bf16")
    with pytest.raises(TypeError, match="options must be"):
        tiny_model.configure_inference(3)


# ---------------------------------------------------------------- fast == exact
def test_fast_path_equals_exact_path_on_a_batch():
    model = make_tiny_model(modalities=MODS)
    panos = [random_panorama(MODS, seed=1), random_panorama(MODS, 64, 128, seed=2)]
    model.set_inference_path("exact")
    exact = [o["sem_preds"] for o in model(panos)]
    model.set_inference_path("fast")
    fast = [o["sem_preds"] for o in model(panos)]
    assert [e.shape for e in exact] == [(13, 128, 256), (13, 64, 128)]
    for e, f in zip(exact, fast):
        torch.testing.assert_close(f, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "encoder_batch,expected_calls",
    [("all", [8]), ("per_view", [2, 2, 2, 2]), (3, [3, 3, 2]), (8, [8]), (1, [1] * 8)],
)
def test_encoder_batch_chunks_the_encoder_calls(monkeypatch, encoder_batch, expected_calls):
    model = make_tiny_model(modalities=MODS)
    panos = [random_panorama(MODS, seed=1), random_panorama(MODS, seed=2)]
    model.configure_inference(encoder_batch="all")
    reference = _logits(model, panos)
    model.configure_inference(encoder_batch=encoder_batch)
    calls = _encoder_batches(model, monkeypatch)
    got = _logits(model, panos)
    assert calls == expected_calls  # 2 samples x 2 views x 2 modalities, in chunks
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=1e-5)


def test_sdpa_mask_is_built_in_query_chunks_and_stays_exact(monkeypatch):
    model = make_tiny_model()
    block = model.image_encoder.blocks[model.image_encoder.global_attn_indexes[0]]
    x = torch.randn(2, 16, 16, model.image_encoder.patch_embed.proj.out_channels)
    with torch.no_grad():
        exact = block.attn(x)
        whole = _sdpa_attention(block.attn, x)
        mask_rows = []
        sdpa = F.scaled_dot_product_attention

        def spy(q, k, v, attn_mask=None, **kw):
            mask_rows.append(attn_mask.shape[-2])
            return sdpa(q, k, v, attn_mask=attn_mask, **kw)

        monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
        chunked = _sdpa_attention(block.attn, x, max_mask_elements=2 * 2 * 256 * 100)  # 100 query rows
    assert mask_rows == [100, 100, 56]
    torch.testing.assert_close(chunked, exact, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole, exact, atol=1e-5, rtol=1e-5)


def test_channels_last_gives_the_same_logits():
    model = make_tiny_model(modalities=MODS)
    pano = [random_panorama(MODS, seed=5)]
    plain = _logits(model, pano)
    model.configure_inference(channels_last=True)
    torch.testing.assert_close(_logits(model, pano), plain, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- modes and precision
def test_inference_mode_only_without_gradients_and_outputs_are_ordinary_tensors(tiny_model):
    modes: list[bool] = []
    tiny_model.feature_fuser.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    with torch.no_grad():
        out = tiny_model([random_panorama()])[0]["sem_preds"]
    assert modes == [True] and not out.is_inference()
    out.add_(1)  # in-place use of the result outside inference mode is allowed
    # gradients enabled (eval mode): ordinary autograd, gradients reach the trainable parts
    out = tiny_model([random_panorama()])[0]["sem_preds"]
    assert modes == [True, False] and out.requires_grad
    tiny_model.configure_inference(inference_mode=False)
    with torch.no_grad():
        tiny_model([random_panorama()])
    assert modes[-1] is False


def test_bf16_autocasts_the_encoder_blocks_only_and_returns_float32_logits():
    model = make_tiny_model(modalities=MODS)
    pano = [random_panorama(MODS, seed=7)]
    fp32 = _logits(model, pano)
    dtypes: dict[str, torch.dtype] = {}

    def record(name):
        def hook(module, inputs, output):
            dtypes.setdefault(name, output.dtype)

        return hook

    enc = model.image_encoder
    enc.patch_embed.register_forward_hook(record("patch_embed"))
    enc.blocks[0].mlp.register_forward_hook(record("block_mlp"))
    model.feature_fuser.fusion_blocks[0].neck[0].register_forward_hook(record("fusion_conv"))
    model.semantic_decoder.register_forward_hook(record("decoder"))
    model.configure_inference(precision="bf16")
    bf16 = _logits(model, pano)
    assert dtypes == {"patch_embed": torch.float32, "block_mlp": torch.bfloat16,
                      "fusion_conv": torch.float32, "decoder": torch.float32}
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert not torch.equal(bf16, fp32)  # it really ran in lower precision ...
    assert (bf16 - fp32).abs().max() < 0.1 * fp32.abs().max()  # ... and stays close


def test_stage_hook_sees_every_stage_in_order(tiny_model):
    import contextlib

    seen: list[str] = []

    @contextlib.contextmanager
    def hook(name):
        seen.append(name)
        yield

    tiny_model.stage_hook = hook
    with torch.no_grad():
        tiny_model([random_panorama()])
    assert seen == ["preprocess", "encoder", "fusion", "decoder", "postprocess"]


# ---------------------------------------------------------------- training memory
def _trainable_grads(model, pano, labels_seed=0):
    model.zero_grad(set_to_none=True)
    out = model([pano])[0]["sem_preds"]
    g = torch.Generator().manual_seed(labels_seed)
    target = torch.randn(out.shape, generator=g)
    (out - target).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_gives_identical_gradients(monkeypatch):
    model = make_tiny_model(modalities=MODS).train()
    pano = random_panorama(MODS, seed=3)
    plain = _trainable_grads(model, pano)
    calls = []
    original = fusion_mod.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return original(fn, *args, **kwargs)

    monkeypatch.setattr(fusion_mod, "checkpoint", counting)
    model.set_gradient_checkpointing(True)
    assert model.gradient_checkpointing
    checkpointed = _trainable_grads(model, pano)
    assert calls == [False] * 4  # one per fusion block, non-reentrant
    assert plain.keys() == checkpointed.keys() and any(k.startswith("feature_fuser.") for k in plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=0, rtol=0, msg=name)
    model.eval()
    with torch.no_grad():  # no checkpointing (and no recomputation) outside training
        model([pano])
    assert len(calls) == 4


# ---------------------------------------------------------------- parity case (ViT-B, 512x1024)

@pytest.fixture(scope="module")
def parity_fp32(parity_case, parity_fast_logits):
    """The parity model on the fast fp32 path and its logits (shared with tests/test_parity.py)."""
    model, x, expected = parity_case
    previous = model.inference_options
    model.eval().set_inference_path("fast")
    yield model, x, parity_fast_logits, expected
    model.configure_inference(previous)


@pytest.mark.parity
def test_fast_fp32_path_matches_the_reference(parity_fp32):
    _, _, logits, expected = parity_fp32
    diff = np.abs(logits[:, ::4, ::4].numpy() - expected["logits_sub4"]).max()
    agree = (logits.argmax(0).numpy() == expected["argmax"]).mean()
    print(f"fast fp32: max |logit diff| {diff:.2e}, argmax agreement {agree:.5%}")
    assert diff < 1e-3
    assert agree >= 0.999


@pytest.mark.parity
def test_bf16_keeps_argmax_agreement_with_fp32(parity_fp32):
    model, x, fp32, expected = parity_fp32
    model.configure_inference(precision="bf16")
    try:
        with torch.no_grad():
            bf16 = model([{"image": x}])[0]["sem_preds"]
    finally:
        model.configure_inference(precision="fp32")
    assert bf16.dtype == torch.float32
    agree = (bf16.argmax(0) == fp32.argmax(0)).float().mean().item()
    agree_ref = (bf16.argmax(0).numpy() == expected["argmax"]).mean()
    diff = (bf16 - fp32).abs()
    print(f"bf16 vs fp32: argmax agreement {agree:.4%} (vs reference {agree_ref:.4%}), "
          f"max |logit diff| {diff.max():.3e}, mean {diff.mean():.3e}")
    assert agree >= 0.995
    assert agree_ref >= 0.995


# ---------------------------------------------------------------- the benchmark script
def test_benchmark_script_writes_json_and_markdown(tmp_path, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
    spec = importlib.util.spec_from_file_location("panosamic_bench", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "panosamic_bench", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    md = tmp_path / "RESULTS.md"
    rc = bench.main(["--vit", "vit_tiny", "--modalities", "rgbd", "--path", "exact", "fast", "--precision", "fp32",
                     "--repeats", "2", "--warmup", "0", "--in-process", "--out-dir", str(tmp_path), "--markdown", str(md)])
    assert rc == 0
    (result,) = tmp_path.glob("*.json")
    runs = json.loads(result.read_text())["results"]
    assert [(r["spec"]["path"], r["spec"]["precision"]) for r in runs] == [("exact", "fp32"), ("fast", "fp32")]
    for r in runs:
        assert r["error"] is None and len(r["total"]) == 2 and r["peak_bytes"] is not None
        assert set(r["stages"]) == {"preprocess", "encoder", "fusion", "decoder", "postprocess"}
        assert all(t > 0 for ts in r["stages"].values() for t in ts)
    assert runs[1]["parity"]["argmax_agreement"] > 0.999  # fast vs exact, compared by the script
    text = md.read_text()
    assert "vit_tiny | rgbd | cpu | 1 | fast | fp32" in text and "GPU: none" in text
