"""Distillation of a PanoSAMic teacher into a compact student (see :mod:`panosamic.student`).

Names are imported on first use, so ``panosamic.distill.cli`` (``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "distill": "panosamic.distill.api",
    "DistillLoss": "panosamic.distill.losses",
    "DistillLossConfig": "panosamic.distill.losses",
    "DistillSettings": "panosamic.distill.trainer",
    "Distiller": "panosamic.distill.trainer",
    "TeacherCache": "panosamic.distill.cache",
}
__all__ = ["DistillLoss", "DistillLossConfig", "DistillSettings", "Distiller", "TeacherCache", "distill"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'panosamic.distill' has no attribute {name!r}")
