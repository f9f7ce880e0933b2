"""``LoopSettings``: what the training engine is told, the run settings every job shares.

A job's settings class extends it (``AdaptSettings``, ``DistillSettings``): it gives its own
defaults for ``epochs`` and ``batch_size`` (and any other loop setting it chooses otherwise) and
adds its own fields; the engine reads the loop's part of it. No torch import here: the command
lines read their flags' defaults from these classes.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from panosamic.config.checks import check_counts

__all__ = ["COUNTS", "NON_NEGATIVE", "OPTIONAL_COUNTS", "LoopSettings", "check_loop_flags"]

#: The loop's settings that are integers >= 1, those that may also be None, and its integers >= 0.
COUNTS = ("epochs", "batch_size", "eval_every", "log_every")
OPTIONAL_COUNTS = ("max_steps", "limit_batches")
NON_NEGATIVE = ("seed", "workers")

S = TypeVar("S", bound="LoopSettings")


@dataclass(frozen=True)
class LoopSettings:
    """What the loop is told (the flags every training job shares)."""

    epochs: int
    batch_size: int
    seed: int = 0
    workers: int = 0
    max_steps: int | None = None
    limit_batches: int | None = None
    eval_every: int = 1
    log_every: int = 5
    keep_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_counts(self, COUNTS, optional=OPTIONAL_COUNTS)
        for name in NON_NEGATIVE:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, **values: Any) -> S:
        """The settings from a command's flags: each flag named as a field gives it; ``values`` give
        the rest (and win: a flag whose value is translated, e.g. ``--device auto`` -> None)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **values})


def check_loop_flags(args: argparse.Namespace) -> None:
    """The loop's flags a command has (``--epochs``, ``--batch-size``, ``--seed``, ...): each refused
    with one line naming the flag, before any work (the job's ``check(args)``)."""
    from panosamic.training.checks import check_number

    for name in (*COUNTS, *OPTIONAL_COUNTS, *NON_NEGATIVE):
        if hasattr(args, name):
            minimum = 0 if name in NON_NEGATIVE else 1
            check_number("--" + name.replace("_", "-"), getattr(args, name), minimum=minimum, integer=True)
