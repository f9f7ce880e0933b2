"""The public model API: :class:`PanoSAMic`, the registry of variants and the factory.

``create_model(name_or_config, pretrained=False)`` builds a variant; ``load_model(checkpoint)``
loads any checkpoint (variant name, Hub id + subfolder, local folder, .safetensors, training
.pth or run folder); ``list_models()`` names the published variants.
"""

from panosamic.model.factory import create_model, resolve_config
from panosamic.model.loading import find_checkpoint, load_model
from panosamic.model.panosamic import PanoSAMic
from panosamic.model.registry import VARIANTS, Reported, Variant, find_variant, get_reported, get_variant, list_models

__all__ = [
    "VARIANTS",
    "PanoSAMic",
    "Reported",
    "Variant",
    "create_model",
    "find_checkpoint",
    "find_variant",
    "get_reported",
    "get_variant",
    "list_models",
    "load_model",
    "resolve_config",
]
