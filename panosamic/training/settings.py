"""``LoopSettings``: what the training engine is told, the run settings every job shares.

A job's settings class extends it (``AdaptSettings``, ``DistillSettings``): it gives its own
defaults for ``epochs`` and ``batch_size`` (and any other loop setting it chooses otherwise) and
adds its own fields; the engine reads the loop's part of it. No torch import here: the command
lines read their flags' defaults from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from panosamic.config.checks import check_counts

__all__ = ["LoopSettings"]


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
        check_counts(self, ("epochs", "batch_size", "eval_every", "log_every"), optional=("max_steps", "limit_batches"))
        for name in ("seed", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
