"""The PanoSAMic configuration: one typed dataclass, read from and written to JSON.

The JSON layout is the reference's (``config/config_*.json``): ``channel_attention``,
``spatial_attention``, ``loss``, ``optimizer``, ``lr_scheduler``, ``dual_view_fusion``,
``basic_fusion``; comment keys such as ``"// note": "_comment"`` are ignored. We add
``canvas_size`` (default 1024), so that tests can build tiny models.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from panosamic.constants import CANVAS_SIZE, PATCH_SIZE

Aggregation = Literal["none", "mean", "max"]
_AGGREGATIONS = ("none", "mean", "max")
_BASIC_FUSIONS = ("concat", "add", "mult")
_LOSS_KEYS = {
    "CrossEntropyLoss": "cross_entropy",
    "FocalLoss": "focal",
    "DiceLoss": "dice",
    "JaccardLoss": "jaccard",
}


def _is_comment(key: str) -> bool:
    return key.startswith("//") or key.startswith("_comment")


def _strip_comments(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not _is_comment(k)}


def _check_fields(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in {where}; expected some of {sorted(allowed)}")


@dataclass(frozen=True)
class AttentionConfig:
    """One attention branch of an MCBAM fusion block (channel or spatial).

    ``moving_attention``: compute the attention in sliding ``window_size`` windows with
    ``stride`` (MCBAM) instead of once over the whole map (plain CBAM).
    ``aggregation``: how overlapping windows are merged ("none": sum of logits then
    sigmoid; "mean": average of sigmoids; "max": sigmoid(15 (sum of sigmoids - 0.5))).
    ``kernel_size`` is used by the spatial branch, ``bias`` by the channel MLP.
    """

    moving_attention: bool = True
    window_size: int = 8
    stride: int = 4
    aggregation: Aggregation = "none"
    kernel_size: int = 5
    bias: bool = False
    efficient_attention: bool = False
    gamma: int = 2
    b: int = 1

    def __post_init__(self) -> None:
        if self.aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {self.aggregation!r}")
        for name in ("window_size", "stride", "kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "attention") -> AttentionConfig:
        d = _strip_comments(d)
        _check_fields(where, d, {f.name for f in dataclasses.fields(cls)})
        return cls(**d)


@dataclass(frozen=True)
class ScheduledLossConfig:
    """CE <-> Jaccard/Dice hand-over, as fractions of all training steps."""

    transition_start_ratio: float = 0.5
    transition_finish_ratio: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.transition_start_ratio < self.transition_finish_ratio <= 1.0:
            raise ValueError(
                "ScheduledLoss needs 0 <= transition_start_ratio < transition_finish_ratio <= 1, got "
                f"{self.transition_start_ratio}, {self.transition_finish_ratio}"
            )


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
        if all(getattr(self, k) is None for k in _LOSS_KEYS.values()):
            raise ValueError(f"loss: at least one of {sorted(_LOSS_KEYS)} needs a weight")
        if self.scheduled is not None:
            others = [k for k in ("dice", "jaccard") if getattr(self, k) is not None]
            if self.cross_entropy is None or len(others) != 1 or self.focal is not None:
                raise ValueError(
                    "ScheduledLoss needs CrossEntropyLoss plus exactly one of DiceLoss or JaccardLoss"
                )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossConfig:
        d = _strip_comments(d)
        _check_fields("loss", d, set(_LOSS_KEYS) | {"ScheduledLoss", "label_smoothing"})
        kwargs: dict[str, Any] = {v: d.get(k) for k, v in _LOSS_KEYS.items()}
        kwargs = {k: (None if v is None else float(v)) for k, v in kwargs.items()}
        if d.get("ScheduledLoss") is not None:
            sched = _strip_comments(d["ScheduledLoss"])
            _check_fields("loss.ScheduledLoss", sched, {f.name for f in dataclasses.fields(ScheduledLossConfig)})
            kwargs["scheduled"] = ScheduledLossConfig(**sched)
        kwargs["label_smoothing"] = float(d.get("label_smoothing", 0.0) or 0.0)
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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRSchedulerConfig:
        d = _strip_comments(d)
        _check_fields("lr_scheduler", d, {f.name for f in dataclasses.fields(cls)})
        return cls(**d)


@dataclass(frozen=True)
class PanoSAMicConfig:
    """Everything a config JSON file says about the model and its training.

    The architecture-defining fields are ``channel_attention``, ``spatial_attention``,
    ``dual_view_fusion``, ``basic_fusion`` and ``canvas_size``; the rest drive training.
    """

    channel_attention: AttentionConfig | None = field(
        default_factory=lambda: AttentionConfig(aggregation="max")
    )
    spatial_attention: AttentionConfig | None = field(
        default_factory=lambda: AttentionConfig(aggregation="none")
    )
    dual_view_fusion: bool = True
    basic_fusion: Literal["concat", "add", "mult"] | None = None
    canvas_size: int = CANVAS_SIZE
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: str = "Ranger21"
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)

    def __post_init__(self) -> None:
        if self.basic_fusion is not None and self.basic_fusion not in _BASIC_FUSIONS:
            raise ValueError(f"basic_fusion must be null or one of {_BASIC_FUSIONS}, got {self.basic_fusion!r}")
        if self.basic_fusion is not None and self.dual_view_fusion:
            raise ValueError("basic_fusion (the baseline) is single view: set dual_view_fusion to false")
        c = self.canvas_size
        if not isinstance(c, int) or c < 8 * PATCH_SIZE or c % (8 * PATCH_SIZE):
            raise ValueError(f"canvas_size must be a multiple of {8 * PATCH_SIZE} (>= {8 * PATCH_SIZE}), got {c!r}")
        for name in ("channel_attention", "spatial_attention"):
            att = getattr(self, name)
            if att is not None and att.efficient_attention:
                raise ValueError(
                    f"{name}.efficient_attention (ECA) is not supported: no published configuration uses it"
                )

    # ------------------------------------------------------------------ JSON I/O
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PanoSAMicConfig:
        """Build from a reference-style dict (comment keys ignored, unknown keys refused)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"config must be a mapping, got {type(d).__name__}")
        d = _strip_comments(d)
        _check_fields("config", d, {f.name for f in dataclasses.fields(cls)})
        kw: dict[str, Any] = {}
        for name in ("channel_attention", "spatial_attention"):
            if name in d:
                kw[name] = None if d[name] is None else AttentionConfig.from_dict(d[name], name)
        if "loss" in d and d["loss"] is not None:
            kw["loss"] = LossConfig.from_dict(d["loss"])
        if "lr_scheduler" in d and d["lr_scheduler"] is not None:
            kw["lr_scheduler"] = LRSchedulerConfig.from_dict(d["lr_scheduler"])
        for name in ("dual_view_fusion", "basic_fusion", "canvas_size", "optimizer"):
            if name in d:
                kw[name] = d[name]
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Reference-style dict (the inverse of :meth:`from_dict`)."""
        return {
            "channel_attention": None if self.channel_attention is None else dataclasses.asdict(self.channel_attention),
            "spatial_attention": None if self.spatial_attention is None else dataclasses.asdict(self.spatial_attention),
            "loss": self.loss.to_dict(),
            "optimizer": self.optimizer,
            "lr_scheduler": dataclasses.asdict(self.lr_scheduler),
            "dual_view_fusion": self.dual_view_fusion,
            "basic_fusion": self.basic_fusion,
            "canvas_size": self.canvas_size,
        }

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> PanoSAMicConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON: {e}") from e
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from e

    def to_json(self, path: str | os.PathLike) -> None:
        from panosamic.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def replace(self, **changes: Any) -> PanoSAMicConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, config: PanoSAMicConfig | Mapping[str, Any] | str | os.PathLike) -> PanoSAMicConfig:
        """Accept a config object, a dict or a JSON path."""
        if isinstance(config, cls):
            return config
        if isinstance(config, Mapping):
            return cls.from_dict(config)
        if isinstance(config, (str, os.PathLike)):
            return cls.from_json(config)
        raise TypeError(f"config must be a PanoSAMicConfig, a dict or a JSON path, got {type(config).__name__}")
