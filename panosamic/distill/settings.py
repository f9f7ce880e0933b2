"""What a distillation run is told (``panosamic distill`` flags, :func:`~panosamic.distill.api.distill`'s
keywords) and the loss's weights; no torch import here (the command line reads its defaults here)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from panosamic.config.checks import check_counts
from panosamic.training.settings import LoopSettings

__all__ = ["DistillLossConfig", "DistillSettings"]


@dataclass(frozen=True)
class DistillLossConfig:
    """The terms of :class:`~panosamic.distill.losses.DistillLoss`: temperature and weights."""

    temperature: float = 2.0
    kd_weight: float = 1.0
    ce_weight: float = 0.0
    boundary_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        for name in ("kd_weight", "ce_weight", "boundary_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if self.kd_weight == self.ce_weight == self.boundary_weight == 0:
            raise ValueError("distillation loss: kd_weight, ce_weight and boundary_weight are all 0")


@dataclass(frozen=True)
class DistillSettings(LoopSettings):
    """Everything a distillation run is told (the CLI flags). The run settings (``epochs``,
    ``batch_size``, ``seed``, ``workers``, ``max_steps``, ``limit_batches``, ``eval_every``,
    ``log_every``, ``keep_last``, ``progress``) are the training engine's :class:`LoopSettings`;
    ``temperature`` and the weights are :class:`DistillLossConfig`'s (its defaults)."""

    epochs: int = 10
    batch_size: int = 4
    log_every: int = 10
    output: str = "experiments"
    teacher: str | None = None
    teacher_subfolder: str | None = None
    teacher_revision: str | None = None
    teacher_options: Mapping[str, Any] | None = None  # an open-vocabulary teacher's classes, views, ... (load_model)
    sam_weights: str | None = None
    panoramas: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_path: str | None = None
    fold: int = 1
    use_labels: bool = True
    validate: bool = True
    backbone: str = "mobilenetv3_large_100"
    pretrained_backbone: bool = False
    decoder_channels: int = 64
    native_size: tuple[int, int] | None = None
    cache_dir: str | None = None
    cache_stride: int = 4
    max_lr: float = 2e-3
    optimizer: str = "RAdam"
    temperature: float = DistillLossConfig.temperature
    kd_weight: float = DistillLossConfig.kd_weight
    ce_weight: float = DistillLossConfig.ce_weight
    boundary_weight: float = DistillLossConfig.boundary_weight
    resume: str | None = None
    device: str | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "panoramas", tuple(str(p) for p in self.panoramas))
        if self.native_size is not None:
            object.__setattr__(self, "native_size", tuple(int(v) for v in self.native_size))
        if self.resume not in (None, "last", "best"):
            raise ValueError(f"resume must be 'last' or 'best', got {self.resume!r}")
        super().__post_init__()
        check_counts(self, ("cache_stride", "decoder_channels"))
        if not (isinstance(self.max_lr, (int, float)) and math.isfinite(self.max_lr) and self.max_lr > 0):
            raise ValueError(f"max_lr must be a finite number > 0, got {self.max_lr!r}")
        if not self.panoramas and self.dataset_path is None:
            raise ValueError("nothing to distil on: give panorama folders/files and/or --dataset-path")
        if (self.dataset_path is None) != (self.dataset is None):
            raise ValueError("--dataset and --dataset-path go together")
        self.loss_config()  # its own checks

    def loss_config(self) -> DistillLossConfig:
        return DistillLossConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DistillLossConfig)})
