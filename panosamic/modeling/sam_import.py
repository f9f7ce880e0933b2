"""segment-anything's building blocks without its package's start-up cost.

``import segment_anything.modeling`` first runs ``segment_anything/__init__.py``, which imports the
predictor and the automatic mask generator and through them torchvision, ``torch._dynamo`` and sympy:
several seconds of CPU that no PanoSAMic command needs. :func:`sam_module` imports a sub-module with
the package's ``__init__`` deferred: the package object is registered as it is, and the rest of
``segment_anything`` (``SamPredictor``, ``sam_model_registry``, ...) is loaded on its first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

_PACKAGE = "segment_anything"


def _register_deferred_package() -> None:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {_PACKAGE!r}", name=_PACKAGE)
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:  # the package's own names: run its __init__ now, once
        if name.startswith("__"):
            raise AttributeError(name)
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[_PACKAGE] = package


def sam_module(name: str) -> ModuleType:
    """``segment_anything.<name>`` (e.g. ``"modeling"``, ``"utils.amg"``), imported without the
    package's ``__init__`` unless something else already ran it."""
    if _PACKAGE not in sys.modules:
        _register_deferred_package()
    return importlib.import_module(f"{_PACKAGE}.{name}")
