"""The reference's logits for known weights and input (tests/fixtures/parity, see its README)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.parity
@pytest.mark.parametrize("attention", ["exact", "sdpa"])
def test_parity_logits(parity_case, parity_fast_logits, attention):
    model, x, expected = parity_case
    if attention == "sdpa":  # the default fast path (SDPA): its logits are computed once per session
        assert model.image_encoder.attention_impl == "sdpa"
        logits = parity_fast_logits
    else:
        previous = model.inference_options
        model.image_encoder.attention_impl = attention
        try:
            with torch.inference_mode():
                logits = model([{"image": x}])[0]["sem_preds"]
        finally:
            model.configure_inference(previous)
    assert logits.shape == (13, 512, 1024)
    diff = np.abs(logits[:, ::4, ::4].numpy() - expected["logits_sub4"]).max()
    agree = (logits.argmax(0).numpy() == expected["argmax"]).mean()
    print(f"parity[{attention}]: max |logit diff| {diff:.2e}, argmax agreement {agree:.5%}")
    assert diff < 1e-3
    assert agree >= 0.999
