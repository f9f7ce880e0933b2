"""Distillation losses: temperature-softened KL to the teacher, ground truth where it exists, SAM boundaries.

``total = kd_weight * T^2 * KL(teacher_T || student_T)``
``      + ce_weight * CE(student, labels)``            (pixels labelled -1 are ignored)
``      + boundary_weight * T^2 * KL on the teacher's SAM mask boundaries`` (GoodSAM's idea: the
student matches the teacher hardest where its instance masks say an object ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.constants import IGNORE_INDEX
from panosamic.distill.settings import DistillLossConfig

__all__ = ["DistillLoss", "DistillLossConfig", "DistillLossOutput", "boundary_map"]


@dataclass
class DistillLossOutput:
    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)


def _pixel_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """Per-pixel KL(softmax(teacher / t) || softmax(student / t)): (B, K, H, W) x 2 -> (B, H, W)."""
    log_s = F.log_softmax(student.float() / t, dim=1)
    log_t = F.log_softmax(teacher.float() / t, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


class DistillLoss(nn.Module):
    """See the module docstring; ``labels`` and ``boundaries`` are optional per call."""

    def __init__(self, config: DistillLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or DistillLossConfig()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None,
                boundaries: torch.Tensor | None = None) -> DistillLossOutput:
        c = self.config
        if student.shape != teacher.shape:
            raise ValueError(f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} differ")
        t2 = c.temperature**2
        kl = _pixel_kl(student, teacher, c.temperature)
        total = student.new_zeros((), dtype=torch.float32)
        terms: dict[str, float] = {}
        if c.kd_weight:
            kd = kl.mean() * t2
            total = total + c.kd_weight * kd
            terms["kd"] = float(kd.detach())
        if c.ce_weight and labels is not None and bool((labels != IGNORE_INDEX).any()):
            ce = F.cross_entropy(student.float(), labels.long(), ignore_index=IGNORE_INDEX)
            total = total + c.ce_weight * ce
            terms["ce"] = float(ce.detach())
        if c.boundary_weight and boundaries is not None and bool(boundaries.any()):
            b = boundaries.to(kl.dtype)
            bd = (kl * b).sum() / b.sum() * t2
            total = total + c.boundary_weight * bd
            terms["boundary"] = float(bd.detach())
        return DistillLossOutput(total, terms)


def boundary_map(instance_masks: list[dict], size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: pixels on the edge of any SAM mask (``segmentation`` (H, W) bool), wrapping in longitude."""
    edges = torch.zeros(size, dtype=torch.bool)
    for m in instance_masks:
        seg = torch.as_tensor(m["segmentation"]).bool()
        if tuple(seg.shape) != tuple(size):
            seg = F.interpolate(seg[None, None].float(), size=size, mode="nearest")[0, 0].bool()
        x = seg[None, None].float()
        x = F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1), mode="replicate")
        eroded = -F.max_pool2d(-x, 3, stride=1)[0, 0]
        edges |= seg & (eroded < 0.5)
    return edges
