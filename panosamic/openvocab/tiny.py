"""The test architecture ``test-sam3-tiny``: a randomly initialised SAM 3 of ~0.25 M parameters
(56 x 56 input, 8 queries) with a CLIP tokenizer over a tiny vocabulary, built offline."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

__all__ = ["TINY_NAME", "build_tiny_sam3", "save_tiny_sam3"]

TINY_NAME = "test-sam3-tiny"
_MERGES = (("f", "l"), ("fl", "o"), ("o", "r</w>"), ("w", "a"), ("l", "l</w>"), ("l", "a"))
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def tiny_tokenizer() -> Any:
    """A CLIP BPE tokenizer over lower-case letters and a few merges (anything else is unknown)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for c in string.ascii_lowercase + string.digits:
            vocab[c + suffix] = len(vocab)
    for a, b in _MERGES:
        vocab.setdefault(a + b, len(vocab))
    vocab[_BOS], vocab[_EOS] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=list(_MERGES), model_max_length=32)


def tiny_config(vocab_size: int, bos: int, eos: int) -> Any:
    from transformers import Sam3Config, Sam3VisionConfig, Sam3ViTConfig

    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    vision = Sam3VisionConfig(
        backbone_config=Sam3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      image_size=56, patch_size=14, window_size=2, global_attn_indexes=[1],
                                      pretrain_image_size=56),
        fpn_hidden_size=32, backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]],
    )
    text = {"model_type": "clip_text_model", "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
            "projection_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
            "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos}
    return Sam3Config(
        vision_config=vision, text_config=text,
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": 8},
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )


def build_tiny_sam3(seed: int = 0) -> tuple[Any, Any]:
    """(Sam3Model, tokenizer) of the test architecture, the same weights for the same seed."""
    import torch
    from transformers import Sam3Model

    tok = tiny_tokenizer()
    cfg = tiny_config(len(tok), tok.convert_tokens_to_ids(_BOS), tok.convert_tokens_to_ids(_EOS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(cfg)
    return model.eval(), tok


def save_tiny_sam3(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write the test architecture as transformers saves it (config, weights, tokenizer)."""
    model, tok = build_tiny_sam3(seed)
    out = Path(folder)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
