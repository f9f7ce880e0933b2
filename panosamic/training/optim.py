"""Optimiser and learning-rate schedule of the reference (spec §7.1).

``Ranger21`` (pytorch-optimizer) carries its own schedule: linear warm-up over
``int(warm_up_ratio x iterations per epoch)`` steps, flat at ``max_lr``, linear warm-down over
the last ``int(wind_down_ratio x iterations per epoch)`` steps to ``max_lr x 1e-4``. Any other
optimizer name gives ``RAdam(lr=1)`` with decoupled weight decay and a ``LambdaLR`` returning
absolute learning rates: ``start_lr -> max_lr`` over the warm-up, flat (or linear to
``intermediate_lr``) until the wind-down, then linear to 0 at the last step. ``max_lr`` is scaled
by ``num_gpus x batch_size / 4`` (nominal batch 4) in both cases. Both are resumable through
their ``state_dict``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from panosamic.config import TrainingConfig

__all__ = ["LRPlan", "build_adamw", "build_optimizer", "current_lr", "lr_plan", "scaled_max_lr"]

#: Batch size the configs' learning rates are given for (linear scaling reference).
NOMINAL_BATCH = 4
#: Ranger21 warm-down floor, as a fraction of max_lr.
WARM_DOWN_MIN_LR_FACTOR = 1e-4
#: Decoupled weight decay of the RAdam path (Ranger21's default, for the same regularisation).
RADAM_WEIGHT_DECAY = 1e-4


def scaled_max_lr(max_lr: float, num_gpus: int, batch_size: int) -> float:
    """``max_lr x num_gpus x batch_size / 4`` (the reference's linear scaling)."""
    if num_gpus < 1 or batch_size < 1:
        raise ValueError(f"num_gpus and batch_size must be >= 1, got {num_gpus}, {batch_size}")
    return max_lr * (num_gpus * batch_size / NOMINAL_BATCH)


@dataclass(frozen=True)
class LRPlan:
    """Numbers that define the schedule (all in optimiser steps)."""

    max_lr: float
    start_lr: float
    intermediate_lr: float | None
    iters_per_epoch: int
    epochs: int
    warm_up: int
    warm_down: int
    warm_down_min_lr: float

    @property
    def num_iterations(self) -> int:
        return self.iters_per_epoch * self.epochs


def lr_plan(config: TrainingConfig, iters_per_epoch: int, epochs: int, num_gpus: int, batch_size: int) -> LRPlan:
    if iters_per_epoch < 1:
        raise ValueError(f"an epoch needs at least one iteration, got {iters_per_epoch} (dataset too small?)")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    sched = config.lr_scheduler
    max_lr = scaled_max_lr(sched.max_lr, num_gpus, batch_size)
    return LRPlan(
        max_lr=max_lr,
        start_lr=sched.start_lr,
        intermediate_lr=sched.intermediate_lr,
        iters_per_epoch=iters_per_epoch,
        epochs=epochs,
        warm_up=int(sched.warm_up_ratio * iters_per_epoch),
        warm_down=int(sched.wind_down_ratio * iters_per_epoch),
        warm_down_min_lr=max_lr * WARM_DOWN_MIN_LR_FACTOR,
    )


def _lambda_lr(plan: LRPlan):
    """Absolute LR at scheduler step ``i`` (0-based: the LR used by the ``i+1``-th optimiser step)."""
    total = plan.num_iterations
    up = min(plan.warm_up, total)
    down_start = max(up, total - plan.warm_down)
    hold_end_lr = plan.max_lr if plan.intermediate_lr is None else plan.intermediate_lr

    def lr(i: int) -> float:
        if i < up:
            return plan.start_lr + (plan.max_lr - plan.start_lr) * i / up
        if i < down_start:
            span = max(down_start - up, 1)
            return plan.max_lr + (hold_end_lr - plan.max_lr) * (i - up) / span
        span = max(total - down_start, 1)
        return max(0.0, hold_end_lr * (1.0 - (i - down_start) / span))

    return lr


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainingConfig, plan: LRPlan
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Ranger21 (scheduler ``None``) or RAdam + LambdaLR, from the config's ``optimizer`` name."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to optimise")
    if config.optimizer == "Ranger21":
        from pytorch_optimizer import Ranger21  # imported only here: it costs seconds of start-up

        opt = Ranger21(
            params,
            num_iterations=plan.num_iterations,
            lr=plan.max_lr,
            num_warm_up_iterations=plan.warm_up,
            num_warm_down_iterations=plan.warm_down,
            warm_down_min_lr=plan.warm_down_min_lr,
        )
        return opt, None
    opt = torch.optim.RAdam(params, lr=1.0, weight_decay=RADAM_WEIGHT_DECAY, decoupled_weight_decay=True)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lambda_lr(plan))


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The LR the last step used (Ranger21 keeps its scheduled LR outside the param groups)."""
    ranger = sys.modules.get("pytorch_optimizer")  # not imported: no optimizer can be a Ranger21
    if ranger is not None and isinstance(optimizer, ranger.Ranger21):
        return float(optimizer.current_lr)
    return float(optimizer.param_groups[0]["lr"])


def build_adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, warmup_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with a linear warm-up over ``warmup_steps`` steps, then flat (fine-tuning, e.g. ``adapt``)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to optimise")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = max(warmup_steps, 1)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm))
