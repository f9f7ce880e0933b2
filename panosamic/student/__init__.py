"""Compact students for deployment: a small timm CNN with wrap-around padding, ONNX export.

Names are imported on first use, so that the ONNX runtime path (:mod:`panosamic.student.onnx`)
imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ARCHITECTURE": "panosamic.student.config",
    "STUDENT_BACKBONES": "panosamic.student.config",
    "StudentConfig": "panosamic.student.config",
    "is_student_config": "panosamic.student.config",
    "PanoStudent": "panosamic.student.model",
}

__all__ = ["ARCHITECTURE", "STUDENT_BACKBONES", "PanoStudent", "StudentConfig", "is_student_config"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'panosamic.student' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
