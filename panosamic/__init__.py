"""PanoSAMic: semantic segmentation of 360° equirectangular panoramas with a frozen SAM encoder.

``panosamic.list_models()``, ``panosamic.create_model(name_or_config, pretrained=False)``,
``panosamic.load_model(checkpoint)`` and ``panosamic.predict(model, "pano.jpg")`` are the entry points.
Every name of :data:`__all__` is imported on first use (``dir(panosamic)`` lists them), so that
``import panosamic`` and the command line's ``--help`` stay light (no torch).
"""

from __future__ import annotations

from panosamic.lazy import lazy_dir, lazy_getattr
from panosamic.version import __version__

#: Public name -> the module that defines it (imported on first use).
_LAZY: dict[str, str] = {
    "create_model": "panosamic.model",
    "list_models": "panosamic.model",
    "load_model": "panosamic.model",
    "PanoSAMic": "panosamic.model",
    "ModelConfig": "panosamic.config",
    "predict": "panosamic.inference",
    "predict_batch": "panosamic.inference",
    "predict_dataset": "panosamic.inference",
    "PredictionResult": "panosamic.inference",
}

__all__ = ["__version__", *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)
