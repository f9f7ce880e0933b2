"""TrainingConfig: losses, optimizer and learning-rate schedule."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panosamic.config.checks import ConfigError, as_choice, as_number, field_names, strip_keys

OPTIMIZERS = ("Ranger21", "RAdam")
_LOSS_KEYS = {"CrossEntropyLoss": "cross_entropy", "FocalLoss": "focal", "DiceLoss": "dice", "JaccardLoss": "jaccard"}


@dataclass(frozen=True)
class ScheduledLossConfig:
    """CE <-> Jaccard/Dice hand-over, as fractions of all training steps."""

    transition_start_ratio: float = 0.5
    transition_finish_ratio: float = 0.9

    def __post_init__(self) -> None:
        a = as_number("loss.ScheduledLoss.transition_start_ratio", self.transition_start_ratio, maximum=1.0)
        b = as_number("loss.ScheduledLoss.transition_finish_ratio", self.transition_finish_ratio, maximum=1.0)
        if not a < b:
            raise ConfigError(f"loss.ScheduledLoss: needs transition_start_ratio < transition_finish_ratio, got {a}, {b}")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the losses (``None``: not used), in the reference's fixed order."""

    cross_entropy: float | None = None
    focal: float | None = None
    dice: float | None = None
    jaccard: float | None = 1.0
    scheduled: ScheduledLossConfig | None = None
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for key, name in _LOSS_KEYS.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_number(f"loss.{key}", value, strict=True))
        object.__setattr__(self, "label_smoothing", as_number("loss.label_smoothing", self.label_smoothing, maximum=1.0))
        if all(getattr(self, k) is None for k in _LOSS_KEYS.values()):
            raise ConfigError(f"loss: at least one of {sorted(_LOSS_KEYS)} needs a weight")
        if self.scheduled is not None:
            others = [k for k in ("dice", "jaccard") if getattr(self, k) is not None]
            if self.cross_entropy is None or len(others) != 1 or self.focal is not None:
                raise ConfigError("loss.ScheduledLoss: needs CrossEntropyLoss plus exactly one of DiceLoss or JaccardLoss")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossConfig:
        d = strip_keys("loss", d, set(_LOSS_KEYS) | {"ScheduledLoss", "label_smoothing"})
        kwargs: dict[str, Any] = {v: d.get(k) for k, v in _LOSS_KEYS.items()}
        if d.get("ScheduledLoss") is not None:
            sched = strip_keys("loss.ScheduledLoss", d["ScheduledLoss"], field_names(ScheduledLossConfig))
            kwargs["scheduled"] = ScheduledLossConfig(**sched)
        kwargs["label_smoothing"] = d.get("label_smoothing", 0.0) or 0.0
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, v) for k, v in _LOSS_KEYS.items()}
        if self.scheduled is not None:
            out["ScheduledLoss"] = dataclasses.asdict(self.scheduled)
        if self.label_smoothing:
            out["label_smoothing"] = self.label_smoothing
        return out


@dataclass(frozen=True)
class LRSchedulerConfig:
    """Learning-rate schedule; ratios are multiples of one epoch's iterations."""

    start_lr: float = 1e-4
    max_lr: float = 1e-3
    intermediate_lr: float | None = None
    warm_up_ratio: float = 0.1
    wind_down_ratio: float = 0.7

    def __post_init__(self) -> None:
        for name in ("start_lr", "max_lr", "intermediate_lr"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_number(f"lr_scheduler.{name}", value, strict=True))
        for name in ("warm_up_ratio", "wind_down_ratio"):
            object.__setattr__(self, name, as_number(f"lr_scheduler.{name}", getattr(self, name)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRSchedulerConfig:
        return cls(**strip_keys("lr_scheduler", d, field_names(cls)))


@dataclass(frozen=True)
class TrainingConfig:
    """How the trainable parts are trained: losses, optimizer and learning-rate schedule."""

    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: str = "Ranger21"
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)

    def __post_init__(self) -> None:
        as_choice("optimizer", self.optimizer, OPTIMIZERS)
