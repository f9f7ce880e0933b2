"""Unsupervised domain adaptation: self-train a model on unlabelled panoramas (``panosamic adapt``).

``adapt(model, inputs, out_dir, ...)`` (see :mod:`panosamic.adapt.api`); the pieces: class-balanced
pseudo-labels (:mod:`.pseudo_labels`), the mean teacher (:mod:`.teacher`), the strong views
(:mod:`.augment`), SAM mask refinement (:mod:`.masks`), the loop (:mod:`.trainer`). Importing this
package does not import torch (the CLI's ``--help`` stays fast); the names load on first use.
"""

from __future__ import annotations

from panosamic.adapt.settings import AdaptSettings
from panosamic.lazy import lazy_dir, lazy_getattr, lazy_names

_LAZY = {
    "panosamic.adapt.api": ("adapt",),
    "panosamic.adapt.trainer": ("AdaptResult", "AdaptTrainer"),
    "panosamic.adapt.data": ("TargetPanoramas",),
}

__all__ = ["AdaptSettings", *lazy_names(_LAZY)]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(__name__)
