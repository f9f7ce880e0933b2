"""``StudentConfig``: everything that defines a compact student; it IS the student's config.json."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panosamic.config.checks import coerce_config, read_json
from panosamic.config.forwarded import Forwarded
from panosamic.constants import MAX_CLASSES
from panosamic.specs import canonical_modalities, modality_set_name

__all__ = ["ARCHITECTURE", "STUDENT_BACKBONES", "StudentConfig", "StudentFacts", "is_student_config"]

#: Value of the ``"architecture"`` key that tells a student's config.json from PanoSAMic's.
ARCHITECTURE = "panosamic-student"
#: timm backbones known to work (static padding, 5 feature levels at strides 2..32); others may.
STUDENT_BACKBONES: tuple[str, ...] = (
    "mobilenetv3_large_100", "mobilenetv3_small_100", "efficientnet_lite0", "resnet18",
)
#: Total stride of the backbones: the native width must be a multiple of twice this (roll by w/2).
BACKBONE_STRIDE = 32


def is_student_config(d: Mapping[str, Any]) -> bool:
    """True when a config.json dict describes a student (its ``architecture`` key)."""
    return isinstance(d, Mapping) and d.get("architecture") == ARCHITECTURE


@dataclass(frozen=True)
class StudentConfig:
    """Architecture and metadata of a :class:`~panosamic.student.PanoStudent`.

    ``native_size`` (height, width) is the 2:1 size the network runs at; other 2:1 inputs are
    resized to it and the logits back, like the teacher.
    """

    backbone: str = "mobilenetv3_large_100"
    modalities: tuple[str, ...] = ("image",)
    num_classes: int = 13
    decoder_channels: int = 64
    native_size: tuple[int, int] = (512, 1024)
    class_names: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    depth_threshold: float | None = None
    dataset: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        def set_(key: str, value: Any) -> None:
            object.__setattr__(self, key, value)

        set_("modalities", canonical_modalities(self.modalities))
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"backbone must be a timm model name, got {self.backbone!r}")
        for key in ("num_classes", "decoder_channels"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        if self.num_classes > MAX_CLASSES:
            raise ValueError(f"num_classes: {self.num_classes} is more than a label map holds (at most {MAX_CLASSES:,} "
                             "classes: 16-bit label PNGs)")
        h, w = (int(v) for v in self.native_size)
        step = 2 * BACKBONE_STRIDE
        if w != 2 * h or w % step:
            raise ValueError(f"native_size must be (H, 2H) with the width a multiple of {step}, got {self.native_size}")
        set_("native_size", (h, w))
        if self.class_names is not None:
            set_("class_names", tuple(str(c) for c in self.class_names))
            if len(self.class_names) != self.num_classes:
                raise ValueError(f"{len(self.class_names)} class names given for num_classes={self.num_classes}")
        if self.palette is not None:
            set_("palette", tuple(tuple(int(c) for c in rgb) for rgb in self.palette))
            if len(self.palette) != self.num_classes or any(len(c) != 3 for c in self.palette):
                raise ValueError(f"palette must hold {self.num_classes} RGB triples, got {len(self.palette)} entries")
        if self.depth_threshold is not None:
            set_("depth_threshold", float(self.depth_threshold))

    @property
    def in_channels(self) -> int:
        """3 channels per modality, stacked in canonical order."""
        return 3 * len(self.modalities)

    @property
    def variant_name(self) -> str:
        """``name`` or ``{dataset}-student-{backbone}-{rgb|rgbd|rgbdn}``."""
        if self.name:
            return self.name
        prefix = f"{self.dataset}-" if self.dataset else ""
        return f"{prefix}student-{self.backbone}-{modality_set_name(self.modalities)}"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = {"architecture": ARCHITECTURE, **dataclasses.asdict(self)}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "student config") -> StudentConfig:
        if not isinstance(d, Mapping):
            raise TypeError(f"{where} must be a mapping, got {type(d).__name__}")
        d = dict(d)
        arch = d.pop("architecture", ARCHITECTURE)
        if arch != ARCHITECTURE:
            raise ValueError(f"{where} is for architecture {arch!r}, expected {ARCHITECTURE!r}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown} in {where}; expected some of {sorted(allowed)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    def to_json(self, path: str | os.PathLike) -> Path:
        from panosamic.io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> StudentConfig:
        return cls.from_dict(read_json(path), where=str(path))  # read_json names the file: missing, unreadable, not JSON

    def replace(self, **changes: Any) -> StudentConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, config: StudentConfig | Mapping[str, Any] | str | os.PathLike | None) -> StudentConfig:
        """Accept a config object, a dict or a JSON path (None: the default student)."""
        return cls() if config is None else coerce_config(cls, config)


class StudentFacts:
    """The facts a student's config states, as attributes (the prediction interface reads them)."""

    config: StudentConfig
    modalities = Forwarded[tuple[str, ...]]()
    num_classes = Forwarded[int]()
    class_names = Forwarded[tuple[str, ...] | None]()
    palette = Forwarded[tuple[tuple[int, int, int], ...] | None]()
    depth_threshold = Forwarded[float | None]()
    native_size = Forwarded[tuple[int, int]]()
    dataset = Forwarded[str | None]()
