"""Self-training on unlabelled target panoramas with a mean teacher (``panosamic adapt``).

Every step: the teacher (EMA of the student) labels the panoramas as they are (the weak view); its
argmax is kept where its confidence reaches the class's threshold (:mod:`.pseudo_labels`), optionally
refined with SAM's masks; the student learns the kept labels on a strongly augmented view
(:mod:`.augment`), plus the labels of a labelled source batch when a source set is given; then the
teacher takes an EMA step. The thresholds are re-estimated from a teacher pass every
``threshold_every`` epochs.

The loop is the training engine (:mod:`panosamic.training.engine`): the batch order is a function
of (seed, epoch), the randomness is re-seeded per epoch, the views are functions of
(seed, epoch, sample), checkpoints are written atomically with the RNG state, so ``resume`` at an
epoch boundary or mid-epoch repeats the uninterrupted run; the same loss lines,
``train_log.jsonl`` and ``train_log.png`` as ``train``; DDP under torchrun. The adapted model is
named honestly: ``<source name>-adapted``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from panosamic.adapt.augment import PhotometricAugmentation, StrongAugmentation
from panosamic.adapt.data import collate_target
from panosamic.adapt.masks import MASKS_NAME, MaskCache
from panosamic.adapt.pseudo_labels import (
    ConfidenceHistogram,
    class_thresholds,
    make_pseudo_labels,
    refine_pseudo_labels,
)
from panosamic.adapt.settings import AdaptSettings, check_output
from panosamic.adapt.teacher import ema_update, make_teacher
from panosamic.constants import IGNORE_INDEX
from panosamic.distributed import DistContext, ShardSampler, all_reduce_sum, wrap_ddp
from panosamic.evaluation.validation import move_inputs
from panosamic.hub.checkpoint import model_entries, read_model_entries
from panosamic.runs import LAST_NAME
from panosamic.specs import SAM_VITS
from panosamic.training import checkpoint as ckpt_mod
from panosamic.training.engine import Engine, StepOutput, Task
from panosamic.training.optim import build_adamw

__all__ = ["ADAPTED_NAME", "ADAPTED_SUFFIX", "AdaptResult", "AdaptTrainer", "adapted_name"]

#: The final training-style checkpoint of a run (the teacher's weights).
ADAPTED_NAME = "adapted.pth"
#: Appended to the source model's name.
ADAPTED_SUFFIX = "-adapted"


@dataclass
class AdaptResult:
    out_dir: Path
    global_step: int
    finished: bool
    thresholds: list[float]


def adapted_name(config: Any) -> str:
    """``<source variant name>-adapted`` (once, however often a model is adapted)."""
    name = str(config.variant_name)
    return name if name.endswith(ADAPTED_SUFFIX) else name + ADAPTED_SUFFIX


def _view_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, 7, int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class AdaptTrainer(Task):
    """Set up with :meth:`__init__` (every check happens there), then :meth:`fit`. The loop is the
    :class:`~panosamic.training.engine.Engine`'s; this class supplies the step, the EMA and the payload."""

    phase = "adapt"

    def __init__(self, model: torch.nn.Module, target: Dataset, out_dir: str | Path, settings: AdaptSettings, *,
                 source: Dataset | None = None, masks: MaskCache | None = None, resume: bool = False,
                 ctx: DistContext | None = None, labeller: torch.nn.Module | None = None) -> None:
        self.s = s = settings
        self.ctx = ctx = ctx or DistContext()
        self.out_dir = Path(out_dir)
        self.target, self.source, self.masks = target, source, masks
        if masks is not None and len(masks) != len(target):
            raise ValueError(f"{len(masks)} mask sets for {len(target)} target panoramas")
        check_output(self.out_dir, resume)
        self.train_set, self.collate = target, collate_target
        self.engine = Engine(self, s, ctx, run_dir=self.out_dir)  # the settings' loop part (LoopSettings)
        self.iters_per_epoch = self.engine.iters_per_epoch
        self.num_classes = int(model.num_classes)
        source_name = model.config.variant_name
        model.config = model.config.replace(name=adapted_name(model.config))  # an honest name for the result
        self.student = model.to(ctx.device).train()
        self.class_names = self.student.config.class_names
        # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32), as in training
        self.student.configure_inference(precision=s.precision)
        if s.train_encoder:
            self.student.image_encoder.requires_grad_(True)
        self.teacher = make_teacher(self.student)
        # a fixed model that makes the pseudo-labels instead of the mean teacher (e.g. SAM 3 with your classes)
        self.labeller = None if labeller is None else labeller.to(ctx.device).eval().requires_grad_(False)
        self.optimizer, self.scheduler = build_adamw(self.student.parameters(), s.lr, s.weight_decay, s.warmup_steps)
        self.net = wrap_ddp(self.student, ctx)
        photometric = PhotometricAugmentation() if s.photometric else None
        self.strong = StrongAugmentation(photometric=photometric)
        self.thresholds = torch.full((self.num_classes,), s.max_threshold)
        if resume:
            self.engine.resume(ckpt_mod.load_checkpoint(self.out_dir / LAST_NAME))
        self.engine.header = f"adapting {source_name} -> {self.teacher.config.name}"

    # ------------------------------------------------------------------ pseudo-labels
    @torch.no_grad()
    def estimate_thresholds(self) -> torch.Tensor:
        """Class-balanced thresholds from a teacher pass over the target set (all ranks together)."""
        hist = ConfidenceHistogram(self.num_classes, device=self.ctx.device)
        loader = DataLoader(self.target, batch_size=self.s.batch_size, collate_fn=collate_target,
                            sampler=ShardSampler(len(self.target), self.ctx.rank, self.ctx.world_size),
                            num_workers=self.s.workers)
        for inputs, _ in loader:
            probs, valid = self._teacher_probs(move_inputs(inputs, self.ctx.device))
            hist.update(probs, valid)
        all_reduce_sum(hist.counts)
        return class_thresholds(hist.counts, self.s.keep_fraction, self.s.max_threshold, self.s.min_threshold)

    def _teacher_probs(self, inputs: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = (self.teacher if self.labeller is None else self.labeller)(inputs)
        probs = torch.stack([o["sem_preds"] for o in outs]).float().softmax(1)
        valid = torch.stack([x["image"].sum(0) > 0 for x in inputs])
        return probs, valid

    @torch.no_grad()
    def pseudo_labels(self, inputs: list[dict[str, torch.Tensor]], indices: list[int]) -> torch.Tensor:
        """``B x H x W`` pseudo-labels of a batch (weak view = the panoramas as they are)."""
        return self._pseudo_labels(inputs, indices)[0]

    @torch.no_grad()
    def _pseudo_labels(self, inputs: list[dict[str, torch.Tensor]],
                       indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo-labels and the per-class counts of the teacher's argmax over the scanned pixels."""
        probs, valid = self._teacher_probs(inputs)
        predicted = torch.bincount(probs.argmax(1)[valid], minlength=self.num_classes)
        labels = make_pseudo_labels(probs, self.thresholds.to(probs.device), valid)
        if self.masks is not None:
            for b, i in enumerate(indices):
                refined = refine_pseudo_labels(labels[b].cpu(), self.masks[i]).to(labels.device)
                labels[b] = torch.where(valid[b], refined, torch.full_like(refined, IGNORE_INDEX))
        return labels, predicted

    # ------------------------------------------------------------------ one step
    def _source_batch(self, epoch: int, step_in_epoch: int) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        """The labelled source batch of a step: a seeded permutation per epoch, cycled."""
        from panosamic.data import collate_panoramas

        n, b, w = len(self.source), self.s.batch_size, self.ctx.world_size
        g = torch.Generator().manual_seed(self.s.seed * 1_000_003 + epoch + 99_991)
        order = torch.randperm(n, generator=g).tolist()
        start = step_in_epoch * b * w + self.ctx.rank * b
        inputs, labels = collate_panoramas([self.source[order[(start + j) % n]] for j in range(b)])
        return move_inputs(inputs, self.ctx.device), labels.to(self.ctx.device)

    def _losses(self, inputs: list[dict[str, torch.Tensor]], labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Cross-entropy of the student on each group of ``labels`` (target, then source), from one forward
        pass over all inputs (one pass per step, as DDP expects; the groups may differ in size)."""
        outs = self.net(inputs)
        losses, start = [], 0
        for y in labels:
            lg = torch.stack([o["sem_preds"] for o in outs[start : start + y.shape[0]]]).float()
            start += y.shape[0]
            kept = (y != IGNORE_INDEX).any()
            losses.append(F.cross_entropy(lg, y, ignore_index=IGNORE_INDEX) if kept else lg.sum() * 0.0)
        return losses

    def start_epoch(self, engine: Engine, epoch: int, skip: int) -> None:
        if skip == 0 and epoch % self.s.threshold_every == 0:
            self.thresholds = self.estimate_thresholds().cpu()
            engine.log(epoch + 1, {f"adapt/threshold/{c}": float(t) for c, t in enumerate(self.thresholds)})
        if self.source is not None and hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)  # augmentations of the source set: a function of (seed, epoch, sample)

    def step(self, engine: Engine, batch: Any, epoch: int, step_in_epoch: int) -> StepOutput:
        """The student's loss on the strong views of the batch (and the source batch); the engine steps."""
        inputs, indices = move_inputs(batch[0], self.ctx.device), batch[1]
        labels, predicted = self._pseudo_labels(inputs, indices)
        views = [self.strong(x, y, _view_generator(self.s.seed, epoch, i))
                 for x, y, i in zip(inputs, labels, indices)]
        inputs, groups = [v[0] for v in views], [torch.stack([v[1] for v in views])]
        mixed = self.source is not None and self.s.source_weight > 0
        if mixed:
            src_inputs, src_labels = self._source_batch(epoch, step_in_epoch)
            inputs, groups = inputs + src_inputs, groups + [src_labels]
        losses = self._losses(inputs, groups)
        loss = losses[0] + (self.s.source_weight * losses[1] if mixed else 0.0)
        values = {"target_loss": float(losses[0].detach()), "kept": float((labels != IGNORE_INDEX).float().mean())}
        if mixed:
            values["source_loss"] = float(losses[1].detach())
        return StepOutput(loss, values, predicted=predicted)

    def after_step(self, engine: Engine) -> None:
        ema_update(self.teacher, self.student, self.s.ema_decay)

    # ------------------------------------------------------------------ checkpoints
    def _student_state(self) -> dict[str, torch.Tensor]:
        sd = ckpt_mod.strip_ddp_prefix(self.student.state_dict())
        if self.s.train_encoder:
            return sd
        trainable = self.student.trainable_state_dict()
        return {k: v for k, v in sd.items() if k in trainable}

    def payload(self) -> dict[str, Any]:
        """The training-style part of a checkpoint whose ``model`` is the teacher (the adapted model)."""
        cfg = self.teacher.config
        return {
            "kind": "adapt",
            **model_entries(self.teacher, semantic_only=True),  # "model", "model_config"
            "student": self._student_state(), "thresholds": self.thresholds.clone(),
            "vit_model": cfg.vit, "modalities": list(cfg.modalities), "num_classes": cfg.num_classes,
            "class_names": None if cfg.class_names is None else list(cfg.class_names),
            "dataset": cfg.dataset, "fold": cfg.fold, "depth_threshold": cfg.depth_threshold,
            "adapt": self.s.to_dict(), "world_size": self.ctx.world_size, "num_target": len(self.target),
        }  # fmt: skip

    def load_payload(self, ck: Mapping[str, Any]) -> None:
        old = ck.get("adapt") or {}
        changed = {k: (old.get(k), getattr(self.s, k)) for k in AdaptSettings.REPLAY_KEYS
                   if k in old and old[k] != getattr(self.s, k)}
        if changed or ck.get("world_size", 1) != self.ctx.world_size:
            warnings.warn("resuming with different " + ", ".join(f"{k} ({a} -> {b})" for k, (a, b) in changed.items())
                          + " or process count: the continuation is not an exact replay", stacklevel=3)
        self.teacher.load_state_dict(read_model_entries(ck, str(self.out_dir / LAST_NAME)).state, strict=False)
        missing = self.student.load_state_dict(ck["student"], strict=False).missing_keys
        trainable = self.student.trainable_state_dict()
        if any(k in trainable for k in missing):
            raise ValueError(f"{self.out_dir / LAST_NAME} lacks student tensors, e.g. {missing[:3]}")
        self.thresholds = ck["thresholds"].float().cpu()

    # ------------------------------------------------------------------ run
    def fit(self) -> AdaptResult:
        r = self.engine.fit()
        return AdaptResult(self.out_dir, r.global_step, r.finished, [float(t) for t in self.thresholds])

    def finish(self, engine: Engine) -> None:
        """``adapted.pth`` (training-style, teacher weights) and the Hub layout (config.json + weights)."""
        if not self.ctx.is_main:
            return
        ck = engine.checkpoint(self.s.epochs, True, self.iters_per_epoch)
        for key in ("student", "optimizer", "lr_scheduler", "rng"):
            ck.pop(key)
        engine.save(ADAPTED_NAME, ck)
        self.teacher.save_pretrained(self.out_dir)
        if self.s.train_encoder and self.teacher.config.vit in SAM_VITS:
            warnings.warn(f"the Hub layout in {self.out_dir} holds Meta's SAM encoder, not the adapted one "
                          f"(--train-encoder): load {ADAPTED_NAME} instead", stacklevel=2)
        if self.masks is not None and not self.s.keep_last:
            (self.out_dir / MASKS_NAME).unlink(missing_ok=True)
        print(f"adapted model {self.teacher.config.name}: {self.out_dir / ADAPTED_NAME} and {self.out_dir} "
              "(Hub layout)")
