"""What an adaptation run is told (``panosamic adapt`` flags); no torch import here."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panosamic.config.checks import check_counts
from panosamic.constants import PRECISIONS
from panosamic.runs import LAST_NAME
from panosamic.training.settings import LoopSettings

__all__ = ["PRECISIONS", "AdaptSettings", "check_output", "check_source"]


@dataclass(frozen=True)
class AdaptSettings(LoopSettings):
    """Hyper-parameters of self-training with a mean teacher (defaults fixed a priori); the run
    settings (``epochs``, ``batch_size``, ``seed``, ``workers``, ``max_steps``, ``log_every``,
    ``keep_last``, ``progress``, ...) are the training engine's :class:`LoopSettings`.

    ``keep_fraction``: share of each class's pixels (most confident first) kept as pseudo-labels;
    ``max_threshold``: confidence above which a pixel is always kept; ``threshold_every``: epochs
    between re-estimates of the thresholds (a teacher pass over the target set). ``refine_masks``:
    refine pseudo-labels with SAM's automatic masks (None: when the model runs Meta's SAM weights).
    ``source_weight``: weight of the supervised loss on the labelled source set (when one is given).
    ``train_encoder``: also train the (normally frozen) SAM encoder.
    """

    epochs: int = 10
    batch_size: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    ema_decay: float = 0.99
    keep_fraction: float = 0.5
    max_threshold: float = 0.9
    min_threshold: float = 0.0
    threshold_every: int = 1
    refine_masks: bool | None = None
    photometric: bool = True
    source_weight: float = 1.0
    train_encoder: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_counts(self, ("threshold_every",))
        v = self.warmup_steps
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {v!r}")
        for name in ("lr", "weight_decay", "source_weight", "ema_decay", "keep_fraction", "max_threshold",
                     "min_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.source_weight < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0, source_weight >= 0; got {self.lr}, "
                             f"{self.weight_decay}, {self.source_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction!r}")
        if not 0.0 <= self.min_threshold <= self.max_threshold <= 1.0:
            raise ValueError(f"need 0 <= min_threshold <= max_threshold <= 1, got {self.min_threshold}, "
                             f"{self.max_threshold}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    #: Settings whose change makes a resumed run differ from the uninterrupted one.
    REPLAY_KEYS = ("batch_size", "lr", "weight_decay", "warmup_steps", "ema_decay", "keep_fraction",
                   "max_threshold", "min_threshold", "threshold_every", "refine_masks", "photometric",
                   "source_weight", "train_encoder", "seed", "epochs")  # fmt: skip


def check_output(out_dir: str | os.PathLike, resume: bool) -> None:
    """``--out``: a folder (or nothing yet); with ``resume`` it holds an unfinished run, without it none."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: expected a folder (created when missing)")
    last = out / LAST_NAME
    if resume and not last.is_file():
        raise FileNotFoundError(f"nothing to resume: {last} does not exist")
    if not resume and last.is_file():
        raise ValueError(f"{out} holds an unfinished run ({LAST_NAME}): pass --resume or another --out")


def check_source(dataset: str | None, path: str | os.PathLike | None) -> None:
    """The labelled source set: ``--source-dataset`` a known dataset, given with ``--source-path``, an existing folder."""
    from panosamic.specs import DATASET_NAMES

    if (dataset is None) != (path is None):
        raise ValueError("--source-dataset and --source-path go together: give both or neither")
    if dataset is None:
        return
    from panosamic.data.pinhole_layout import PINHOLE_SOURCE

    if dataset not in (*DATASET_NAMES, PINHOLE_SOURCE):
        raise ValueError(f"--source-dataset {dataset!r}: expected one of {', '.join(DATASET_NAMES)}, {PINHOLE_SOURCE}")
    if not Path(path).is_dir():  # type: ignore[arg-type]
        raise FileNotFoundError(f"--source-path {path}: folder not found")
