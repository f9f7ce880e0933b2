"""``LoopSettings``: what the training engine is told, the run settings every job shares.

A job's settings class extends it (``AdaptSettings``, ``DistillSettings``): it gives its own
defaults for ``epochs`` and ``batch_size`` (and any other loop setting it chooses otherwise) and
adds its own fields; the engine reads the loop's part of it. A field declared with
:func:`bounded` states its range beside its default, once: the settings check it when built and
:func:`check_flags` checks the flag that gives it (``check(args)``, before any work). No torch
import here: the command lines read their flags' defaults from these classes.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from panosamic.config.checks import check_counts
from panosamic.training.checks import check_number

__all__ = ["COUNTS", "NON_NEGATIVE", "OPTIONAL_COUNTS", "LoopSettings", "bounded", "check_bounds", "check_flags"]

#: The loop's settings that are integers >= 1, those that may also be None, and its integers >= 0.
COUNTS = ("epochs", "batch_size", "eval_every", "log_every")
OPTIONAL_COUNTS = ("max_steps", "limit_batches")
NON_NEGATIVE = ("seed", "workers")

#: The key of a field's metadata that holds its range (:func:`bounded`).
_BOUNDS = "bounds"

S = TypeVar("S", bound="LoopSettings")


def bounded(default: Any, **bounds: Any) -> Any:
    """A settings field: its ``default`` and its range, :func:`~panosamic.training.checks.check_number`'s
    keywords (``minimum``, ``above``, ``maximum``, ``below``, ``integer``)."""
    return dataclasses.field(default=default, metadata={_BOUNDS: bounds})


def _ranges(cls: Any) -> dict[str, dict[str, Any]]:
    """The range of each field of ``cls`` that has one: the loop's counts and non-negative integers
    (for a :class:`LoopSettings`) and every field declared with :func:`bounded`."""
    out: dict[str, dict[str, Any]] = {}
    if isinstance(cls, type) and issubclass(cls, LoopSettings):
        out.update({name: {"minimum": 1, "integer": True} for name in (*COUNTS, *OPTIONAL_COUNTS)})
        out.update({name: {"minimum": 0, "integer": True} for name in NON_NEGATIVE})
    out.update({f.name: f.metadata[_BOUNDS] for f in dataclasses.fields(cls) if _BOUNDS in f.metadata})
    return out


def check_bounds(settings: Any) -> None:
    """Each field of ``settings`` declared with :func:`bounded` within its range, else one line naming it
    (``None`` only where the default is ``None``)."""
    for f in dataclasses.fields(settings):
        if _BOUNDS in f.metadata:
            check_number(f.name, getattr(settings, f.name), optional=f.default is None, **f.metadata[_BOUNDS])


def check_flags(args: argparse.Namespace, *classes: type) -> None:
    """The flags of ``args`` that give a field of ``classes`` with a range (``--epochs``, ``--seed``,
    a :func:`bounded` field's flag, ...): each refused with one line naming the flag."""
    for cls in classes:
        for name, bounds in _ranges(cls).items():
            if hasattr(args, name):
                check_number("--" + name.replace("_", "-"), getattr(args, name), **bounds)


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
        check_bounds(self)  # a job's own fields declared with bounded()

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, **values: Any) -> S:
        """The settings from a command's flags: each flag named as a field gives it; ``values`` give
        the rest (and win: a flag whose value is translated, e.g. ``--device auto`` -> None)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **values})
