"""Unsupervised domain adaptation: self-train a model on unlabelled panoramas (``panosamic adapt``).

``adapt(model, inputs, out_dir, ...)`` (see :mod:`panosamic.adapt.api`); the pieces: class-balanced
pseudo-labels (:mod:`.pseudo_labels`), the mean teacher (:mod:`.teacher`), the strong views
(:mod:`.augment`), SAM mask refinement (:mod:`.masks`), the loop (:mod:`.trainer`). Importing this
package does not import torch (the CLI's ``--help`` stays fast); the names load on first use.
"""

from __future__ import annotations

from panosamic.adapt.settings import AdaptSettings
from panosamic.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "adapt": "panosamic.adapt.api",
    "AdaptResult": "panosamic.adapt.trainer",
    "AdaptTrainer": "panosamic.adapt.trainer",
    "TargetPanoramas": "panosamic.adapt.data",
}

__all__ = ["AdaptSettings", *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)
