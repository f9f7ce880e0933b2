"""Training losses of PanoSAMic: weighted CE, focal, dice, multilabel Jaccard, and their schedule.

All losses take logits ``(B, K, H, W)`` at input resolution and labels ``(B, H, W)`` with
:data:`~panosamic.constants.IGNORE_INDEX` for unlabelled pixels. The combination follows the
reference (spec §7.2): the configured losses are taken in the fixed order CE, focal, dice,
Jaccard, each times its config weight; the first is multiplied by ``w1`` and every later one
by ``w2`` (both 1 unless a :class:`LossSchedule` hands over between CE and Jaccard/Dice).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from panosamic.config import LossConfig, ScheduledLossConfig
from panosamic.constants import IGNORE_INDEX

__all__ = [
    "FocalLoss",
    "LossOutput",
    "LossSchedule",
    "MultilabelJaccardLoss",
    "PanoSAMicLoss",
    "class_weights_from_counts",
]

#: Focusing exponent of the focal loss.
FOCAL_GAMMA = 2.0
#: Epsilon of the Jaccard / dice denominators and of the loss schedule.
LOSS_EPS = 1e-6


# ---------------------------------------------------------------------------- class weights
def class_weights_from_counts(counts: np.ndarray | torch.Tensor, class_names: tuple[str, ...] = ()) -> torch.Tensor:
    """Inverse-frequency weights ``total labelled pixels / class pixels`` (unnormalised).

    A class with no pixel in the training split gets weight 0 (it cannot be learnt from the
    split anyway; an infinite weight would make the loss undefined); a warning names it.
    The counts come from the training dataset's ``class_pixel_counts()``, which caches them per
    fold and pixel set in the dataset's ``cache_class_weights.json``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise ValueError(f"class pixel counts must be a non-empty 1-D array of counts >= 0, got {counts!r}")
    total = int(counts.sum())
    if total == 0:
        raise ValueError("the training split has no labelled pixel: cannot compute class weights")
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        names = [class_names[i] if i < len(class_names) else str(i) for i in absent]
        warnings.warn(f"classes {names} have no labelled pixel in the training split: class weight 0", stacklevel=2)
    weights = np.zeros(counts.size, dtype=np.float64)
    present = counts > 0
    weights[present] = total / counts[present]
    return torch.tensor(weights, dtype=torch.float32)


# ---------------------------------------------------------------------------- single losses
class MultilabelJaccardLoss(nn.Module):
    """The reference's Jaccard loss: per-class sigmoid IoU over the batch, mean over all K classes.

    Logits at ignored pixels are multiplied by 0 (sigmoid 0.5 for every class: the reference's
    quirk, kept — they add 0.5 per class to the predicted mass) and their one-hot target is 0;
    classes absent from the batch contribute 0 but still count in the mean over K.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, eps: float = LOSS_EPS):
        super().__init__()
        from pytorch_optimizer.loss.jaccard import JaccardLoss  # importing pytorch_optimizer costs seconds

        self.ignore_index = ignore_index
        self.jaccard = JaccardLoss(mode="multilabel", from_logits=True, log_loss=False, eps=eps)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != self.ignore_index
        k = logits.shape[1]
        target = F.one_hot(torch.where(valid, labels, 0), k).permute(0, 3, 1, 2)
        target = target * valid.unsqueeze(1)
        logits = logits * valid.unsqueeze(1).to(logits.dtype)
        return self.jaccard(logits, target)


class FocalLoss(nn.Module):
    """Multiclass focal loss ``(1 - p_t)^gamma * CE`` with optional class weights (alpha), mean over pixels."""

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = FOCAL_GAMMA, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="none")
        valid = labels != self.ignore_index
        pt = torch.exp(-ce)
        loss = (1.0 - pt) ** self.gamma * ce
        if self.weight is not None:
            loss = loss * self.weight.to(loss.dtype)[torch.where(valid, labels, 0)]
        n = valid.sum()
        return (loss * valid).sum() / n.clamp_min(1)


# ---------------------------------------------------------------------------- schedule
class LossSchedule:
    """The reference's ``ScheduledLoss`` weights ``(w1, w2)`` at global step ``t`` (1-based).

    With ``T`` total steps, ``s = T * start_ratio``, ``f = T * finish_ratio``, ``k = (1 - eps)/(f - s)``:
    ``t1 = clamp(1 - k t, eps, 1)``, ``t2 = 1 - cos(min(pi/2, max(0, pi (t - s) / (2 (f - s)))))``,
    ``w = min(1, t1 + t2)``, ``w1 = w`` (CE), ``w2 = 1 - w`` (Jaccard/Dice). So: pure CE at the start,
    linear hand-over to Jaccard by ``t = (1 - eps)/k`` (0.4 T for 0.5/0.9), pure Jaccard until ``s``,
    cosine hand-back to CE by ``f``, CE only afterwards.
    """

    def __init__(self, total_steps: int, config: ScheduledLossConfig, eps: float = LOSS_EPS):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps = int(total_steps)
        self.eps = eps
        self.start = total_steps * config.transition_start_ratio
        self.finish = total_steps * config.transition_finish_ratio

    def weights(self, step: int) -> tuple[float, float]:
        s, f, eps = self.start, self.finish, self.eps
        k = (1.0 - eps) / (f - s)
        t1 = min(1.0, max(eps, 1.0 - k * step))
        t2 = 1.0 - math.cos(min(math.pi / 2, max(0.0, math.pi * (step - s) / (2 * (f - s)))))
        w = min(1.0, t1 + t2)
        return w, 1.0 - w


# ---------------------------------------------------------------------------- combination
@dataclass
class LossOutput:
    """The total loss and its weighted terms (detached floats, for logging)."""

    total: torch.Tensor
    terms: dict[str, float]
    w1: float
    w2: float


class PanoSAMicLoss(nn.Module):
    """Weighted sum of the configured losses in the fixed order CE, focal, dice, Jaccard.

    ``class_weights`` are needed when CE or focal is configured. ``total_steps`` is needed with a
    ``ScheduledLoss``. ``forward(logits, labels, step)`` uses the schedule at ``step`` (1-based
    global step); with ``step=None`` (validation) the last weights are reused, as in the reference.
    """

    ORDER = ("cross_entropy", "focal", "dice", "jaccard")

    def __init__(
        self,
        config: LossConfig,
        num_classes: int,
        class_weights: torch.Tensor | None = None,
        total_steps: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        if not isinstance(config, LossConfig):
            raise TypeError(f"config must be a LossConfig, got {type(config).__name__}")
        self.config = config
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        uses_weights = config.cross_entropy is not None or config.focal is not None
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (num_classes,):
                raise ValueError(f"class_weights must have shape ({num_classes},), got {tuple(class_weights.shape)}")
        elif uses_weights:
            raise ValueError("CrossEntropyLoss / FocalLoss need class weights (inverse class frequencies)")
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.focal = FocalLoss(class_weights, ignore_index=ignore_index) if config.focal is not None else None
        self.dice = None
        if config.dice is not None:
            from pytorch_optimizer.loss.dice import DiceLoss

            self.dice = DiceLoss(mode="multiclass", from_logits=True, ignore_index=ignore_index, eps=LOSS_EPS)
        self.jaccard = MultilabelJaccardLoss(ignore_index) if config.jaccard is not None else None
        self.schedule: LossSchedule | None = None
        if config.scheduled is not None:
            if total_steps is None:
                raise ValueError("ScheduledLoss needs total_steps (epochs x iterations per epoch)")
            self.schedule = LossSchedule(total_steps, config.scheduled)
        self.last_weights: tuple[float, float] = (1.0, 1.0)

    def active(self) -> list[str]:
        return [name for name in self.ORDER if getattr(self.config, name) is not None]

    def _term(self, name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if name == "cross_entropy":
            return F.cross_entropy(
                logits,
                labels,
                weight=self.class_weights.to(logits.dtype),
                ignore_index=self.ignore_index,
                label_smoothing=self.config.label_smoothing,
            )
        module = getattr(self, name)
        return module(logits, labels)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, step: int | None = None) -> LossOutput:
        if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"expected logits (B, K, H, W) and labels (B, H, W), got {tuple(logits.shape)}, "
                             f"{tuple(labels.shape)}")
        if logits.shape[1] != self.num_classes or logits.shape[2:] != labels.shape[1:]:
            raise ValueError(f"logits {tuple(logits.shape)} do not match {self.num_classes} classes and labels "
                             f"{tuple(labels.shape)}")
        if self.schedule is not None and step is not None:
            self.last_weights = self.schedule.weights(step)
        w1, w2 = self.last_weights if self.schedule is not None else (1.0, 1.0)
        logits = logits.float()  # losses in fp32 also under bf16 autocast
        total = logits.new_zeros(())
        terms: dict[str, float] = {}
        for i, name in enumerate(self.active()):
            w = getattr(self.config, name) * (w1 if i == 0 else w2)
            if w == 0.0:
                terms[name] = 0.0
                continue
            value = self._term(name, logits, labels) * w
            terms[name] = float(value.detach())
            total = total + value
        return LossOutput(total=total, terms=terms, w1=w1, w2=w2)

    def state_dict_extra(self) -> dict[str, Any]:
        return {"last_weights": list(self.last_weights)}

    def load_state_dict_extra(self, state: dict[str, Any]) -> None:
        if state and "last_weights" in state:
            self.last_weights = tuple(float(x) for x in state["last_weights"])  # type: ignore[assignment]
