"""What a distillation run is told (``panosamic distill`` flags, :func:`~panosamic.distill.api.distill`'s
keywords) and the loss's weights; no torch import here (the command line reads its defaults here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from panosamic.training.settings import LoopSettings, bounded, check_bounds

__all__ = ["DistillLossConfig", "DistillSettings"]


@dataclass(frozen=True)
class DistillLossConfig:
    """The terms of :class:`~panosamic.distill.losses.DistillLoss`: temperature and weights."""

    temperature: float = bounded(2.0, above=0)
    kd_weight: float = bounded(1.0, minimum=0)
    ce_weight: float = bounded(0.0, minimum=0)
    boundary_weight: float = bounded(0.0, minimum=0)

    def __post_init__(self) -> None:
        check_bounds(self)
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
    fold: int = bounded(1, minimum=1, integer=True)
    use_labels: bool = True
    validate: bool = True
    backbone: str = "mobilenetv3_large_100"
    pretrained_backbone: bool = False
    decoder_channels: int = bounded(64, minimum=1, integer=True)
    native_size: tuple[int, int] | None = None
    cache_dir: str | None = None
    cache_stride: int = bounded(4, minimum=1, integer=True)
    max_lr: float = bounded(2e-3, above=0)
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
        super().__post_init__()  # the loop's settings and the ranges above
        if not self.panoramas and self.dataset_path is None:
            raise ValueError("nothing to distil on: give panorama folders/files and/or --dataset-path")
        if (self.dataset_path is None) != (self.dataset is None):
            raise ValueError("--dataset and --dataset-path go together")
        self.loss_config()  # its own checks

    def loss_config(self) -> DistillLossConfig:
        return DistillLossConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DistillLossConfig)})
