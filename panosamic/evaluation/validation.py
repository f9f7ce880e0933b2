"""One pass of a model over a dataset split: confusion matrix, loss, per-sample scores.

Used by training (validation each epoch) and by ``panosamic evaluate``. Samples are visited in
order, never shuffled or dropped; under DDP each rank takes every ``world_size``-th sample
(:class:`~panosamic.distributed.ShardSampler`, no padding) and the confusion
matrices, losses and counts are summed over ranks, so every sample is scored exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from panosamic.distributed import DistContext, ShardSampler, all_reduce_sum
from panosamic.evaluation.metrics import ConfusionMatrix, RowConfusion, SegmentationMetrics
from panosamic.progress import Progress

__all__ = ["ValidationResult", "move_inputs", "roll_inputs", "run_validation", "unwrap"]

#: Called per sample on the rank that scored it: (dataset index, predicted labels HxW, labels HxW).
SampleCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class ValidationResult:
    metrics: SegmentationMetrics
    loss: float | None  # mean loss per batch (None without a loss function)
    num_samples: int
    sample_miou: dict[int, float] = field(default_factory=dict)  # dataset index -> per-image mIoU (all ranks)
    row_confusion: np.ndarray | None = None  # (H, K, K) int64 per image row (``latitude_rows=True``)
    seam: Any = None  # panosamic.evaluation.sphere.SeamConsistency (``seam_check=True``)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def move_inputs(inputs: Sequence[dict[str, torch.Tensor]], device: torch.device) -> list[dict[str, torch.Tensor]]:
    return [{k: v.to(device, non_blocking=True) for k, v in s.items()} for s in inputs]


def _gather_dict(d: dict[int, float]) -> dict[int, float]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, d)
        return {k: v for part in parts for k, v in part.items()}
    return d


def roll_inputs(inputs: Sequence[dict[str, torch.Tensor]], shift: int) -> list[dict[str, torch.Tensor]]:
    """Every modality of every sample rolled by ``shift`` columns (a rotation about the vertical axis)."""
    return [{k: v.roll(shift, dims=-1) for k, v in s.items()} for s in inputs]


class _SeamCounter:
    """Agreement of the unrolled and the rolled-back prediction, and the rolled run's confusion."""

    def __init__(self, num_classes: int, band_deg: float, device: torch.device):
        self.band_deg = band_deg
        self.counts = torch.zeros(4, dtype=torch.int64, device=device)  # agree, total, band agree, band total
        self.rolled = ConfusionMatrix(num_classes, device=device)

    def update(self, preds: torch.Tensor, rolled_back: torch.Tensor, labels: torch.Tensor) -> None:
        from panosamic.evaluation.sphere import seam_columns

        same = preds == rolled_back
        band = torch.from_numpy(seam_columns(preds.shape[-1], self.band_deg)).to(preds.device)
        self.counts += torch.stack([same.sum(), torch.tensor(same.numel(), device=same.device),
                                    same[..., band].sum(), torch.tensor(same[..., band].numel(), device=same.device)])
        self.rolled.update(rolled_back, labels)

    def result(self, class_names: Sequence[str]) -> Any:
        from panosamic.evaluation.sphere import SeamConsistency

        all_reduce_sum(self.counts)
        self.rolled.all_reduce()
        agree, total, band_agree, band_total = (int(v) for v in self.counts.cpu())
        return SeamConsistency(agree, total, band_agree, band_total, self.band_deg, self.rolled.compute(class_names))


def _sample_miou(pred: torch.Tensor, target: torch.Tensor, k: int) -> float:
    cm = ConfusionMatrix(k, device=pred.device)
    cm.update(pred, target)
    return cm.compute().miou


@torch.no_grad()
def run_validation(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    num_classes: int,
    ctx: DistContext | None = None,
    batch_size: int = 1,
    workers: int = 0,
    loss_fn: Any | None = None,
    precision: str = "fp32",
    class_names: Sequence[str] = (),
    progress: bool = False,
    refine: bool = False,
    on_sample: SampleCallback | None = None,
    collate_fn: Callable | None = None,
    desc: str = "validate",
    latitude_rows: bool = False,
    seam_check: bool = False,
    seam_band_deg: float | None = None,
) -> ValidationResult:
    """Score ``model`` on every sample of ``dataset`` (the model is put in eval mode and restored).

    ``latitude_rows``: accumulate one confusion matrix per image row (``result.row_confusion``, for
    :func:`panosamic.evaluation.sphere.sphere_metrics`; the planar metrics are their sum, unchanged).
    ``seam_check``: one more forward per sample on the panorama rolled by half its width, its
    prediction rolled back and compared with the unrolled one (``result.seam``).
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    ctx = ctx or DistContext()
    net = unwrap(model)
    was_training = net.training
    net.eval()
    if collate_fn is None:
        from panosamic.data import collate_panoramas as collate_fn
    sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate_fn, drop_last=False
    )
    cm = RowConfusion(num_classes, device=ctx.device) if latitude_rows else ConfusionMatrix(num_classes, device=ctx.device)
    seam = None
    if seam_check:
        from panosamic.evaluation.sphere import DEFAULT_SEAM_BAND_DEG

        seam = _SeamCounter(num_classes, DEFAULT_SEAM_BAND_DEG if seam_band_deg is None else seam_band_deg, ctx.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    counts = torch.zeros(2, dtype=torch.int64, device=ctx.device)  # samples, batches
    per_sample: dict[int, float] = {}
    refine_fn = None
    if refine:
        from panosamic.modeling.refinement import refine_semantic_with_instances as refine_fn
    # a bar on a terminal, else (or without progress) a line every few seconds; other ranks are silent
    bar = Progress(len(sampler), desc, "pano", bar=progress, silent=not ctx.is_main)
    indices = iter(sampler)
    try:
        for inputs, labels in loader:
            inputs = move_inputs(inputs, ctx.device)
            labels = labels.to(ctx.device)
            # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32)
            with torch.no_grad(), net.inference_options_applied(precision=precision):
                outs = net(inputs)
            logits = torch.stack([o["sem_preds"] for o in outs]).float()
            if loss_fn is not None:
                loss_sum += float(loss_fn(logits, labels).total)
            if refine_fn is not None:
                logits = torch.stack([refine_fn(lg, o.get("instance_masks", [])) for lg, o in zip(logits, outs)])
            preds = logits.argmax(1)
            cm.update(preds, labels)
            if seam is not None:
                shift = preds.shape[-1] // 2
                with torch.no_grad(), net.inference_options_applied(precision=precision):
                    outs_r = net(roll_inputs(inputs, shift))
                logits_r = torch.stack([o["sem_preds"] for o in outs_r]).float()
                if refine_fn is not None:
                    logits_r = torch.stack([refine_fn(lg, o.get("instance_masks", [])) for lg, o in zip(logits_r, outs_r)])
                seam.update(preds, logits_r.argmax(1).roll(-shift, dims=-1), labels)
            for b in range(preds.shape[0]):
                idx = next(indices)
                per_sample[idx] = _sample_miou(preds[b], labels[b], num_classes)
                if on_sample is not None:
                    on_sample(idx, preds[b], labels[b])
            counts[0] += preds.shape[0]
            counts[1] += 1
            bar.update(preds.shape[0])
    finally:
        bar.close()
        net.train(was_training)
    cm.all_reduce()
    per_sample = _gather_dict(per_sample)
    all_reduce_sum(loss_sum)
    all_reduce_sum(counts)
    n_samples, n_batches = int(counts[0]), int(counts[1])
    if n_samples != len(dataset):  # every sample exactly once
        raise RuntimeError(f"validation scored {n_samples} samples, the split has {len(dataset)}")
    loss = float(loss_sum) / n_batches if loss_fn is not None and n_batches else None
    return ValidationResult(
        metrics=cm.compute(class_names), loss=loss, num_samples=n_samples, sample_miou=per_sample,
        row_confusion=cm.rows() if isinstance(cm, RowConfusion) else None,
        seam=seam.result(class_names) if seam is not None else None,
    )


def per_sample_scores(result: ValidationResult, names: Sequence[str]) -> list[dict[str, Any]]:
    """``[{"sample": name, "miou": x}, ...]`` in dataset order (nan -> None)."""
    return [
        {"sample": names[i], "miou": None if not np.isfinite(v) else float(v)}
        for i, v in sorted(result.sample_miou.items())
    ]
