"""Reading a reference-style config dict (``config/config_*.json``; panosamic 0.1's config.json
nests one under ``"config"``): the fusion settings and the training settings, checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from panosamic.config.attention import attention_from
from panosamic.config.checks import as_bool, strip_keys
from panosamic.config.training import LossConfig, LRSchedulerConfig, TrainingConfig

#: The keys a reference config file may hold (besides comment keys).
REFERENCE_KEYS = {"channel_attention", "spatial_attention", "dual_view_fusion", "basic_fusion", "canvas_size",
                  "loss", "optimizer", "lr_scheduler"}

#: The fusion settings, as the reference's files name them (``training`` holds the rest).
FUSION_KEYS = ("channel_attention", "spatial_attention", "dual_view_fusion", "basic_fusion", "canvas_size")


def read_reference_dict(d: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """The fields of :class:`~panosamic.config.reference.PanoSAMicConfig` that ``d`` gives (comment
    keys ignored, unknown keys refused): the fusion settings it names and ``training``."""
    d = strip_keys(where, d, REFERENCE_KEYS)
    kw: dict[str, Any] = {}
    for name in ("channel_attention", "spatial_attention"):
        if name in d:
            kw[name] = attention_from(name, d[name])
    if "dual_view_fusion" in d:
        kw["dual_view_fusion"] = as_bool("dual_view_fusion", d["dual_view_fusion"])
    for name in ("basic_fusion", "canvas_size"):
        if name in d:
            kw[name] = d[name]
    training: dict[str, Any] = {}
    if d.get("loss") is not None:
        training["loss"] = LossConfig.from_dict(d["loss"])
    if d.get("lr_scheduler") is not None:
        training["lr_scheduler"] = LRSchedulerConfig.from_dict(d["lr_scheduler"])
    if "optimizer" in d:
        training["optimizer"] = d["optimizer"]
    kw["training"] = TrainingConfig(**training)
    return kw
