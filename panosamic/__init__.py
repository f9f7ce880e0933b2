"""PanoSAMic: semantic segmentation of 360° equirectangular panoramas with a frozen SAM encoder.

``panosamic.list_models()``, ``panosamic.create_model(name_or_config, pretrained=False)``,
``panosamic.load_model(checkpoint)`` and ``panosamic.predict(model, "pano.jpg")`` are the entry points.
Every name of :data:`__all__` is imported on first use (``dir(panosamic)`` lists them), so that
``import panosamic`` and the command line's ``--help`` stay light (no torch).
"""

from __future__ import annotations

from panosamic.lazy import lazy_dir, lazy_getattr, lazy_names
from panosamic.version import __version__

#: Module -> the public names it defines (imported on first use).
_LAZY: dict[str, tuple[str, ...]] = {
    "panosamic.model": ("create_model", "list_models", "load_model", "PanoSAMic"),
    "panosamic.config": ("ModelConfig",),
    "panosamic.inference": ("predict", "predict_batch", "predict_dataset", "PredictionResult"),
}

__all__ = ["__version__", *lazy_names(_LAZY)]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)
