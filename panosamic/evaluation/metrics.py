"""Semantic-segmentation metrics from one dataset-level int64 confusion matrix.

Every pixel of every sample is counted once into a ``K x K`` matrix (rows: ground truth,
columns: prediction); pixels labelled :data:`~panosamic.constants.IGNORE_INDEX` are left
out. IoU, recall ("accuracy") and pixel accuracy are computed from the summed matrix at the
end — the reference's dataset-level convention, not a mean of per-image scores — and the
means skip classes for which the ratio is undefined (IoU: zero union; recall: no labelled
pixel), as the reference's ``nanmean`` does. Counts are int64 (the reference counted in
float32, which stops being exact beyond 2**24 pixels per class).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from panosamic.constants import IGNORE_INDEX

__all__ = ["ConfusionMatrix", "SegmentationMetrics"]


@dataclass(frozen=True)
class SegmentationMetrics:
    """Scores derived from a confusion matrix (ratios in 0..1; ``nan`` where undefined)."""

    confusion: np.ndarray  # (K, K) int64, rows = ground truth, columns = prediction
    iou: np.ndarray  # (K,) per-class IoU, nan where the union is zero
    acc: np.ndarray  # (K,) per-class recall, nan where the class has no labelled pixel
    miou: float  # mean IoU over classes with a non-zero union
    macc: float  # mean recall over classes with labelled pixels
    pixel_acc: float  # correctly classified labelled pixels / labelled pixels
    class_names: tuple[str, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    @property
    def num_pixels(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self, include_confusion: bool = True) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""

        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        names = self.class_names or tuple(str(i) for i in range(self.num_classes))
        out: dict[str, Any] = {
            "miou": clean(self.miou),
            "macc": clean(self.macc),
            "pixel_acc": clean(self.pixel_acc),
            "num_pixels": self.num_pixels,
            "iou_per_class": {n: clean(v) for n, v in zip(names, self.iou)},
            "acc_per_class": {n: clean(v) for n, v in zip(names, self.acc)},
        }
        if include_confusion:
            out["confusion_matrix"] = self.confusion.tolist()
        return out


def _nanmean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else float("nan")


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str] = ()) -> SegmentationMetrics:
    """Per-class IoU / recall, their means and pixel accuracy from a ``K x K`` confusion matrix."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion matrix must be square (K x K), got shape {confusion.shape}")
    if class_names and len(class_names) != confusion.shape[0]:
        raise ValueError(f"{len(class_names)} class names given for a {confusion.shape[0]}-class confusion matrix")
    confusion = confusion.astype(np.int64, copy=False)
    inter = np.diag(confusion).astype(np.float64)
    target = confusion.sum(axis=1).astype(np.float64)
    pred = confusion.sum(axis=0).astype(np.float64)
    union = target + pred - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
        acc = np.where(target > 0, inter / np.where(target > 0, target, 1), np.nan)
    total = confusion.sum()
    pixel_acc = float(inter.sum() / total) if total > 0 else float("nan")
    return SegmentationMetrics(
        confusion=confusion.copy(),
        iou=iou,
        acc=acc,
        miou=_nanmean(iou),
        macc=_nanmean(acc),
        pixel_acc=pixel_acc,
        class_names=tuple(class_names),
    )


class ConfusionMatrix:
    """Accumulates a dataset-level int64 confusion matrix, on the device of the predictions.

    >>> cm = ConfusionMatrix(13)
    >>> cm.update(logits.argmax(1), labels)   # (B, H, W) or (H, W); labels -1 are ignored
    >>> cm.all_reduce()                       # under torch.distributed: sum over ranks
    >>> cm.compute(class_names).miou
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: ``pred`` class indices (or logits ``(B, K, H, W)``), ``target`` labels."""
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(f"pred and target must be tensors, got {type(pred).__name__}, {type(target).__name__}")
        if pred.is_floating_point():
            if target.dim() < 2 or pred.dim() != target.dim() + 1 or pred.shape[-3] != self.num_classes:
                raise ValueError(
                    f"floating-point pred is taken as logits (..., K={self.num_classes}, H, W) for target "
                    f"{tuple(target.shape)}; got {tuple(pred.shape)}"
                )
            pred = pred.argmax(dim=-3)
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        K = self.num_classes
        pred = pred.reshape(-1).to(device=self.matrix.device, dtype=torch.int64)
        target = target.reshape(-1).to(device=self.matrix.device, dtype=torch.int64)
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        if target.numel() == 0:
            return
        bad_t = (target < 0) | (target >= K)
        if bool(bad_t.any()):
            raise ValueError(
                f"labels must be in [0, {K}) or {self.ignore_index} (ignore); found {int(target[bad_t][0])}"
            )
        bad_p = (pred < 0) | (pred >= K)
        if bool(bad_p.any()):
            raise ValueError(f"predictions must be in [0, {K}); found {int(pred[bad_p][0])}")
        counts = torch.bincount(target * K + pred, minlength=K * K)
        self.matrix += counts.view(K, K)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts (same class count) into this one; returns self."""
        if not isinstance(other, ConfusionMatrix) or other.num_classes != self.num_classes:
            raise ValueError("can only merge a ConfusionMatrix with the same number of classes")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> None:
        """Sum the matrix over all ranks of the default process group (no-op without one)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def compute(self, class_names: Sequence[str] = ()) -> SegmentationMetrics:
        return metrics_from_confusion(self.matrix.cpu().numpy(), class_names)

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "matrix": self.matrix.cpu().clone()}
