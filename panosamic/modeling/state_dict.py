"""Strict state-dict loading with errors that say what is wrong and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from panosamic.specs import VIT_SPECS, vit_from_embed_dim

_FC0 = "feature_fuser.fusion_blocks.0.channel_attention.att_layer.fc.0.weight"
_NECK0 = "feature_fuser.fusion_blocks.0.neck.0.weight"
_HEAD = "semantic_decoder.decoder_head.3.weight"
_BASE_HEAD = "semantic_decoder.decoder_head.5.weight"
_BASE_IN = "semantic_decoder.decoder_head.1.weight"
_POS = "image_encoder.pos_embed"


def _list(keys: Sequence[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def _architecture(sd: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """What the shapes of a (possibly partial) state dict say about the architecture."""
    arch: dict[str, object] = {}
    if _NECK0 in sd:  # (E, M*E, 1, 1)
        e, me = sd[_NECK0].shape[:2]
        arch["vit"] = vit_from_embed_dim(int(e)) or f"embed dim {int(e)}"
        arch["modalities"] = int(me) // int(e)
    elif _POS in sd:
        e = sd[_POS].shape[-1]
        arch["vit"] = vit_from_embed_dim(int(e)) or f"embed dim {int(e)}"
    if _HEAD in sd:
        arch["classes"] = int(sd[_HEAD].shape[0])
    elif _BASE_HEAD in sd:
        arch["classes"] = int(sd[_BASE_HEAD].shape[0])
    if any(k.startswith("semantic_decoder.") for k in sd):
        arch["dual_view"] = any(k.startswith("semantic_decoder.decoder_attention.") for k in sd)
    arch["baseline"] = _BASE_IN in sd
    return arch


def diagnose(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable reasons why ``sd`` does not fit ``model`` (ViT size, modalities, classes, views)."""
    got, want = _architecture(sd), _architecture(model.state_dict())
    reasons = []
    if "vit" in got and "vit" in want and got["vit"] != want["vit"]:
        reasons.append(f"the checkpoint is for {got['vit']}, the model was built for {want['vit']}")
    if "modalities" in got and "modalities" in want and got["modalities"] != want["modalities"]:
        mods = getattr(model, "modalities", None)
        reasons.append(
            f"the channel-attention MLP is sized for {got['modalities']} modalities, "
            f"the model was built for {want['modalities']}" + (f" {tuple(mods)}" if mods else "")
        )
    if "classes" in got and "classes" in want and got["classes"] != want["classes"]:
        reasons.append(f"the checkpoint has {got['classes']} classes, the model {want['classes']}")
    if "dual_view" in got and "dual_view" in want and got["dual_view"] != want["dual_view"]:
        v = {True: "dual view", False: "single view"}
        reasons.append(
            f"the checkpoint is {v[bool(got['dual_view'])]}, the model {v[bool(want['dual_view'])]} "
            "(config dual_view_fusion)"
        )
    if got.get("baseline") != want.get("baseline") and any(k.startswith("semantic_decoder.") for k in sd):
        reasons.append("one of checkpoint and model is the baseline (basic_fusion) variant, the other is not")
    own = {k.split(".", 1)[0] for k in model.state_dict()}
    if sd and not any(k.split(".", 1)[0] in own for k in sd):
        theirs = sorted({k.split(".", 1)[0] for k in sd})
        reasons.append(f"none of its tensors belongs to this kind of model (it holds {', '.join(theirs[:4])}.*, the "
                       f"model {', '.join(sorted(own)[:4])}.*): weights of another kind of model?")
    if any(k.startswith("_cached_prompt_encoder.") for k in sd) and getattr(model, "semantic_only", False):
        reasons.append("the checkpoint holds the SAM instance branch: build the model with semantic_only=False")
    return reasons


#: Elements scanned at a time by the non-finite check (bounds its temporary mask to 16 MB).
_CHUNK = 1 << 24


def count_non_finite(t: torch.Tensor) -> int:
    """NaN and infinite values of a float tensor, counted in chunks (0 for other and meta tensors)."""
    if not isinstance(t, torch.Tensor) or t.is_meta or not (t.is_floating_point() or t.is_complex()):
        return 0
    flat = t.detach().reshape(-1)
    return sum(int((~torch.isfinite(part)).sum()) for part in flat.split(_CHUNK))


def _non_finite(state_dict: Mapping[str, torch.Tensor], keys: Sequence[str]) -> list[str]:
    """Keys whose float tensors hold NaN or infinite values, with their counts."""
    counts = {k: count_non_finite(state_dict[k]) for k in keys}
    return [f"{k} ({n} values)" for k, n in counts.items() if n]


def check_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
    only_prefixes: Sequence[str] | None = None,
    source: str = "state dict",
) -> dict[str, torch.Tensor]:
    """The tensors of ``state_dict`` that fit ``model``; a ``ValueError`` if anything does not.

    ``only_prefixes``: compare just the keys under these prefixes (e.g. the trainable
    ``feature_fuser.`` and ``semantic_decoder.`` of a Hub checkpoint); other model keys are not
    reported missing. Any mis-shaped, non-float or non-finite (NaN, inf) tensor, and with ``strict`` any missing or
    unexpected key, is named in the error, with a diagnosis of the checkpoint's architecture
    (ViT size, modalities, classes, views).
    """
    expected = model.state_dict()
    if only_prefixes is not None:
        prefixes = tuple(only_prefixes)
        expected = {k: v for k, v in expected.items() if k.startswith(prefixes)}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    non_float = [
        k for k in expected if k in state_dict and expected[k].is_floating_point() and not state_dict[k].is_floating_point()
    ]
    problems = []
    bad = _non_finite(state_dict, [k for k in expected if k in state_dict and not mis_shaped])
    if bad:
        problems.append(f"{len(bad)} tensor(s) with NaN or infinite values: {_list(bad, 3)}")
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} tensor(s) of the wrong shape: {_list(mis_shaped, 3)}")
    if non_float:
        problems.append(f"{len(non_float)} non-float tensor(s): {_list(non_float, 3)}")
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s): {_list(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_list(unexpected)}")
    if problems:
        reasons = diagnose(model, state_dict)
        msg = f"{source} does not fit the model: " + "; ".join(problems)
        if reasons:
            msg += ". Diagnosis: " + "; ".join(reasons)
        raise ValueError(msg)
    return {k: v for k, v in state_dict.items() if k in expected}


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
    only_prefixes: Sequence[str] | None = None,
) -> list[str]:
    """Load ``state_dict`` into ``model`` after :func:`check_state_dict`, casting to each
    parameter's dtype; nothing is loaded when the check fails. Returns the missing keys
    (empty when strict)."""
    tensors = check_state_dict(model, state_dict, strict=strict, only_prefixes=only_prefixes)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and (only_prefixes is None or k.startswith(tuple(only_prefixes)))]
    meta = any(p.is_meta for p in model.parameters())
    if meta:  # built under torch.device("meta"): adopt the given tensors (cast to the model's dtype)
        tensors = {k: v.to(dtype=expected[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(tensors, strict=False, assign=meta)
    return missing


def infer_vit_size(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The ViT size (``vit_b``/``vit_l``/``vit_h``/``vit_tiny``) of an encoder state dict.

    Read from the embedding width and the number of blocks of ``image_encoder.*`` (a bare
    encoder state dict without the prefix is accepted too).
    """
    prefix = "image_encoder." if any(k.startswith("image_encoder.") for k in state_dict) else ""
    proj = state_dict.get(f"{prefix}patch_embed.proj.weight")
    if proj is None:
        raise ValueError(
            "not a SAM encoder state dict: no 'image_encoder.patch_embed.proj.weight' "
            f"({len(state_dict)} keys, e.g. {sorted(state_dict)[:3]})"
        )
    embed_dim = int(proj.shape[0])
    pattern = re.compile(re.escape(prefix) + r"blocks\.(\d+)\.")
    blocks = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    depth = max(blocks) + 1 if blocks else 0
    for name, spec in VIT_SPECS.items():
        if spec.embed_dim == embed_dim and spec.depth == depth:
            return name
    known = ", ".join(f"{n} ({s.embed_dim}, {s.depth})" for n, s in VIT_SPECS.items())
    raise ValueError(
        f"unknown SAM encoder: embed dim {embed_dim}, {depth} blocks; known (embed dim, blocks): {known}"
    )
