"""The mean teacher: an exponential moving average (EMA) of the student's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ema_update", "make_teacher"]


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` in eval mode (the teacher is never trained by gradients)."""
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student`` for every floating-point parameter and
    buffer the student trains or updates (frozen parameters are equal and left alone); integer buffers
    are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay!r}")
    s_params = dict(student.named_parameters())
    for name, t in teacher.named_parameters():
        s = s_params.get(name)
        if s is None:
            raise ValueError(f"teacher parameter {name!r} has no counterpart in the student")
        if s.requires_grad:
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    s_buffers = dict(student.named_buffers())
    for name, t in teacher.named_buffers():
        s = s_buffers.get(name)
        if s is None:
            continue
        if t.dtype.is_floating_point:
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        else:
            t.copy_(s)
