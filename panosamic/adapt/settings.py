"""What an adaptation run is told (``panosamic adapt`` flags); no torch import here."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panosamic.constants import PRECISIONS
from panosamic.runs import LAST_NAME
from panosamic.training.settings import LoopSettings, bounded

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
    lr: float = bounded(1e-4, above=0)
    weight_decay: float = bounded(1e-4, minimum=0)
    warmup_steps: int = bounded(10, minimum=0, integer=True)
    ema_decay: float = bounded(0.99, minimum=0, below=1)
    keep_fraction: float = bounded(0.5, above=0, maximum=1)
    max_threshold: float = bounded(0.9, minimum=0, maximum=1)
    min_threshold: float = bounded(0.0, minimum=0, maximum=1)
    threshold_every: int = bounded(1, minimum=1, integer=True)
    refine_masks: bool | None = None
    photometric: bool = True
    source_weight: float = bounded(1.0, minimum=0)
    train_encoder: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        super().__post_init__()  # the loop's settings and the ranges above
        if self.min_threshold > self.max_threshold:
            raise ValueError(f"need 0 <= min_threshold <= max_threshold <= 1, got {self.min_threshold}, "
                             f"{self.max_threshold}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    #: Settings whose change makes a resumed run differ from the uninterrupted one.
    REPLAY_KEYS = ("batch_size", "lr", "weight_decay", "warmup_steps", "ema_decay", "keep_fraction",
                   "max_threshold", "min_threshold", "threshold_every", "refine_masks", "photometric",
                   "source_weight", "train_encoder", "seed", "epochs", "limit_batches")  # fmt: skip


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
