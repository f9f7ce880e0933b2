"""``distill(...)``: the Python API of ``panosamic distill``."""

from __future__ import annotations

from typing import Any

import torch

from panosamic.distill.settings import DistillSettings
from panosamic.distill.trainer import Distiller, DistillResult

__all__ = ["distill", "distill_worker"]


def distill_worker(settings: DistillSettings, teacher: torch.nn.Module | None = None) -> DistillResult | None:
    """One distillation process (rank and world size from torchrun's environment, if any)."""
    from panosamic.distributed import cleanup_distributed, init_distributed

    ctx = init_distributed(settings.device)
    try:
        result = Distiller(settings, ctx, teacher=teacher).fit()
    finally:
        cleanup_distributed()
    return result if ctx.is_main else None


def distill(teacher: str | torch.nn.Module, *, panoramas: Any = (), dataset: str | None = None,
            dataset_path: str | None = None, output: str = DistillSettings.output, **settings: Any) -> DistillResult:
    """Distil ``teacher`` (a model, or any checkpoint ``load_model`` accepts) into a student.

    ``panoramas``: unlabelled files/folders; ``dataset`` + ``dataset_path``: a prepared dataset
    (labels used with ``ce_weight > 0``, its test split validates). Other keywords are
    :class:`DistillSettings` fields (``backbone``, ``epochs``, ``batch_size``, ``temperature``, ...).
    Returns the run directory, the student folder and the best validation mIoU.
    """
    model = teacher if isinstance(teacher, torch.nn.Module) else None
    name = None if model is not None else str(teacher)
    s = DistillSettings(teacher=name, panoramas=tuple(panoramas), dataset=dataset, dataset_path=dataset_path,
                        output=str(output), **settings)
    result = distill_worker(s, teacher=model)
    assert result is not None
    return result
