"""Unsupervised domain adaptation: self-train a model on unlabelled panoramas (``panosamic adapt``).

``adapt(model, inputs, out_dir, ...)`` (see :mod:`panosamic.adapt.api`); the pieces: class-balanced
pseudo-labels (:mod:`.pseudo_labels`), the mean teacher (:mod:`.teacher`), the strong views
(:mod:`.augment`), SAM mask refinement (:mod:`.masks`), the loop (:mod:`.trainer`). Importing this
package does not import torch (the CLI's ``--help`` stays fast); the names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from panosamic.adapt.settings import AdaptSettings

_LAZY = {
    "adapt": "panosamic.adapt.api",
    "AdaptResult": "panosamic.adapt.trainer",
    "AdaptTrainer": "panosamic.adapt.trainer",
    "TargetPanoramas": "panosamic.adapt.data",
}

__all__ = ["AdaptSettings", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'panosamic.adapt' has no attribute {name!r}")
