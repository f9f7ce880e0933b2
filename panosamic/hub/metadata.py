"""The files of a Hub folder and the evaluation metrics its model card reports.

Published ``dfki-av/PanoSAMic`` subfolders hold only ``model.safetensors``; folders written by
this library add a ``config.json`` (a :class:`~panosamic.config.ModelConfig`) so that the
architecture travels with the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from panosamic.config import ModelConfig

#: File names inside a Hub (sub)folder.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
#: config.json's ``"architecture"`` of a PanoSAMic (also the default: the published folders have none).
PANOSAMIC = "panosamic"


#: transformers ``model_type`` values of kinds panosamic loads (such config.json files name no ``"architecture"``).
TRANSFORMERS_KINDS = {"sam3": "sam3", "sam3_video": "sam3"}


def architecture_of(d: Any) -> str:
    """The kind of model a config.json dict describes (``"panosamic"`` when it does not say; a
    transformers SAM 3 config: ``"sam3"``)."""
    if isinstance(d, Mapping) and "architecture" not in d and d.get("model_type") in TRANSFORMERS_KINDS:
        return TRANSFORMERS_KINDS[d["model_type"]]
    arch = d.get("architecture", PANOSAMIC) if isinstance(d, Mapping) else PANOSAMIC
    return arch if isinstance(arch, str) and arch else PANOSAMIC


def read_config(d: Any, where: str) -> Any:
    """The config object of a config.json dict, by its ``"architecture"``: a :class:`ModelConfig`
    or a :class:`~panosamic.student.StudentConfig`; other kinds' dicts are returned as they are
    (their loaders read them). Errors name ``where`` and the field."""
    from panosamic.student.config import ARCHITECTURE as STUDENT, StudentConfig

    arch = architecture_of(d)
    if arch == PANOSAMIC:
        return ModelConfig.from_dict(d, where=where)
    if arch == STUDENT:
        return StudentConfig.from_dict(d, where=where)
    return dict(d)


def read_config_file(path: Any) -> Any:
    """:func:`read_config` of a config.json file (missing, unreadable or invalid JSON named)."""
    from panosamic.config.checks import read_json

    return read_config(read_json(path), str(path))


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
    def coerce_all(cls, metrics: Any, info: ModelConfig | None = None) -> list[EvaluationResult]:
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
