"""Compact students for deployment: a small timm CNN with wrap-around padding, ONNX export.

Names are imported on first use, so that the ONNX runtime path (:mod:`panosamic.student.onnx`)
imports no torch.
"""

from __future__ import annotations

from panosamic.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "panosamic.student.config": ("ARCHITECTURE", "STUDENT_BACKBONES", "StudentConfig", "is_student_config"),
    "panosamic.student.model": ("PanoStudent",),
}

__all__ = ["ARCHITECTURE", "STUDENT_BACKBONES", "PanoStudent", "StudentConfig", "is_student_config"]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)
