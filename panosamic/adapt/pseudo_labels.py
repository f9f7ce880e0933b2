"""Pseudo-labels from a teacher's class probabilities: class-balanced confidence thresholds, mask refinement.

The thresholds are class-balanced (as in class-balanced self-training): for every class ``c`` the
teacher's confidences of the pixels it assigns to ``c`` are collected in a histogram, and the
threshold of ``c`` is the confidence above which the most confident ``keep_fraction`` of those pixels
lie, capped at ``max_threshold`` (so confident pixels always count). A rare or hard class with low
confidences keeps its own best pixels instead of being drowned by a single global threshold.
Pixels below their class's threshold, and unscanned (black) pixels, are ignored (:data:`IGNORE_INDEX`).

Optionally SAM's automatic instance masks refine the pseudo-labels: every mask takes the majority
class of its kept pixels (:func:`panosamic.modeling.refinement.refine_labels`), which
also fills ignored pixels inside a mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from panosamic.constants import IGNORE_INDEX

__all__ = ["ConfidenceHistogram", "class_thresholds", "make_pseudo_labels", "refine_pseudo_labels"]

#: Histogram bins over [0, 1] of the teacher's confidences.
DEFAULT_BINS = 1000


class ConfidenceHistogram:
    """Per-class histograms of the maximum class probability of pixels, keyed by their argmax class."""

    def __init__(self, num_classes: int, bins: int = DEFAULT_BINS, device: torch.device | str = "cpu"):
        if num_classes < 1 or bins < 2:
            raise ValueError(f"need num_classes >= 1 and bins >= 2, got {num_classes}, {bins}")
        self.num_classes, self.bins = int(num_classes), int(bins)
        self.counts = torch.zeros(num_classes, bins, dtype=torch.int64, device=device)

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Count ``probs`` (``K x H x W`` or ``B x K x H x W`` probabilities); ``valid``: pixels to count."""
        if probs.ndim == 3:
            probs = probs.unsqueeze(0)
            valid = None if valid is None else valid.unsqueeze(0)
        if probs.ndim != 4 or probs.shape[1] != self.num_classes:
            raise ValueError(f"probs must be (B, {self.num_classes}, H, W), got {tuple(probs.shape)}")
        conf, label = probs.max(1)
        if valid is not None:
            conf, label = conf[valid], label[valid]
        b = (conf.flatten().clamp(0, 1) * self.bins).long().clamp(max=self.bins - 1)
        flat = label.flatten().to(self.counts.device) * self.bins + b.to(self.counts.device)
        self.counts += torch.bincount(flat, minlength=self.num_classes * self.bins).view(self.num_classes, self.bins)


def class_thresholds(
    counts: torch.Tensor, keep_fraction: float, max_threshold: float = 0.9, min_threshold: float = 0.0
) -> torch.Tensor:
    """float32 ``(K,)`` thresholds from per-class confidence histograms ``counts`` (``K x bins``).

    ``t_c`` is the lower edge of the histogram bin at which the most confident ``keep_fraction`` of
    class ``c``'s pixels is reached, clipped to ``[min_threshold, max_threshold]``; a class with no
    pixel gets ``max_threshold``.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
    if not 0.0 <= min_threshold <= max_threshold <= 1.0:
        raise ValueError(f"need 0 <= min_threshold <= max_threshold <= 1, got {min_threshold}, {max_threshold}")
    counts = counts.to(torch.float64)
    bins = counts.shape[1]
    from_top = counts.flip(1).cumsum(1)  # pixels with confidence >= lower edge of bin (bins - 1 - j)
    total = counts.sum(1, keepdim=True)
    reached = from_top >= keep_fraction * total - 1e-9
    first = reached.to(torch.int64).argmax(1)  # first j (from the top) where enough pixels are kept
    edges = (bins - 1 - first).to(torch.float64) / bins
    t = edges.clamp(min_threshold, max_threshold)
    t[total[:, 0] == 0] = max_threshold
    return t.to(torch.float32)


def make_pseudo_labels(
    probs: torch.Tensor, thresholds: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """int64 labels (``H x W`` or ``B x H x W``): the argmax class where its probability reaches the
    class's threshold, :data:`IGNORE_INDEX` elsewhere and outside ``valid``."""
    if probs.ndim not in (3, 4):
        raise ValueError(f"probs must be (K, H, W) or (B, K, H, W), got {tuple(probs.shape)}")
    k_dim = probs.ndim - 3
    if thresholds.shape != (probs.shape[k_dim],):
        raise ValueError(f"thresholds must have shape ({probs.shape[k_dim]},), got {tuple(thresholds.shape)}")
    conf, label = probs.max(k_dim)
    keep = conf >= thresholds.to(probs.device)[label]
    if valid is not None:
        keep &= valid.to(keep.device)
    return torch.where(keep, label, torch.full_like(label, IGNORE_INDEX))


def refine_pseudo_labels(labels: torch.Tensor, masks: Sequence[Any]) -> torch.Tensor:
    """Every instance mask (largest first, smaller ones win) takes the majority of its kept labels.

    ``masks``: ``H x W`` bool masks or SAM records with a ``segmentation``; ignored pixels do not vote
    and are filled inside a mask with kept pixels; a mask with no kept pixel changes nothing.
    """
    from panosamic.modeling.refinement import refine_labels

    if len(masks) == 0:
        return labels
    return refine_labels(labels, masks)
