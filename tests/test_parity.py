"""The reference's logits for known weights and input (tests/fixtures/parity, see its README)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from make_weights import make_inputs, make_weights

from conftest import COMPAT, PARITY
from panosamic.model import PanoSAMic, load_state_dict_checked

CASE = PARITY / "vit_b_rgb_dv_s1"


@pytest.fixture(scope="module")
def parity_model():
    case = json.loads((CASE / "case.json").read_text())
    weights = make_weights(str(COMPAT / f"state_dict_{case['vit']}_rgb.tsv"), seed=case["seed"], semantic_only=True)
    model = PanoSAMic.from_config(
        f"config/{case['config']}", vit_model=case["vit"], modalities=case["modalities"],
        num_classes=case["num_classes"],
    )
    load_state_dict_checked(model, {k: torch.from_numpy(v) for k, v in weights.items()})
    x = torch.from_numpy(make_inputs(case["modalities"], case["height"], case["width"], seed=case["seed"])["image"])
    return model.eval(), x, np.load(CASE / "expected.npz")


@pytest.mark.parity
@pytest.mark.parametrize("attention", ["exact", "sdpa"])
def test_parity_logits(parity_model, attention):
    model, x, expected = parity_model
    model.image_encoder.attention_impl = attention
    with torch.inference_mode():
        logits = model([{"image": x}])[0]["sem_preds"]
    assert logits.shape == (13, 512, 1024)
    diff = np.abs(logits[:, ::4, ::4].numpy() - expected["logits_sub4"]).max()
    agree = (logits.argmax(0).numpy() == expected["argmax"]).mean()
    print(f"parity[{attention}]: max |logit diff| {diff:.2e}, argmax agreement {agree:.5%}")
    assert diff < 1e-3
    assert agree >= 0.999
