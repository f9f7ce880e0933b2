"""The model part of every training checkpoint, written and read by one pair of functions.

A training checkpoint (``model_best.pth`` / ``model_last.pth`` of ``train``, ``adapt`` and
``distill``) holds ``model`` (the full state dict, DDP prefix stripped) and ``model_config`` (the
model's config.json dict, whose ``"architecture"`` names the kind of model); each trainer adds its
own entries beside them (epoch, optimizer, metrics, ...). :func:`read_model_entries` also reads the
older layouts: a distillation checkpoint's ``student_config``, this library's first ``config`` +
``vit_model`` + ``modalities`` + ``num_classes``, and the reference's own ``{"epoch", "model",
"best_miou", "miou", "macc"}``, which records no architecture (the caller supplies it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from panosamic.config import ConfigError, PanoSAMicConfig
from panosamic.config.model import USE_FIELDS
from panosamic.hub.metadata import PANOSAMIC, architecture_of, read_config
from panosamic.specs import FROZEN_PREFIXES

__all__ = ["ModelEntries", "model_entries", "read_model_entries"]

#: Keys of the older layout that record a PanoSAMic's architecture, and the ModelConfig fields they give.
_RECORDED = {"vit_model": "vit", "modalities": "modalities", "num_classes": "num_classes"}
#: A PanoSAMic's SAM instance branch (prompt encoder under both names, mask decoder).
_INSTANCE_BRANCH = tuple(p for p in FROZEN_PREFIXES if p != "image_encoder.")


@dataclass(frozen=True)
class ModelEntries:
    """The model part of a training checkpoint: its kind, config (None where the checkpoint does not
    record it) and state dict; ``recorded``: the architecture facts such a checkpoint does record."""

    architecture: str
    config: Any
    state: dict[str, torch.Tensor]
    recorded: dict[str, Any] = field(default_factory=dict)


def model_entries(model: Any, *, semantic_only: bool = False) -> dict[str, Any]:
    """``{"model": state dict, "model_config": config.json dict}`` of a model (any kind with a
    ``config`` that has ``to_dict``), for a training checkpoint; DDP's ``module.`` prefix is stripped.
    ``semantic_only``: a PanoSAMic's entries without SAM's instance branch (the model it loads as)."""
    net = getattr(model, "module", model)
    state = {k.removeprefix("module."): v for k, v in net.state_dict().items()}
    config = net.config
    if semantic_only:
        state = {k: v for k, v in state.items() if not k.startswith(_INSTANCE_BRANCH)}
        config = config.replace(semantic_only=True)
    return {"model": state, "model_config": config.to_dict()}


def reference_config(d: Any, source: str) -> PanoSAMicConfig:
    """A reference-style ``config`` entry; an error names the checkpoint."""
    where = f"{source} (config)"
    try:
        return PanoSAMicConfig.from_dict(d, where=where)
    except ConfigError as e:
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where}: {e}") from None


def read_model_entries(checkpoint: Mapping[str, Any], source: str) -> ModelEntries:
    """The model part of a loaded training checkpoint (any layout above); ``source`` names it in errors."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise ValueError(f"{source} is not a training checkpoint (a dict with a 'model' state dict)")
    state = {str(k).removeprefix("module."): v for k, v in checkpoint["model"].items()}
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"{source}: 'model' is not a state dict ({len(bad)} entries are not tensors, e.g. {bad[:3]})")
    if isinstance(checkpoint.get("model_config"), Mapping):
        d = checkpoint["model_config"]
        return ModelEntries(architecture_of(d), read_config(d, f"{source} (model_config)"), state)
    if isinstance(checkpoint.get("student_config"), Mapping):  # distillation checkpoints before model_config
        d = {"architecture": "panosamic-student", **checkpoint["student_config"]}
        return ModelEntries(architecture_of(d), read_config(d, f"{source} (student_config)"), state)
    if all(checkpoint.get(k) is not None for k in ("config", *_RECORDED)):
        use = {k: checkpoint.get(k) for k in USE_FIELDS if k in checkpoint and k != "name"}
        config = reference_config(checkpoint["config"], source).model_config(
            vit=checkpoint["vit_model"], modalities=tuple(checkpoint["modalities"]),
            num_classes=int(checkpoint["num_classes"]), **use,
        )  # fmt: skip
        return ModelEntries(PANOSAMIC, config, state)
    recorded = {f: checkpoint[k] for k, f in _RECORDED.items() if checkpoint.get(k) is not None}
    return ModelEntries(PANOSAMIC, None, state, recorded)  # the reference's own: the caller gives the architecture

