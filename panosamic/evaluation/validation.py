"""One pass of a model over a dataset split: confusion matrix, loss, per-sample scores.

Used by training (validation each epoch) and by ``panosamic evaluate``. Samples are visited in
order, never shuffled or dropped; under DDP each rank takes every ``world_size``-th sample
(:class:`~panosamic.distributed.ShardSampler`, no padding) and the confusion
matrices, losses and counts are summed over ranks, so every sample is scored exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from panosamic.distributed import DistContext, ShardSampler, all_reduce_sum
from panosamic.evaluation.metrics import ConfusionMatrix, SegmentationMetrics
from panosamic.progress import Progress

__all__ = ["ValidationResult", "move_inputs", "run_validation", "unwrap"]

#: Called per sample on the rank that scored it: (dataset index, predicted labels HxW, labels HxW).
SampleCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class ValidationResult:
    metrics: SegmentationMetrics
    loss: float | None  # mean loss per batch (None without a loss function)
    num_samples: int
    sample_miou: dict[int, float] = field(default_factory=dict)  # dataset index -> per-image mIoU (all ranks)


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
) -> ValidationResult:
    """Score ``model`` on every sample of ``dataset`` (the model is put in eval mode and restored)."""
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
    cm = ConfusionMatrix(num_classes, device=ctx.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    counts = torch.zeros(2, dtype=torch.int64, device=ctx.device)  # samples, batches
    per_sample: dict[int, float] = {}
    refine_fn = None
    if refine:
        from panosamic.modeling.instance_semantic_fusion import refine_semantic_with_instances as refine_fn
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
        metrics=cm.compute(class_names), loss=loss, num_samples=n_samples, sample_miou=per_sample
    )


def per_sample_scores(result: ValidationResult, names: Sequence[str]) -> list[dict[str, Any]]:
    """``[{"sample": name, "miou": x}, ...]`` in dataset order (nan -> None)."""
    return [
        {"sample": names[i], "miou": None if not np.isfinite(v) else float(v)}
        for i, v in sorted(result.sample_miou.items())
    ]
