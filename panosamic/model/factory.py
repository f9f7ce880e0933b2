"""``create_model``: a registered name or a config -> a model (timm-style)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from panosamic.config import ModelConfig
from panosamic.data.registry import get_dataset_info
from panosamic.model.loading import load_model
from panosamic.model.panosamic import PanoSAMic
from panosamic.model.registry import get_variant


def resolve_config(name_or_config: str | ModelConfig | Mapping[str, Any] | os.PathLike) -> ModelConfig:
    """A ModelConfig from a registered name, a ModelConfig, a config.json dict or its path."""
    if isinstance(name_or_config, ModelConfig):
        return name_or_config
    if isinstance(name_or_config, Mapping):
        return ModelConfig.from_dict(name_or_config, where="config")
    if isinstance(name_or_config, os.PathLike) or str(name_or_config).endswith(".json"):
        return ModelConfig.from_json(name_or_config)
    if isinstance(name_or_config, str):
        return get_variant(name_or_config).config
    raise TypeError(f"expected a model name, a ModelConfig or a config.json, got {type(name_or_config).__name__}")


def with_dataset_labels(config: ModelConfig) -> ModelConfig:
    """Fill missing class names / palette from the config's dataset (when its class count matches)."""
    if config.dataset is None or (config.class_names is not None and config.palette is not None):
        return config
    try:
        info = get_dataset_info(config.dataset)
    except ValueError:
        return config
    if info.num_classes != config.num_classes:
        return config
    palette = tuple(tuple(int(v) for v in row) for row in info.palette)
    return config.replace(class_names=config.class_names or info.class_names, palette=config.palette or palette)


def create_model(
    name_or_config: str | ModelConfig | Mapping[str, Any] | os.PathLike,
    *,
    pretrained: bool = False,
    semantic_only: bool | None = None,
    sam_weights: Any = None,
    device: str | torch.device = "cpu",
    **hub: Any,
) -> PanoSAMic:
    """Build a registered variant (see :func:`panosamic.list_models`) or any :class:`ModelConfig`.

    ``pretrained=False``: freshly initialised trainable parts, no SAM weights (works under
    ``with torch.device("meta"):``). ``pretrained=True``: the variant's Hub weights and Meta's
    SAM weights (``sam_weights``: a ``.pth``, its folder, a state dict or None to download).
    ``semantic_only``: None keeps the config's (True for registered names: logits only);
    ``hub``: ``revision``, ``cache_dir``, ``local_files_only``, ``token``.
    """
    config = with_dataset_labels(resolve_config(name_or_config))
    if semantic_only is not None:
        config = config.replace(semantic_only=bool(semantic_only))
    if not pretrained:
        return PanoSAMic(config)
    if not isinstance(name_or_config, str):
        raise ValueError("pretrained=True needs a registered name; load other checkpoints with panosamic.load_model")
    variant = get_variant(name_or_config)
    if not variant.pretrained:
        raise ValueError(f"{variant.name} has no published weights (it is a test architecture); use pretrained=False")
    return load_model(variant.name, sam_weights=sam_weights, device=device, semantic_only=config.semantic_only, **hub)
