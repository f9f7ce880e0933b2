"""Self-training on unlabelled target panoramas with a mean teacher (``panosamic adapt``).

Every step: the teacher (EMA of the student) labels the panoramas as they are (the weak view); its
argmax is kept where its confidence reaches the class's threshold (:mod:`.pseudo_labels`), optionally
refined with SAM's masks; the student learns the kept labels on a strongly augmented view
(:mod:`.augment`), plus the labels of a labelled source batch when a source set is given; then the
teacher takes an EMA step. The thresholds are re-estimated from a teacher pass every
``threshold_every`` epochs.

The machinery is the training one (:mod:`panosamic.training`): the batch order is a function of
(seed, epoch) (:class:`~panosamic.distributed.GlobalBatchSampler`), the randomness is
re-seeded per epoch, the views are functions of (seed, epoch, sample), checkpoints are written
atomically with the RNG state, so ``resume`` at an epoch boundary or mid-epoch repeats the
uninterrupted run; DDP under torchrun; a JSONL log (:class:`~panosamic.evaluation.report.RunLogger`).
"""

from __future__ import annotations

import math
import time
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
from panosamic.adapt.pseudo_labels import ConfidenceHistogram, class_thresholds, make_pseudo_labels
from panosamic.adapt.pseudo_labels import refine_pseudo_labels
from panosamic.adapt.settings import AdaptSettings
from panosamic.adapt.teacher import ema_update, make_teacher
from panosamic.constants import IGNORE_INDEX
from panosamic.evaluation.report import RunLogger
from panosamic.evaluation.validation import move_inputs
from panosamic.runs import LAST_NAME, timestamp
from panosamic.specs import SAM_VITS
from panosamic.training import checkpoint as ckpt_mod
from panosamic.distributed import DistContext, GlobalBatchSampler, ShardSampler, all_reduce_sum, barrier
from panosamic.training.engine import seed_everything

__all__ = ["AdaptResult", "AdaptTrainer", "ADAPTED_NAME"]

#: The final training-style checkpoint of a run (the teacher's weights).
ADAPTED_NAME = "adapted.pth"


@dataclass
class AdaptResult:
    out_dir: Path
    global_step: int
    finished: bool
    thresholds: list[float]


def _view_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, 7, int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class AdaptTrainer:
    """Set up with :meth:`__init__` (every check happens there), then :meth:`fit`."""

    def __init__(self, model: torch.nn.Module, target: Dataset, out_dir: str | Path, settings: AdaptSettings, *,
                 source: Dataset | None = None, masks: MaskCache | None = None, resume: bool = False,
                 ctx: DistContext | None = None) -> None:
        self.s = s = settings
        self.ctx = ctx = ctx or DistContext()
        self.out_dir = Path(out_dir)
        self.target, self.source, self.masks = target, source, masks
        if masks is not None and len(masks) != len(target):
            raise ValueError(f"{len(masks)} mask sets for {len(target)} target panoramas")
        last = self.out_dir / LAST_NAME
        if resume and not last.is_file():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist")
        if not resume and last.is_file():
            raise ValueError(f"{self.out_dir} holds an unfinished run ({LAST_NAME}): pass --resume or another --out")
        self.sampler = GlobalBatchSampler(len(target), s.batch_size, ctx.rank, ctx.world_size, seed=s.seed)
        self.iters_per_epoch = self.sampler.batches_per_epoch
        if self.iters_per_epoch < 1:
            raise ValueError(f"{len(target)} target panoramas make no batch of {s.batch_size} x {ctx.world_size} "
                             "processes: lower --batch-size")
        self.num_classes = int(model.num_classes)
        self.student = model.to(ctx.device).train()
        # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32), as in training
        self.student.configure_inference(precision=s.precision)
        if s.train_encoder:
            self.student.image_encoder.requires_grad_(True)
        self.teacher = make_teacher(self.student)
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        warm = max(s.warmup_steps, 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: min(1.0, (i + 1) / warm))
        self.net: torch.nn.Module = self.student
        if ctx.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.student, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        photometric = PhotometricAugmentation() if s.photometric else None
        self.strong = StrongAugmentation(photometric=photometric)
        self.thresholds = torch.full((self.num_classes,), s.max_threshold)
        self.global_step, self.start_epoch, self.skip = 0, 0, 0
        if resume:
            self._restore(ckpt_mod.load_checkpoint(last))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.out_dir, truncate_after_step=self.global_step) if ctx.is_main else None

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
        outs = self.teacher(inputs)
        probs = torch.stack([o["sem_preds"] for o in outs]).float().softmax(1)
        valid = torch.stack([x["image"].sum(0) > 0 for x in inputs])
        return probs, valid

    @torch.no_grad()
    def pseudo_labels(self, inputs: list[dict[str, torch.Tensor]], indices: list[int]) -> torch.Tensor:
        """``B x H x W`` pseudo-labels of a batch (weak view = the panoramas as they are)."""
        probs, valid = self._teacher_probs(inputs)
        labels = make_pseudo_labels(probs, self.thresholds.to(probs.device), valid)
        if self.masks is not None:
            for b, i in enumerate(indices):
                refined = refine_pseudo_labels(labels[b].cpu(), self.masks[i]).to(labels.device)
                labels[b] = torch.where(valid[b], refined, torch.full_like(refined, IGNORE_INDEX))
        return labels

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

    def step(self, epoch: int, step_in_epoch: int, inputs: list[dict[str, torch.Tensor]],
             indices: list[int]) -> dict[str, float]:
        """One optimiser step of the student and one EMA step of the teacher."""
        labels = self.pseudo_labels(inputs, indices)
        views = [self.strong(x, y, _view_generator(self.s.seed, epoch, i))
                 for x, y, i in zip(inputs, labels, indices)]
        batch, groups = [v[0] for v in views], [torch.stack([v[1] for v in views])]
        mixed = self.source is not None and self.s.source_weight > 0
        if mixed:
            src_inputs, src_labels = self._source_batch(epoch, step_in_epoch)
            batch, groups = batch + src_inputs, groups + [src_labels]
        losses = self._losses(batch, groups)
        loss = losses[0] + (self.s.source_weight * losses[1] if mixed else 0.0)
        values = {"adapt/target_loss": float(losses[0].detach()),
                  "adapt/kept": float((labels != IGNORE_INDEX).float().mean())}
        if mixed:
            values["adapt/source_loss"] = float(losses[1].detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        ema_update(self.teacher, self.student, self.s.ema_decay)
        total = all_reduce_sum(loss.detach().double().clone()) / self.ctx.world_size
        values.update({"adapt/loss": float(total), "adapt/lr": float(self.optimizer.param_groups[0]["lr"])})
        return values

    # ------------------------------------------------------------------ checkpoints
    def _student_state(self) -> dict[str, torch.Tensor]:
        sd = ckpt_mod.strip_ddp_prefix(self.student.state_dict())
        if self.s.train_encoder:
            return sd
        trainable = self.student.trainable_state_dict()
        return {k: v for k, v in sd.items() if k in trainable}

    def checkpoint(self, epoch: int, complete: bool, step_in_epoch: int) -> dict[str, Any]:
        """A training-style checkpoint whose ``model`` is the teacher (the adapted model)."""
        from panosamic.evaluation.report import versions

        cfg = self.teacher.config
        return {
            "format_version": ckpt_mod.CHECKPOINT_FORMAT_VERSION, "kind": "adapt",
            "epoch": epoch, "epoch_complete": complete, "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "model": {k: v for k, v in self.teacher.state_dict().items()
                      if not k.startswith(("prompt_encoder.", "mask_decoder.", "_cached_prompt_encoder."))},
            "student": self._student_state(),
            "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.scheduler.state_dict(),
            "thresholds": self.thresholds.clone(), "rng": ckpt_mod.capture_rng_state(),
            "model_config": cfg.replace(semantic_only=True).to_dict(),
            "vit_model": cfg.vit, "modalities": list(cfg.modalities), "num_classes": cfg.num_classes,
            "class_names": None if cfg.class_names is None else list(cfg.class_names),
            "dataset": cfg.dataset, "fold": cfg.fold, "depth_threshold": cfg.depth_threshold,
            "adapt": self.s.to_dict(), "world_size": self.ctx.world_size, "num_target": len(self.target),
            "versions": versions(), "date": timestamp(),
        }

    def _restore(self, ck: dict[str, Any]) -> None:
        import warnings

        old = ck.get("adapt") or {}
        changed = {k: (old.get(k), getattr(self.s, k)) for k in AdaptSettings.REPLAY_KEYS
                   if k in old and old[k] != getattr(self.s, k)}
        if changed or ck.get("world_size", 1) != self.ctx.world_size:
            warnings.warn("resuming with different " + ", ".join(f"{k} ({a} -> {b})" for k, (a, b) in changed.items())
                          + " or process count: the continuation is not an exact replay", stacklevel=3)
        self.teacher.load_state_dict(ck["model"], strict=False)
        missing = self.student.load_state_dict(ck["student"], strict=False).missing_keys
        trainable = self.student.trainable_state_dict()
        if any(k in trainable for k in missing):
            raise ValueError(f"{self.out_dir / LAST_NAME} lacks student tensors, e.g. {missing[:3]}")
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["lr_scheduler"])
        self.thresholds = ck["thresholds"].float().cpu()
        self.global_step = int(ck["global_step"])
        epoch = int(ck["epoch"])
        self.start_epoch, self.skip = (epoch, 0) if ck["epoch_complete"] else (epoch - 1, int(ck["step_in_epoch"]))
        if ck.get("rng") and self.ctx.world_size == 1:
            ckpt_mod.restore_rng_state(ck["rng"])

    def _save(self, name: str, ck: dict[str, Any]) -> None:
        if self.ctx.is_main:
            ckpt_mod.save_checkpoint(self.out_dir / name, ck)

    # ------------------------------------------------------------------ loop
    def fit(self) -> AdaptResult:
        s = self.s
        if self.ctx.is_main:
            print(f"adapting on {len(self.target)} panoramas: {self.iters_per_epoch} steps per epoch x {s.epochs} "
                  f"epochs -> {self.out_dir}")
        stopped = False
        try:
            for epoch in range(self.start_epoch, s.epochs):
                skip = self.skip if epoch == self.start_epoch else 0
                if self._train_epoch(epoch, skip):
                    stopped = True
                    break
                self._save(LAST_NAME, self.checkpoint(epoch + 1, True, self.iters_per_epoch))
                if s.max_steps is not None and self.global_step >= s.max_steps and epoch < s.epochs - 1:
                    stopped = True
                    break
        finally:
            if self.logger is not None:
                self.logger.close()
        if not stopped:
            self._export()
        elif self.ctx.is_main:
            print(f"stopped at step {self.global_step} (max_steps); continue with --resume")
        barrier()
        return AdaptResult(self.out_dir, self.global_step, not stopped, [float(t) for t in self.thresholds])

    def _train_epoch(self, epoch: int, skip: int) -> bool:
        """One epoch from batch ``skip``; True when stopped by ``max_steps`` mid-epoch."""
        s, ctx = self.s, self.ctx
        seed_everything(s.seed, epoch, ctx.rank)
        if skip == 0 and epoch % s.threshold_every == 0:
            self.thresholds = self.estimate_thresholds().cpu()
            if self.logger is not None:
                self.logger.log(self.global_step, epoch + 1, {f"adapt/threshold/{c}": float(t)
                                                              for c, t in enumerate(self.thresholds)})
        self.sampler.set_epoch(epoch, skip)
        if self.source is not None and hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)  # augmentations of the source set: a function of (seed, epoch, sample)
        loader = DataLoader(self.target, batch_sampler=self.sampler, num_workers=s.workers, collate_fn=collate_target)
        bar = None
        if s.progress and ctx.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.iters_per_epoch, initial=skip, desc=f"adapt {epoch + 1}/{s.epochs}", unit="step",
                       dynamic_ncols=True)
        step_in_epoch, t0 = skip, time.perf_counter()
        try:
            for inputs, indices in loader:
                self.global_step += 1
                values = self.step(epoch, step_in_epoch, move_inputs(inputs, ctx.device), indices)
                step_in_epoch += 1
                if self.logger is not None and (self.global_step % s.log_every == 0 or step_in_epoch == 1):
                    values["adapt/step_time_s"] = (time.perf_counter() - t0) / max(step_in_epoch - skip, 1)
                    self.logger.log(self.global_step, epoch + 1, values)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['adapt/loss']:.4f}", kept=f"{values['adapt/kept']:.2f}")
                if s.max_steps is not None and self.global_step >= s.max_steps and step_in_epoch < self.iters_per_epoch:
                    self._save(LAST_NAME, self.checkpoint(epoch + 1, False, step_in_epoch))
                    return True
        finally:
            if bar is not None:
                bar.close()
        return False

    def _export(self) -> None:
        """``adapted.pth`` (training-style, teacher weights) and the Hub layout (config.json + weights)."""
        if not self.ctx.is_main:
            return
        ck = self.checkpoint(self.s.epochs, True, self.iters_per_epoch)
        for key in ("student", "optimizer", "lr_scheduler", "rng"):
            ck.pop(key)
        self._save(ADAPTED_NAME, ck)
        self.teacher.save_pretrained(self.out_dir)
        if self.s.train_encoder and self.teacher.config.vit in SAM_VITS:
            import warnings

            warnings.warn(f"the Hub layout in {self.out_dir} holds Meta's SAM encoder, not the adapted one "
                          f"(--train-encoder): load {ADAPTED_NAME} instead", stacklevel=2)
        if not self.s.keep_last:
            (self.out_dir / LAST_NAME).unlink(missing_ok=True)
        if self.masks is not None and not self.s.keep_last:
            (self.out_dir / MASKS_NAME).unlink(missing_ok=True)
        print(f"adapted model: {self.out_dir / ADAPTED_NAME} and {self.out_dir} (Hub layout)")
