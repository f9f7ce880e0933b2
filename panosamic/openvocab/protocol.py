"""The zero-shot semantic protocol on SAM 3's instance outputs (the reference's baseline).

Per prompt: each instance's mask probability times its score (detection x presence), the maximum
over instances; per class: the maximum over its prompts. Per pixel: the strongest class, the
catch-all class (or ignore, -1, without one) where the strongest is below ``coverage_threshold``;
optionally a majority filter over the labels (wrapping at the ±180° seam).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["COVERAGE_THRESHOLD", "IGNORE", "class_scores", "label_logits", "labels_from_scores",
           "majority_smooth", "prompt_scores"]

#: Below this class score a pixel counts as covered by no class.
COVERAGE_THRESHOLD = 0.05
IGNORE = -1
#: Logit given to a pixel's final label in :func:`label_logits` (above any score in [0, 1]).
_CHOSEN = 2.0


def prompt_scores(mask_logits: torch.Tensor, logits: torch.Tensor, presence: torch.Tensor | None) -> torch.Tensor:
    """(B, Q, h, w) instance mask logits, (B, Q) detection logits, (B, 1) presence logits -> (B, h, w):
    the maximum over instances of sigmoid(mask) x sigmoid(logit) x sigmoid(presence)."""
    score = logits.float().sigmoid()
    if presence is not None:
        score = score * presence.float().sigmoid().reshape(-1, 1)
    if mask_logits.shape[1] == 0:
        return mask_logits.new_zeros(mask_logits.shape[0], *mask_logits.shape[2:]).float()
    return (mask_logits.float().sigmoid() * score[:, :, None, None]).amax(dim=1)


def class_scores(per_prompt: torch.Tensor, owners: Sequence[int], num_classes: int) -> torch.Tensor:
    """(P, ...) prompt scores -> (K, ...): each class's maximum over its prompts."""
    out = per_prompt.new_zeros(num_classes, *per_prompt.shape[1:])
    for k in range(num_classes):
        rows = [i for i, owner in enumerate(owners) if owner == k]
        if rows:
            out[k] = per_prompt[rows].amax(dim=0)
    return out


def majority_smooth(labels: torch.Tensor, num_classes: int, kernel: int) -> torch.Tensor:
    """The most frequent label in each ``kernel x kernel`` window (columns wrap at the seam, rows
    repeat at the poles); ignore (-1) votes as a label of its own. ``kernel`` <= 1: unchanged."""
    if kernel <= 1:
        return labels
    if kernel % 2 == 0:
        raise ValueError(f"the smoothing kernel must be odd, got {kernel}")
    shifted = (labels + 1).long()  # ignore -> 0
    onehot = F.one_hot(shifted, num_classes + 1).permute(2, 0, 1)[None].float()
    r = kernel // 2
    onehot = F.pad(onehot, (r, r, 0, 0), mode="circular")
    onehot = F.pad(onehot, (0, 0, r, r), mode="replicate")
    votes = F.avg_pool2d(onehot, kernel, stride=1)[0]
    # ties: keep the pixel's own label where it is among the winners
    best = votes.amax(0, keepdim=True)
    own = votes.gather(0, shifted[None]) >= best - 1e-6
    return torch.where(own[0], shifted, votes.argmax(0)) - 1


def labels_from_scores(scores: torch.Tensor, catch_all: int | None, *,
                       coverage_threshold: float = COVERAGE_THRESHOLD, smoothing: int = 0) -> torch.Tensor:
    """(K, H, W) class scores -> (H, W) int64 labels: the strongest class, the catch-all (else -1)
    where it is below ``coverage_threshold``, then the majority filter (``smoothing`` > 1)."""
    best, labels = scores.max(dim=0)
    labels = torch.where(best < coverage_threshold, catch_all if catch_all is not None else IGNORE, labels)
    return majority_smooth(labels, scores.shape[0], smoothing)


def label_logits(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-class logits whose argmax is ``labels`` wherever it is not ignore: the scores, with each
    pixel's label raised above every score. An ignored pixel keeps its scores (its strongest class)."""
    out = scores.float().clone()
    keep = labels >= 0
    idx = labels.clamp(min=0)[None]
    out.scatter_(0, idx, torch.where(keep[None], torch.full_like(out[:1], _CHOSEN), out.gather(0, idx)))
    return out
