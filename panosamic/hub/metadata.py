"""What a Hub folder says about its model: ``config.json`` and the evaluation metrics.

Published ``dfki-av/PanoSAMic`` subfolders hold only ``model.safetensors``; folders written by
this library add a ``config.json`` so that the architecture travels with the weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from panosamic.config import PanoSAMicConfig
from panosamic.constants import canonical_modalities, native_size

#: File names inside a Hub (sub)folder.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
#: Version of our config.json layout.
HUB_FORMAT_VERSION = 1
#: Config fields that change the architecture (the rest only drive training).
ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "channel_attention",
    "spatial_attention",
    "dual_view_fusion",
    "basic_fusion",
    "canvas_size",
)


def dataset_labels(dataset: str, num_classes: int) -> tuple[tuple[str, ...] | None, list | None]:
    """Class names and palette of a known dataset with ``num_classes`` classes (else ``None``s)."""
    try:
        from panosamic.data.classes import get_dataset_info

        info = get_dataset_info(dataset)
    except (ImportError, ValueError, TypeError):
        return None, None
    if info.num_classes != num_classes:
        return None, None
    return tuple(info.class_names), [tuple(int(v) for v in row) for row in info.palette]


@dataclass(frozen=True)
class HubModelInfo:
    """The architecture and label space of a saved PanoSAMic variant (our ``config.json``)."""

    vit_model: str
    modalities: tuple[str, ...]
    num_classes: int
    config: PanoSAMicConfig = field(default_factory=PanoSAMicConfig)
    class_names: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    dataset: str | None = None
    fold: int | None = None
    depth_threshold: float | None = None
    library_version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", canonical_modalities(self.modalities))
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
            if len(self.class_names) != self.num_classes:
                raise ValueError(f"{len(self.class_names)} class names for num_classes={self.num_classes}")
        if self.palette is not None:
            pal = tuple(tuple(int(v) for v in c) for c in self.palette)
            if len(pal) != self.num_classes or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in pal):
                raise ValueError(f"palette must be {self.num_classes} RGB triples in 0..255, got {self.palette!r}")
            object.__setattr__(self, "palette", pal)

    @property
    def native_size(self) -> tuple[int, int]:
        return native_size(self.config.canvas_size)

    @property
    def variant_name(self) -> str:
        """The published naming scheme: ``{dataset}-vit{size}-{rgb|rgbd|rgbdn}-fold{n}``."""
        mods = {1: "rgb", 2: "rgbd", 3: "rgbdn"}[len(self.modalities)]
        if self.modalities == ("image", "normals"):
            mods = "rgbn"
        parts = [self.dataset or "panosamic", f"vit{self.vit_model.removeprefix('vit_')}", mods]
        if self.fold is not None:
            parts.append(f"fold{self.fold}")
        return "-".join(parts)

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_model(cls, model: Any, **overrides: Any) -> HubModelInfo:
        """Read the metadata a :class:`~panosamic.model.PanoSAMic` carries."""
        from panosamic import __version__

        values = dict(
            vit_model=model.vit_model,
            modalities=tuple(model.modalities),
            num_classes=int(model.num_classes),
            config=model.config,
            class_names=getattr(model, "class_names", None),
            palette=getattr(model, "palette", None),
            dataset=getattr(model, "dataset", None),
            fold=getattr(model, "fold", None),
            depth_threshold=getattr(model, "depth_threshold", None),
            library_version=__version__,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values["dataset"] and (values["class_names"] is None or values["palette"] is None):
            names, palette = dataset_labels(values["dataset"], values["num_classes"])
            values["class_names"] = values["class_names"] or names
            values["palette"] = values["palette"] or palette
        return cls(**values)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``PanoSAMic(...)`` for this variant."""
        return dict(
            config=self.config,
            vit_model=self.vit_model,
            modalities=self.modalities,
            num_classes=self.num_classes,
            class_names=self.class_names,
            palette=self.palette,
            dataset=self.dataset,
            fold=self.fold,
            depth_threshold=self.depth_threshold,
        )

    def to_dict(self) -> dict[str, Any]:
        from panosamic import __version__

        h, w = self.native_size
        return {
            "library_name": "panosamic",
            "library_version": self.library_version or __version__,
            "format_version": HUB_FORMAT_VERSION,
            "vit_model": self.vit_model,
            "modalities": list(self.modalities),
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "palette": None if self.palette is None else [list(c) for c in self.palette],
            "dataset": self.dataset,
            "fold": self.fold,
            "depth_threshold": self.depth_threshold,
            "native_size": [h, w],
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config.json") -> HubModelInfo:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("library_name") not in (None, "panosamic"):
            raise ValueError(f"{where}: written by {d.get('library_name')!r}, not panosamic")
        version = d.get("format_version", HUB_FORMAT_VERSION)
        if not isinstance(version, int) or version > HUB_FORMAT_VERSION:
            raise ValueError(
                f"{where}: format_version {version!r} is newer than this panosamic understands "
                f"({HUB_FORMAT_VERSION}); upgrade panosamic"
            )
        missing = [k for k in ("vit_model", "modalities", "num_classes") if d.get(k) is None]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        try:
            info = cls(
                vit_model=str(d["vit_model"]),
                modalities=tuple(d["modalities"]),
                num_classes=d["num_classes"],
                config=PanoSAMicConfig.from_dict(d.get("config") or {}),
                class_names=d.get("class_names"),
                palette=d.get("palette"),
                dataset=d.get("dataset"),
                fold=d.get("fold"),
                depth_threshold=d.get("depth_threshold"),
                library_version=d.get("library_version"),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e
        stored = d.get("native_size")
        if stored is not None and tuple(stored) != info.native_size:
            raise ValueError(f"{where}: native_size {stored} does not match canvas_size {info.config.canvas_size}")
        return info

    def to_json(self, path: str | os.PathLike) -> None:
        from panosamic.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> HubModelInfo:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(data, where=str(path))


@dataclass(frozen=True)
class EvaluationResult:
    """mIoU / mAcc of a variant on one dataset split (fractions in 0..1)."""

    miou: float
    macc: float | None = None
    dataset: str | None = None
    fold: int | None = None
    split: str = "test"

    def __post_init__(self) -> None:
        for name in ("miou", "macc"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1] (e.g. 0.523 for 52.3 %), got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def coerce_all(cls, metrics: Any, info: HubModelInfo | None = None) -> list[EvaluationResult]:
        """Accept None, an EvaluationResult, a dict (``miou``/``mIoU``, ``macc``/``mAcc``, optional
        ``dataset``, ``fold``, ``split``) or a list of those; dataset/fold default to ``info``'s."""
        if metrics is None:
            return []
        items: Sequence[Any] = metrics if isinstance(metrics, (list, tuple)) else [metrics]
        out = []
        for m in items:
            if isinstance(m, EvaluationResult):
                out.append(m)
                continue
            if not isinstance(m, Mapping):
                raise TypeError(f"metrics must be a dict or a list of dicts, got {type(m).__name__}")
            lower = {str(k).lower(): v for k, v in m.items()}
            if "miou" not in lower:
                raise ValueError(f"metrics need an 'miou' entry, got keys {sorted(m)}")
            unknown = sorted(set(lower) - {"miou", "macc", "dataset", "fold", "split"})
            if unknown:
                raise ValueError(f"unknown metric field(s) {unknown}; expected miou, macc, dataset, fold, split")
            out.append(
                cls(
                    miou=lower["miou"],
                    macc=lower.get("macc"),
                    dataset=lower.get("dataset") or (info.dataset if info else None),
                    fold=lower.get("fold", info.fold if info else None),
                    split=lower.get("split") or "test",
                )
            )
        return out
