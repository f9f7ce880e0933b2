"""The reference's config files: fusion settings plus training settings in one JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from panosamic.config.attention import AttentionConfig, attention_dict
from panosamic.config.checks import ConfigError, coerce_config, read_json
from panosamic.config.forwarded import Forwarded
from panosamic.config.model import ModelConfig
from panosamic.config.reference_dict import read_reference_dict
from panosamic.config.training import LossConfig, LRSchedulerConfig, TrainingConfig
from panosamic.constants import CANVAS_SIZE
from panosamic.specs import canonical_modalities


@dataclass(frozen=True)
class PanoSAMicConfig:
    """A reference config file (``config/config_*.json``): the fusion settings of an architecture
    (``channel_attention``, ``spatial_attention``, ``dual_view_fusion``, ``basic_fusion``, and our
    ``canvas_size``) plus the :class:`TrainingConfig` (``loss``, ``optimizer``, ``lr_scheduler``).
    :meth:`model_config` completes it into a :class:`ModelConfig`.
    """

    channel_attention: AttentionConfig | None = field(default_factory=lambda: AttentionConfig(aggregation="max"))
    spatial_attention: AttentionConfig | None = field(default_factory=lambda: AttentionConfig(aggregation="none"))
    dual_view_fusion: bool = True
    basic_fusion: Literal["concat", "add", "mult"] | None = None
    canvas_size: int = CANVAS_SIZE
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        self.model_config(vit="vit_tiny", modalities=("image",), num_classes=1)  # checks the architecture part

    # The reference file's top-level training keys, read from ``training`` (no annotations: not fields).
    loss = Forwarded[LossConfig]("training")
    optimizer = Forwarded[str]("training")
    lr_scheduler = Forwarded[LRSchedulerConfig]("training")

    def model_config(self, *, vit: str, modalities: Sequence[str] | str, num_classes: int, **use: Any) -> ModelConfig:
        """The :class:`ModelConfig` of this architecture for a ViT, modality set and class count."""
        return ModelConfig(
            vit=vit,
            modalities=canonical_modalities(modalities),
            num_classes=num_classes,
            channel_attention=self.channel_attention,
            spatial_attention=self.spatial_attention,
            dual_view=self.dual_view_fusion,
            basic_fusion=self.basic_fusion,
            canvas_size=self.canvas_size,
            **use,
        )

    def replace(self, **changes: Any) -> PanoSAMicConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config") -> PanoSAMicConfig:
        """Build from a reference-style dict (comment keys ignored, unknown keys refused)."""
        return cls(**read_reference_dict(d, where))

    def to_dict(self) -> dict[str, Any]:
        """Reference-style dict (the inverse of :meth:`from_dict`)."""
        return {
            "channel_attention": attention_dict(self.channel_attention),
            "spatial_attention": attention_dict(self.spatial_attention),
            "loss": self.loss.to_dict(),
            "optimizer": self.optimizer,
            "lr_scheduler": dataclasses.asdict(self.lr_scheduler),
            "dual_view_fusion": self.dual_view_fusion,
            "basic_fusion": self.basic_fusion,
            "canvas_size": self.canvas_size,
        }

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> PanoSAMicConfig:
        try:
            return cls.from_dict(read_json(path))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def to_json(self, path: str | os.PathLike) -> None:
        from panosamic.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def coerce(cls, config: PanoSAMicConfig | Mapping[str, Any] | str | os.PathLike) -> PanoSAMicConfig:
        """Accept a config object, a dict or a JSON path."""
        return coerce_config(cls, config)

