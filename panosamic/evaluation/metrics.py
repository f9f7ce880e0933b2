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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from panosamic.constants import IGNORE_INDEX

__all__ = ["ConfusionMatrix", "RowConfusion", "SegmentationMetrics"]


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


def metrics_from_confusion(
    confusion: np.ndarray, class_names: Sequence[str] = (), *, exact: bool = True
) -> SegmentationMetrics:
    """Per-class IoU / recall, their means and pixel accuracy from a ``K x K`` confusion matrix.

    ``exact``: counts, taken as int64; ``exact=False``: weighted (float64) counts, e.g. the
    solid-angle-weighted confusion of :mod:`panosamic.evaluation.sphere`.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion matrix must be square (K x K), got shape {confusion.shape}")
    if class_names and len(class_names) != confusion.shape[0]:
        raise ValueError(f"{len(class_names)} class names given for a {confusion.shape[0]}-class confusion matrix")
    confusion = confusion.astype(np.int64 if exact else np.float64, copy=False)
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


def _flat_checked(pred: torch.Tensor, target: torch.Tensor, k: int, ignore_index: int, device) -> tuple:
    """Class indices of ``pred`` (logits: argmax over dim -3) and ``target``, flattened, as int64 on
    ``device``, with the mask of labelled pixels; out-of-range values are refused."""
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred and target must be tensors, got {type(pred).__name__}, {type(target).__name__}")
    if pred.is_floating_point():
        if target.dim() < 2 or pred.dim() != target.dim() + 1 or pred.shape[-3] != k:
            raise ValueError(
                f"floating-point pred is taken as logits (..., K={k}, H, W) for target "
                f"{tuple(target.shape)}; got {tuple(pred.shape)}"
            )
        pred = pred.argmax(dim=-3)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred = pred.reshape(-1).to(device=device, dtype=torch.int64)
    target = target.reshape(-1).to(device=device, dtype=torch.int64)
    valid = target != ignore_index
    t = target[valid]
    bad_t = (t < 0) | (t >= k)
    if bool(bad_t.any()):
        raise ValueError(f"labels must be in [0, {k}) or {ignore_index} (ignore); found {int(t[bad_t][0])}")
    p = pred[valid]
    bad_p = (p < 0) | (p >= k)
    if bool(bad_p.any()):
        raise ValueError(f"predictions must be in [0, {k}); found {int(p[bad_p][0])}")
    return pred, target, valid


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
        K = self.num_classes
        pred, target, valid = _flat_checked(pred, target, K, self.ignore_index, self.matrix.device)
        if not bool(valid.any()):
            return
        counts = torch.bincount(target[valid] * K + pred[valid], minlength=K * K)
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


class RowConfusion:
    """A confusion matrix per image row, ``(H, K, K)`` int64, summed over a split: its sum over rows is
    the planar :class:`ConfusionMatrix` (exactly), and :func:`panosamic.evaluation.sphere.sphere_metrics`
    derives the area-weighted and per-latitude-band scores from it. Every panorama of a split must have
    the same height (the rows are latitudes); the height is taken from the first update.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.matrix: torch.Tensor | None = None  # (H, K, K) once the height is known

    @property
    def height(self) -> int | None:
        return None if self.matrix is None else int(self.matrix.shape[0])

    def _allocate(self, height: int) -> None:
        k = self.num_classes
        self.matrix = torch.zeros(height, k, k, dtype=torch.int64, device=self.device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count ``(B, H, W)`` or ``(H, W)`` predictions (or logits ``(B, K, H, W)``) against labels."""
        if target.dim() < 2:
            raise ValueError(f"labels must be (H, W) or (B, H, W), got shape {tuple(target.shape)}")
        h, w = int(target.shape[-2]), int(target.shape[-1])
        if self.matrix is None:
            self._allocate(h)
        elif h != self.height:
            raise ValueError(
                f"a panorama of height {h} after ones of height {self.height}: the per-row (latitude) scores need "
                "every panorama of a split at one height"
            )
        K = self.num_classes
        pred, target, valid = _flat_checked(pred, target, K, self.ignore_index, self.device)
        if not bool(valid.any()):
            return
        rows = torch.arange(h, device=self.device, dtype=torch.int64).repeat_interleave(w).repeat(target.numel() // (h * w))
        index = (rows[valid] * K + target[valid]) * K + pred[valid]
        assert self.matrix is not None
        self.matrix += torch.bincount(index, minlength=h * K * K).view(h, K, K)

    def all_reduce(self) -> None:
        """Sum over the ranks of the default process group (a rank that saw no sample takes the others' height)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        height = torch.tensor([self.height or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(height, op=dist.ReduceOp.MAX)
        if self.matrix is None and int(height) > 0:
            self._allocate(int(height))
        if self.matrix is not None:
            if self.height != int(height):
                raise ValueError(f"ranks saw panoramas of different heights ({self.height} and {int(height)})")
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def rows(self) -> np.ndarray:
        """The ``(H, K, K)`` int64 counts (``(0, K, K)`` before any update)."""
        k = self.num_classes
        return np.zeros((0, k, k), np.int64) if self.matrix is None else self.matrix.cpu().numpy()

    def planar(self) -> np.ndarray:
        """The planar ``(K, K)`` int64 confusion: the sum over rows."""
        return self.rows().sum(axis=0, dtype=np.int64)

    def compute(self, class_names: Sequence[str] = ()) -> SegmentationMetrics:
        """The planar scores (the reference's)."""
        return metrics_from_confusion(self.planar(), class_names)
