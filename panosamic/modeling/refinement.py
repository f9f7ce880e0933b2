"""Instance -> semantic refinement: every SAM mask takes the majority class of its pixels.

Post-processing only (not part of the forward). Spec: reference-architecture §5.3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["refine_labels", "refine_semantic_with_instances"]


def _mask_tensor(mask: Any, index: int) -> torch.Tensor:
    seg = mask.get("segmentation") if isinstance(mask, Mapping) else mask
    if seg is None:
        raise ValueError(f"instance mask {index} is a dict without a 'segmentation' entry")
    seg = torch.as_tensor(seg)
    if seg.ndim != 2:
        raise ValueError(f"instance mask {index} must be a 2-D (H, W) mask, got shape {tuple(seg.shape)}")
    return seg.bool()


def _area(mask: Any, seg: torch.Tensor) -> int:
    if isinstance(mask, Mapping) and mask.get("area") is not None:
        return int(mask["area"])
    return int(seg.sum())


def refine_labels(labels: torch.Tensor, instance_masks: Sequence[Any]) -> torch.Tensor:
    """Refine an ``H x W`` integer label map with instance masks (largest first).

    Each mask's pixels all get the most frequent class of the *unrefined* ``labels`` inside
    the mask (ties go to the smallest class id); smaller masks are applied later and win where
    masks overlap. ``instance_masks``: dicts with a ``segmentation`` (H x W bool) and
    optionally ``area``, or plain H x W masks. Returns a new tensor; ``labels`` is unchanged.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    segs = [_mask_tensor(m, i) for i, m in enumerate(instance_masks)]
    for i, seg in enumerate(segs):
        if seg.shape != labels.shape:
            raise ValueError(
                f"instance mask {i} is {tuple(seg.shape)} but the semantic map is {tuple(labels.shape)}"
            )
    # Largest first; a stable sort keeps the given order among equal areas (the reference's
    # lists are already sorted by area, so this is the reference's order).
    order = sorted(range(len(segs)), key=lambda i: -_area(instance_masks[i], segs[i]))
    refined = labels.clone()
    num_bins = int(labels.max().item()) + 1 if labels.numel() else 1
    for i in order:
        seg = segs[i].to(labels.device)
        inside = labels[seg]
        inside = inside[inside >= 0]
        if inside.numel() == 0:
            continue
        majority = torch.bincount(inside.long(), minlength=num_bins).argmax()  # first max = smallest id
        refined[seg] = majority.to(refined.dtype)
    return refined


def refine_semantic_with_instances(sem_preds: torch.Tensor, instance_masks: Sequence[Any]) -> torch.Tensor:
    """Majority-vote refinement of semantic logits with instance masks (reference §5.3).

    ``sem_preds``: ``K x H x W`` (or ``1 x K x H x W``) class scores. Returns a one-hot tensor of
    the same shape and dtype holding the refined labels, or ``sem_preds`` itself when there are
    no masks.
    """
    if not isinstance(sem_preds, torch.Tensor):
        raise TypeError(f"sem_preds must be a torch.Tensor, got {type(sem_preds).__name__}")
    if sem_preds.ndim == 4 and sem_preds.shape[0] == 1:
        return refine_semantic_with_instances(sem_preds[0], instance_masks).unsqueeze(0)
    if sem_preds.ndim != 3:
        raise ValueError(f"sem_preds must be (K, H, W) or (1, K, H, W), got shape {tuple(sem_preds.shape)}")
    if len(instance_masks) == 0:
        return sem_preds
    num_classes = sem_preds.shape[0]
    refined = refine_labels(sem_preds.argmax(dim=0), instance_masks)
    one_hot = F.one_hot(refined, num_classes).permute(2, 0, 1)
    return one_hot.to(dtype=sem_preds.dtype if sem_preds.dtype.is_floating_point else torch.float32)
