"""The public model API: :class:`PanoSAMic`, the registry of variants and the factory.

``create_model(name_or_config, pretrained=False)`` builds a variant; ``load_model(checkpoint)``
loads any checkpoint (variant name, Hub id + subfolder, local folder, .safetensors, training
.pth or run folder, compact student, its .onnx) and returns a :class:`SegmentationModel`;
``list_models()`` names the published variants, ``register_kind`` adds a kind of model to
``load_model`` (by config.json's ``"architecture"``).
"""

from panosamic.model.checkpoints import find_checkpoint
from panosamic.model.factory import create_model, resolve_config
from panosamic.model.kinds import list_kinds, register_kind
from panosamic.model.loading import load_model
from panosamic.model.panosamic import PanoSAMic
from panosamic.model.registry import (
    VARIANTS,
    Reported,
    Variant,
    find_variant,
    get_reported,
    get_variant,
    list_models,
)
from panosamic.modeling.protocol import SegmentationModel

__all__ = [
    "VARIANTS",
    "PanoSAMic",
    "Reported",
    "SegmentationModel",
    "Variant",
    "create_model",
    "find_checkpoint",
    "find_variant",
    "get_reported",
    "get_variant",
    "list_kinds",
    "list_models",
    "load_model",
    "register_kind",
    "resolve_config",
]
