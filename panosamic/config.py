"""Configuration: what defines a model (:class:`ModelConfig`, which *is* ``config.json``), how it
is trained (:class:`TrainingConfig`), and the reference's JSON files (:class:`PanoSAMicConfig`),
which hold the fusion settings of an architecture together with its training settings.

Every field is checked for type and range when read; an error names the file, the field, the
value and what is allowed. Unknown keys are refused at every level. The only escape is the
reference's comment convention: keys starting with ``//`` or ``_comment`` are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from panosamic.constants import CANVAS_SIZE, PATCH_SIZE, native_size
from panosamic.specs import VIT_SPECS, canonical_modalities, modality_set_name, variant_name

Aggregation = Literal["none", "mean", "max"]
AGGREGATIONS = ("none", "mean", "max")
BASIC_FUSIONS = ("concat", "add", "mult")
OPTIMIZERS = ("Ranger21", "RAdam")
_LOSS_KEYS = {"CrossEntropyLoss": "cross_entropy", "FocalLoss": "focal", "DiceLoss": "dice", "JaccardLoss": "jaccard"}
#: Version of our config.json layout (1: the architecture under "config", before ModelConfig).
CONFIG_FORMAT_VERSION = 2


class ConfigError(ValueError):
    """A config value of the wrong type, out of range, or an unknown key."""


# ---------------------------------------------------------------------------- checks
def is_comment_key(key: str) -> bool:
    return key.startswith("//") or key.startswith("_comment")


def _strip(where: str, d: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(d).__name__} {d!r}")
    d = {k: v for k, v in d.items() if not is_comment_key(k)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return d


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _int(where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _number(where: str, value: Any, *, minimum: float = 0.0, strict: bool = False, maximum: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
        ok = ok and (maximum is None or value <= maximum)
    if not ok:
        rng = f"{'>' if strict else '>='} {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{where}: expected a number {rng}, got {value!r}")
    return float(value)


def _choice(where: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{where}: expected one of {list(allowed)}, got {value!r}")
    return value


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------------------- fusion
@dataclass(frozen=True)
class AttentionConfig:
    """One attention branch of an MCBAM fusion block (channel or spatial).

    ``moving_attention``: attention in sliding ``window_size`` windows with ``stride`` (MCBAM)
    instead of once over the whole map (plain CBAM). ``aggregation``: how overlapping windows
    merge ("none": sum of logits then sigmoid; "mean": mean of sigmoids; "max":
    sigmoid(15 (sum of sigmoids - 0.5))). ``kernel_size``: spatial branch; ``bias``: channel MLP.
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
        self.check("attention")

    def check(self, where: str) -> None:
        for name in ("moving_attention", "bias", "efficient_attention"):
            _bool(f"{where}.{name}", getattr(self, name))
        for name in ("window_size", "stride", "kernel_size", "gamma", "b"):
            _int(f"{where}.{name}", getattr(self, name))
        _choice(f"{where}.aggregation", self.aggregation, AGGREGATIONS)
        if self.kernel_size % 2 != 1:
            raise ConfigError(f"{where}.kernel_size: expected an odd integer, got {self.kernel_size}")
        if self.efficient_attention:
            raise ConfigError(f"{where}.efficient_attention (ECA): not supported; no published configuration uses it")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "attention") -> AttentionConfig:
        d = _strip(where, d, _fields(cls))
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(str(e).replace("attention.", f"{where}.", 1)) from None


def _attention(where: str, d: Any) -> AttentionConfig | None:
    return None if d is None else AttentionConfig.from_dict(d, where)


def _attention_dict(a: AttentionConfig | None) -> dict[str, Any] | None:
    return None if a is None else dataclasses.asdict(a)


# ---------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a PanoSAMic model and its use: the only argument of the model's
    constructor, and the content of a saved model's ``config.json``.

    Architecture: ``vit`` (see :data:`panosamic.specs.VIT_SPECS`), ``modalities``,
    ``num_classes``, the MCBAM ``channel_attention`` / ``spatial_attention``, ``dual_view``
    (process the panorama rolled by half its width too and blend), ``basic_fusion`` (the
    single-view baseline: concat/add/mult of SAM's neck features), ``canvas_size`` (SAM's square
    input; 1024 for Meta's weights) and ``semantic_only`` (False adds SAM's prompt encoder and
    mask decoder for instance masks). Use: label names and display palette, the training
    ``dataset`` / ``fold``, the depth ``depth_threshold`` (metres) of pseudo-disparity inputs, and
    the published variant ``name`` if any.
    """

    vit: str = "vit_h"
    modalities: tuple[str, ...] = ("image",)
    num_classes: int = 13
    channel_attention: AttentionConfig | None = field(default_factory=lambda: AttentionConfig(aggregation="max"))
    spatial_attention: AttentionConfig | None = field(default_factory=lambda: AttentionConfig(aggregation="none"))
    dual_view: bool = True
    basic_fusion: Literal["concat", "add", "mult"] | None = None
    canvas_size: int = CANVAS_SIZE
    semantic_only: bool = True
    class_names: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    dataset: str | None = None
    fold: int | None = None
    depth_threshold: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.vit not in VIT_SPECS:
            raise ConfigError(f"vit: unknown ViT {self.vit!r}; expected one of {list(VIT_SPECS)}")
        try:
            object.__setattr__(self, "modalities", canonical_modalities(self.modalities))
        except ValueError as e:
            raise ConfigError(f"modalities: {e}") from None
        _int("num_classes", self.num_classes)
        for name in ("dual_view", "semantic_only"):
            _bool(name, getattr(self, name))
        for name in ("channel_attention", "spatial_attention"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AttentionConfig):
                raise ConfigError(f"{name}: expected an AttentionConfig or null, got {value!r}")
        if self.basic_fusion is not None:
            _choice("basic_fusion", self.basic_fusion, BASIC_FUSIONS)
            if self.dual_view:
                raise ConfigError("basic_fusion (the baseline) is single view: set dual_view to false")
        c = self.canvas_size
        if isinstance(c, bool) or not isinstance(c, int) or c < 8 * PATCH_SIZE or c % (8 * PATCH_SIZE):
            raise ConfigError(f"canvas_size: expected a multiple of {8 * PATCH_SIZE}, got {c!r}")
        self._check_labels()
        if self.fold is not None:
            _int("fold", self.fold)
        if self.depth_threshold is not None:
            object.__setattr__(self, "depth_threshold", _number("depth_threshold", self.depth_threshold, strict=True))
        for name in ("dataset", "name"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name}: expected a non-empty string or null, got {value!r}")

    def _check_labels(self) -> None:
        if self.class_names is not None:
            if isinstance(self.class_names, str) or not all(isinstance(c, str) for c in self.class_names):
                raise ConfigError(f"class_names: expected a list of strings, got {self.class_names!r}")
            object.__setattr__(self, "class_names", tuple(self.class_names))
            if len(self.class_names) != self.num_classes:
                raise ConfigError(f"class_names: {len(self.class_names)} names for num_classes={self.num_classes}")
        if self.palette is not None:
            try:
                pal = tuple(tuple(int(v) for v in c) for c in self.palette)
            except (TypeError, ValueError):
                raise ConfigError(f"palette: expected RGB triples, got {self.palette!r}") from None
            bad = len(pal) != self.num_classes or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in pal)
            if bad:
                raise ConfigError(f"palette: expected {self.num_classes} RGB triples in 0..255, got {self.palette!r}")
            object.__setattr__(self, "palette", pal)

    # ------------------------------------------------------------------ derived facts
    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) of the 2:1 panorama the model runs at."""
        return native_size(self.canvas_size)

    @property
    def num_views(self) -> int:
        return 2 if self.dual_view and self.basic_fusion is None else 1

    @property
    def modality_set(self) -> str:
        return modality_set_name(self.modalities)

    @property
    def variant_name(self) -> str:
        """The published naming scheme, ``{dataset}-vit{size}-{rgb|rgbd|rgbdn}[-fold{n}]``."""
        return self.name or variant_name(self.dataset or "panosamic", self.vit, self.modalities, self.fold)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ config.json
    def to_dict(self) -> dict[str, Any]:
        h, w = self.native_size
        return {
            "library_name": "panosamic",
            "format_version": CONFIG_FORMAT_VERSION,
            "architecture": "panosamic",
            "vit": self.vit,
            "modalities": list(self.modalities),
            "num_classes": self.num_classes,
            "channel_attention": _attention_dict(self.channel_attention),
            "spatial_attention": _attention_dict(self.spatial_attention),
            "dual_view": self.dual_view,
            "basic_fusion": self.basic_fusion,
            "canvas_size": self.canvas_size,
            "native_size": [h, w],
            "semantic_only": self.semantic_only,
            "class_names": None if self.class_names is None else list(self.class_names),
            "palette": None if self.palette is None else [list(c) for c in self.palette],
            "dataset": self.dataset,
            "fold": self.fold,
            "depth_threshold": self.depth_threshold,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config.json") -> ModelConfig:
        """Read a ``config.json`` (ours, any format version up to this one)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("library_name") not in (None, "panosamic"):
            raise ConfigError(f"{where}: written by {d.get('library_name')!r}, not panosamic")
        version = d.get("format_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"{where}: format_version {version!r} is not one this panosamic reads (1..{CONFIG_FORMAT_VERSION}); "
                "upgrade panosamic"
            )
        try:
            config = _from_v1(d) if version == 1 else _from_v2(d)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        stored = d.get("native_size")
        if stored is not None and list(stored) != list(config.native_size):
            raise ConfigError(f"{where}: native_size {stored} does not match canvas_size {config.canvas_size}")
        return config

    def to_json(self, path: str | os.PathLike) -> None:
        from panosamic.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ModelConfig:
        return cls.from_dict(_read_json(path), where=str(path))


_V2_KEYS = set(ModelConfig.__dataclass_fields__) | {"library_name", "library_version", "format_version", "architecture", "native_size"}


def _from_v2(d: Mapping[str, Any]) -> ModelConfig:
    d = _strip("config", d, _V2_KEYS)
    if d.get("architecture", "panosamic") != "panosamic":
        raise ConfigError(f"architecture: expected 'panosamic', got {d['architecture']!r}")
    kw = {k: v for k, v in d.items() if k in ModelConfig.__dataclass_fields__}
    for name in ("channel_attention", "spatial_attention"):
        if name in kw:
            kw[name] = _attention(name, kw[name])
    if isinstance(kw.get("modalities"), str):
        raise ConfigError(f"modalities: expected a list of names, got the string {kw['modalities']!r}")
    return ModelConfig(**kw)


def _from_v1(d: Mapping[str, Any]) -> ModelConfig:
    """The layout of panosamic 0.1's config.json (architecture nested under ``config``)."""
    keys = {"library_name", "library_version", "format_version", "vit_model", "modalities", "num_classes",
            "class_names", "palette", "dataset", "fold", "depth_threshold", "native_size", "config"}
    d = _strip("config", d, keys)
    missing = [k for k in ("vit_model", "modalities", "num_classes") if d.get(k) is None]
    if missing:
        raise ConfigError(f"missing field(s) {missing}")
    if isinstance(d["modalities"], str):
        raise ConfigError(f"modalities: expected a list of names, got the string {d['modalities']!r}")
    ref = PanoSAMicConfig.from_dict(d.get("config") or {}, where="config")
    use = {k: d.get(k) for k in ("class_names", "palette", "dataset", "fold", "depth_threshold")}
    return ref.model_config(vit=d["vit_model"], modalities=tuple(d["modalities"]), num_classes=d["num_classes"], **use)


# ---------------------------------------------------------------------------- training
@dataclass(frozen=True)
class ScheduledLossConfig:
    """CE <-> Jaccard/Dice hand-over, as fractions of all training steps."""

    transition_start_ratio: float = 0.5
    transition_finish_ratio: float = 0.9

    def __post_init__(self) -> None:
        a = _number("loss.ScheduledLoss.transition_start_ratio", self.transition_start_ratio, maximum=1.0)
        b = _number("loss.ScheduledLoss.transition_finish_ratio", self.transition_finish_ratio, maximum=1.0)
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
                object.__setattr__(self, name, _number(f"loss.{key}", value, strict=True))
        object.__setattr__(self, "label_smoothing", _number("loss.label_smoothing", self.label_smoothing, maximum=1.0))
        if all(getattr(self, k) is None for k in _LOSS_KEYS.values()):
            raise ConfigError(f"loss: at least one of {sorted(_LOSS_KEYS)} needs a weight")
        if self.scheduled is not None:
            others = [k for k in ("dice", "jaccard") if getattr(self, k) is not None]
            if self.cross_entropy is None or len(others) != 1 or self.focal is not None:
                raise ConfigError("loss.ScheduledLoss: needs CrossEntropyLoss plus exactly one of DiceLoss or JaccardLoss")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossConfig:
        d = _strip("loss", d, set(_LOSS_KEYS) | {"ScheduledLoss", "label_smoothing"})
        kwargs: dict[str, Any] = {v: d.get(k) for k, v in _LOSS_KEYS.items()}
        if d.get("ScheduledLoss") is not None:
            sched = _strip("loss.ScheduledLoss", d["ScheduledLoss"], _fields(ScheduledLossConfig))
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
                object.__setattr__(self, name, _number(f"lr_scheduler.{name}", value, strict=True))
        for name in ("warm_up_ratio", "wind_down_ratio"):
            object.__setattr__(self, name, _number(f"lr_scheduler.{name}", getattr(self, name)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LRSchedulerConfig:
        return cls(**_strip("lr_scheduler", d, _fields(cls)))


@dataclass(frozen=True)
class TrainingConfig:
    """How the trainable parts are trained: losses, optimizer and learning-rate schedule."""

    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: str = "Ranger21"
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)


# ---------------------------------------------------------------------------- reference files
_REFERENCE_KEYS = {"channel_attention", "spatial_attention", "dual_view_fusion", "basic_fusion", "canvas_size",
                   "loss", "optimizer", "lr_scheduler"}


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

    @property
    def loss(self) -> LossConfig:
        return self.training.loss

    @property
    def optimizer(self) -> str:
        return self.training.optimizer

    @property
    def lr_scheduler(self) -> LRSchedulerConfig:
        return self.training.lr_scheduler

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
        d = _strip(where, d, _REFERENCE_KEYS)
        kw: dict[str, Any] = {}
        for name in ("channel_attention", "spatial_attention"):
            if name in d:
                kw[name] = _attention(name, d[name])
        if "dual_view_fusion" in d:
            kw["dual_view_fusion"] = _bool("dual_view_fusion", d["dual_view_fusion"])
        for name in ("basic_fusion", "canvas_size"):
            if name in d:
                kw[name] = d[name]
        training: dict[str, Any] = {}
        if d.get("loss") is not None:
            training["loss"] = LossConfig.from_dict(d["loss"])
        if d.get("lr_scheduler") is not None:
            training["lr_scheduler"] = LRSchedulerConfig.from_dict(d["lr_scheduler"])
        if "optimizer" in d:
            training["optimizer"] = d["optimizer"]
        return cls(training=TrainingConfig(**training), **kw)

    def to_dict(self) -> dict[str, Any]:
        """Reference-style dict (the inverse of :meth:`from_dict`)."""
        return {
            "channel_attention": _attention_dict(self.channel_attention),
            "spatial_attention": _attention_dict(self.spatial_attention),
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
            return cls.from_dict(_read_json(path))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def to_json(self, path: str | os.PathLike) -> None:
        from panosamic.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

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


def _read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
