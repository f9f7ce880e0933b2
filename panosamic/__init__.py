"""PanoSAMic: semantic segmentation of 360° equirectangular panoramas with a frozen SAM encoder.

``panosamic.list_models()``, ``panosamic.create_model(name_or_config, pretrained=False)`` and
``panosamic.load_model(checkpoint)`` are the entry points (imported on first use, so that
``import panosamic`` and the command line's ``--help`` stay light).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_MODEL_API = ("create_model", "list_models", "load_model", "PanoSAMic", "ModelConfig")

__all__ = ["__version__", *_MODEL_API]


def __getattr__(name: str) -> Any:
    if name == "ModelConfig":
        from panosamic.config import ModelConfig

        return ModelConfig
    if name in _MODEL_API:
        import panosamic.model as model_api

        return getattr(model_api, name)
    raise AttributeError(f"module 'panosamic' has no attribute {name!r}")
