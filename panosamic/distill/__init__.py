"""Distillation of a PanoSAMic teacher into a compact student (see :mod:`panosamic.student`).

Names are imported on first use, so ``panosamic.distill.cli`` (``--help``) does not import torch.
"""

from __future__ import annotations

from panosamic.lazy import lazy_dir, lazy_getattr

_EXPORTS = {
    "panosamic.distill.api": ("distill",),
    "panosamic.distill.losses": ("DistillLoss",),
    "panosamic.distill.settings": ("DistillLossConfig", "DistillSettings"),
    "panosamic.distill.trainer": ("Distiller",),
    "panosamic.distill.cache": ("TeacherCache",),
}
__all__ = ["DistillLoss", "DistillLossConfig", "DistillSettings", "Distiller", "TeacherCache", "distill"]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
__dir__ = lazy_dir(__name__)
