"""ModelConfig: what defines a model and its use; the content of a saved model's ``config.json``."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from panosamic.config.attention import AttentionConfig, attention_dict, attention_from
from panosamic.config.checks import ConfigError, as_bool, as_choice, as_int, as_number, read_json, strip_keys
from panosamic.config.reference_dict import read_reference_dict
from panosamic.constants import CANVAS_SIZE, MAX_CLASSES, PATCH_SIZE, native_size
from panosamic.specs import VIT_SPECS, canonical_modalities, modality_set_name, variant_name

BASIC_FUSIONS = ("concat", "add", "mult")
#: Version of our config.json layout (1: the architecture under "config", before ModelConfig).
CONFIG_FORMAT_VERSION = 2


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
        as_int("num_classes", self.num_classes)
        if self.num_classes > MAX_CLASSES:
            raise ConfigError(f"num_classes: {self.num_classes} is more than a label map holds (at most {MAX_CLASSES:,} "
                              "classes: 16-bit label PNGs)")
        for name in ("dual_view", "semantic_only"):
            as_bool(name, getattr(self, name))
        for name in ("channel_attention", "spatial_attention"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AttentionConfig):
                raise ConfigError(f"{name}: expected an AttentionConfig or null, got {value!r}")
        if self.basic_fusion is not None:
            as_choice("basic_fusion", self.basic_fusion, BASIC_FUSIONS)
            if self.dual_view:
                raise ConfigError("basic_fusion (the baseline) is single view: set dual_view to false")
        c = self.canvas_size
        if isinstance(c, bool) or not isinstance(c, int) or c < 8 * PATCH_SIZE or c % (8 * PATCH_SIZE):
            raise ConfigError(f"canvas_size: expected a multiple of {8 * PATCH_SIZE}, got {c!r}")
        self._check_labels()
        if self.fold is not None:
            as_int("fold", self.fold)
        if self.depth_threshold is not None:
            object.__setattr__(self, "depth_threshold", as_number("depth_threshold", self.depth_threshold, strict=True))
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
            "channel_attention": attention_dict(self.channel_attention),
            "spatial_attention": attention_dict(self.spatial_attention),
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
        return cls.from_dict(read_json(path), where=str(path))


#: The fields that define the network: a checkpoint's tensors depend on them, so a config given
#: for a checkpoint must agree with the checkpoint's on each. ``semantic_only`` is chosen when
#: loading (it adds or drops SAM's instance branch, which comes from Meta's file).
ARCHITECTURE_FIELDS: tuple[str, ...] = ("vit", "modalities", "num_classes", "channel_attention", "spatial_attention",
                                        "dual_view", "basic_fusion", "canvas_size")
#: The fields that describe the model's use (labels, palette, training data, depth scale, name).
USE_FIELDS: tuple[str, ...] = tuple(f for f in ModelConfig.__dataclass_fields__
                                    if f not in ARCHITECTURE_FIELDS and f != "semantic_only")

_V2_KEYS = set(ModelConfig.__dataclass_fields__) | {"library_name", "library_version", "format_version", "architecture", "native_size"}


def _from_v1(d: Mapping[str, Any]) -> ModelConfig:
    """The layout of panosamic 0.1's config.json (architecture nested under ``config``, a
    reference-style config)."""
    keys = {"library_name", "library_version", "format_version", "vit_model", "modalities", "num_classes",
            "class_names", "palette", "dataset", "fold", "depth_threshold", "native_size", "config"}
    d = strip_keys("top level", d, keys)
    missing = [k for k in ("vit_model", "modalities", "num_classes") if d.get(k) is None]
    if missing:
        raise ConfigError(f"missing field(s) {missing}")
    if isinstance(d["modalities"], str):
        raise ConfigError(f"modalities: expected a list of names, got the string {d['modalities']!r}")
    fusion = read_reference_dict(d.get("config") or {}, where="config")
    del fusion["training"]  # checked, not kept
    if "dual_view_fusion" in fusion:
        fusion["dual_view"] = fusion.pop("dual_view_fusion")
    use = {k: d.get(k) for k in ("class_names", "palette", "dataset", "fold", "depth_threshold")}
    return ModelConfig(vit=d["vit_model"], modalities=canonical_modalities(tuple(d["modalities"])), num_classes=d["num_classes"],
                       **fusion, **use)


def _from_v2(d: Mapping[str, Any]) -> ModelConfig:
    d = strip_keys("top level", d, _V2_KEYS)
    if d.get("architecture", "panosamic") != "panosamic":
        raise ConfigError(f"architecture: expected 'panosamic', got {d['architecture']!r}")
    kw = {k: v for k, v in d.items() if k in ModelConfig.__dataclass_fields__}
    for name in ("channel_attention", "spatial_attention"):
        if name in kw:
            kw[name] = attention_from(name, kw[name])
    if isinstance(kw.get("modalities"), str):
        raise ConfigError(f"modalities: expected a list of names, got the string {kw['modalities']!r}")
    return ModelConfig(**kw)
