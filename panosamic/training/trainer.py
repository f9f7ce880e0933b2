"""The training loop (spec §7): fusion + decoder trained on a frozen SAM encoder.

:class:`Trainer` checks every input before any work (dataset folders, non-empty folds, config,
resume target, checkpoint class count), then per epoch trains on the fold's training split,
validates on its test split, and writes ``model_best.pth`` (mIoU strictly improved) and
``model_last.pth`` atomically into the run directory, with a JSONL log of every logged value.
Runs in one process or under DDP (torchrun or ``--num_gpus N``), continues exactly with
``--resume last|best``: every epoch re-seeds its randomness from (seed, epoch, rank), the batch
order is a function of (seed, epoch) and the augmentations of (seed, epoch, sample), so a run
resumed at an epoch boundary or mid-epoch repeats the uninterrupted run's steps.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from panosamic.config import PanoSAMicConfig
from panosamic.specs import SAM_VITS, VIT_SPECS, canonical_modalities
from panosamic import runs
from panosamic.training import checkpoint as ckpt_mod
from panosamic.distributed import (
    DistContext,
    GlobalBatchSampler,
    all_reduce_sum,
    barrier,
    new_run_dir_on_main,
)
from panosamic.training.losses import PanoSAMicLoss, class_weights_from_counts
from panosamic.training.optim import build_optimizer, current_lr, lr_plan
from panosamic.evaluation.report import RunLogger, format_class_table, versions
from panosamic.evaluation.validation import move_inputs, run_validation
from panosamic.progress import Progress

__all__ = ["TrainResult", "TrainSettings", "Trainer"]

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run is told (the CLI flags)."""

    dataset_path: str
    config_path: str
    experiments_path: str
    dataset: str
    fold: int = 1
    batch_size: int = 1
    epochs: int = 1
    vit_model: str = "vit_h"
    modalities: tuple[str, ...] = ("image", "depth", "normals")
    sam_weights_path: str | None = None
    resume: str | None = None
    max_steps: int | None = None
    limit_batches: int | None = None
    precision: str = "fp32"
    seed: int = 0
    device: str | None = None
    eval_every: int = 1
    log_every: int = 5
    workers: int = 2
    augment: bool = True
    keep_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", canonical_modalities(self.modalities))
        if self.vit_model not in VIT_SPECS:
            raise ValueError(f"vit_model must be one of {', '.join(VIT_SPECS)}, got {self.vit_model!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.resume not in (None, "last", "best"):
            raise ValueError(f"resume must be 'last' or 'best', got {self.resume!r}")
        for name in ("batch_size", "epochs", "eval_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("max_steps", "limit_batches"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.workers < 0 or self.seed < 0:
            raise ValueError(f"workers and seed must be >= 0, got {self.workers}, {self.seed}")


@dataclass
class TrainResult:
    run_dir: Path
    best_miou: float
    best_epoch: int | None
    global_step: int
    finished: bool


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Re-seed torch, numpy and python from (seed, epoch, rank)."""
    s = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, dtype=np.uint32)
    value = int(s[0]) << 32 | int(s[1])
    torch.manual_seed(value)
    np.random.seed(int(s[0]))
    random.seed(value)


def _count(n: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {noun}{'s' * (n != 1)}"


class Trainer:
    """Set up with :meth:`__init__` (all checks happen there), then :meth:`fit`."""

    def __init__(self, settings: TrainSettings, ctx: DistContext | None = None):
        self.s = settings
        self.ctx = ctx or DistContext()
        self.config = PanoSAMicConfig.from_json(settings.config_path)  # checked fields -> one-line errors
        self._build_data()  # every input is checked before any work
        self._build_model()
        self._build_optimisation()
        self._start_run()

    # ------------------------------------------------------------------ set-up
    def _build_data(self) -> None:
        """Datasets, resume target and batch plan; every check that needs no model."""
        from panosamic.data import build_dataset, get_dataset_info
        from panosamic.data.transforms import PanoramaAugmentation

        s, ctx = self.s, self.ctx
        self.info = get_dataset_info(s.dataset)
        if not Path(s.dataset_path).is_dir():
            raise FileNotFoundError(f"dataset folder not found: {s.dataset_path}")
        augment = PanoramaAugmentation(seed=s.seed) if s.augment else False
        self.train_ds = build_dataset(s.dataset, s.dataset_path, fold=s.fold, split="train",
                                      modalities=s.modalities, augment=augment)
        self.val_ds = build_dataset(s.dataset, s.dataset_path, fold=s.fold, split="test",
                                    modalities=s.modalities, augment=False)
        for split, ds in (("train", self.train_ds), ("test", self.val_ds)):
            if len(ds) == 0:
                raise ValueError(f"{s.dataset} fold {s.fold} has no {split} samples under {s.dataset_path}")
        self.exp_id = runs.experiment_id(s.config_path, s.fold, s.vit_model, s.modalities)
        self.resume_path: Path | None = None
        self.resume_ckpt: dict[str, Any] | None = None
        if s.resume is not None:
            run = runs.find_run_dir(s.experiments_path, s.dataset, self.exp_id, s.resume)
            self.resume_path = run / f"model_{s.resume}.pth"
            self.resume_ckpt = ckpt_mod.load_checkpoint(self.resume_path)
            self._check_resume(self.resume_ckpt)
        self.sampler = GlobalBatchSampler(len(self.train_ds), s.batch_size, ctx.rank, ctx.world_size, seed=s.seed,
                                          limit_batches=s.limit_batches)
        self.iters_per_epoch = self.sampler._num_batches()
        if self.iters_per_epoch < 1:
            raise ValueError(
                f"{len(self.train_ds)} training samples make no complete global batch of "
                f"{s.batch_size} x {ctx.world_size} processes: lower --batch-size"
            )
        self.total_steps = self.iters_per_epoch * s.epochs
        self.plan = lr_plan(self.config.training, self.iters_per_epoch, s.epochs, ctx.world_size, s.batch_size)

    def _build_model(self) -> None:
        from panosamic.model import PanoSAMic

        s = self.s
        seed_everything(s.seed, 1_000_000, 0)  # the same initial weights on every rank and in every repeat
        threshold = float(self.train_ds.depth_threshold) if "depth" in s.modalities else None
        self.model = PanoSAMic(self.config.model_config(
            vit=s.vit_model, modalities=s.modalities, num_classes=self.info.num_classes,
            class_names=self.info.class_names, palette=self.info.palette.tolist(), dataset=s.dataset, fold=s.fold,
            depth_threshold=threshold,
        ))  # fmt: skip
        # bf16 means the same in training, validation and prediction: the model's own mode
        # (encoder blocks under bf16 autocast, fusion, decoder and logits float32).
        self.model.configure_inference(precision=s.precision)
        if self.resume_ckpt is None:
            self._load_sam()
        self.model.to(self.ctx.device)

    def _build_optimisation(self) -> None:
        ctx = self.ctx
        class_weights = None
        if self.config.loss.cross_entropy is not None or self.config.loss.focal is not None:
            class_weights = class_weights_from_counts(self.train_ds.class_pixel_counts(), self.info.class_names)
        self.loss_fn = PanoSAMicLoss(self.config.loss, self.info.num_classes, class_weights,
                                     total_steps=self.total_steps).to(ctx.device)
        self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), self.config.training, self.plan)
        self.net: torch.nn.Module = self.model
        if ctx.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
            )

    def _start_run(self) -> None:
        """Counters (restored when resuming), the run folder and the log."""
        s, ctx = self.s, self.ctx
        self.global_step = 0
        self.start_epoch = 0
        self.skip_batches = 0
        self.best_miou = -math.inf
        self.best_epoch: int | None = None
        if self.resume_ckpt is not None:
            self._restore(self.resume_ckpt)
            self.run_dir = self.resume_path.parent  # type: ignore[union-attr]
        else:
            self.run_dir = new_run_dir_on_main(ctx, s.experiments_path, s.dataset, self.exp_id)
        self.logger = RunLogger(self.run_dir, truncate_after_step=self.global_step) if ctx.is_main else None

    def _load_sam(self) -> None:
        s = self.s
        if s.sam_weights_path is None and s.vit_model not in SAM_VITS:
            return  # the test architecture: a random encoder, saved with its checkpoints
        from panosamic.weights.sam import resolve_sam_weights

        path = resolve_sam_weights(s.sam_weights_path, s.vit_model, progress=self.ctx.is_main)
        self.model.load_sam_weights(path)

    def _check_resume(self, ck: dict[str, Any]) -> None:
        s = self.s
        if ck.get("num_classes") not in (None, self.info.num_classes):
            raise ValueError(f"{self.resume_path} is for {ck['num_classes']} classes, {s.dataset} has "
                             f"{self.info.num_classes}")
        expected = {"vit_model": s.vit_model, "modalities": list(s.modalities), "fold": s.fold, "dataset": s.dataset,
                    "config": self.config.to_dict()}
        wrong = {k: (ck[k], v) for k, v in expected.items() if k in ck and _norm(ck[k]) != _norm(v)}
        if wrong:
            raise ValueError(f"cannot resume {self.resume_path}: it was trained with a different "
                             + ", ".join(f"{k} ({a!r}, now {b!r})" for k, (a, b) in wrong.items()))
        inexact = {k: (ck.get(k), v) for k, v in (("batch_size", s.batch_size), ("world_size", self.ctx.world_size),
                                                  ("epochs", s.epochs), ("seed", s.seed),
                                                  ("limit_batches", s.limit_batches), ("augment", s.augment))
                   if k in ck and ck[k] != v}
        if inexact:
            warnings.warn("resuming with different " + ", ".join(f"{k} ({a} -> {b})" for k, (a, b) in inexact.items())
                          + ": the continuation is not an exact replay", stacklevel=2)

    def _restore(self, ck: dict[str, Any]) -> None:
        from panosamic.modeling import load_state_dict_checked

        load_state_dict_checked(self.model, ckpt_mod.strip_ddp_prefix(ck["model"]), strict=True)
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.scheduler is not None and ck.get("lr_scheduler") is not None:
            self.scheduler.load_state_dict(ck["lr_scheduler"])
        self.loss_fn.load_state_dict_extra(ck.get("loss_state") or {})
        self.global_step = int(ck.get("global_step", 0))
        self.best_miou = float(ck.get("best_miou", -math.inf))
        self.best_epoch = ck.get("best_epoch")
        epoch = int(ck["epoch"])  # 1-based epoch the checkpoint was taken in
        if ck.get("epoch_complete", True):
            self.start_epoch, self.skip_batches = epoch, 0
        else:
            self.start_epoch, self.skip_batches = epoch - 1, int(ck.get("step_in_epoch", 0))
        if self.s.resume == "best" and ck.get("epoch_complete", True) is True and self.ctx.is_main:
            print(f"resuming from model_best.pth (epoch {epoch}); later epochs of that run are trained again")
        rng = ck.get("rng")
        if rng and self.ctx.world_size == 1:
            ckpt_mod.restore_rng_state(rng)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int, complete: bool, step_in_epoch: int, metrics: dict[str, Any] | None) -> dict:
        m = metrics or {}
        return {
            "format_version": ckpt_mod.CHECKPOINT_FORMAT_VERSION,
            "epoch": epoch,
            "epoch_complete": complete,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "model": ckpt_mod.strip_ddp_prefix(self.model.state_dict()),
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "miou": m.get("miou"),
            "macc": m.get("macc"),
            "metrics": m,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "loss_state": self.loss_fn.state_dict_extra(),
            "rng": ckpt_mod.capture_rng_state(),
            "config": self.config.to_dict(),
            "model_config": self.model.config.to_dict(),
            "config_name": Path(self.s.config_path).stem,
            "vit_model": self.s.vit_model,
            "modalities": list(self.s.modalities),
            "num_classes": self.info.num_classes,
            "class_names": list(self.info.class_names),
            "dataset": self.s.dataset,
            "fold": self.s.fold,
            "depth_threshold": self.model.config.depth_threshold,
            "batch_size": self.s.batch_size,
            "world_size": self.ctx.world_size,
            "epochs": self.s.epochs,
            "seed": self.s.seed,
            "limit_batches": self.s.limit_batches,
            "augment": self.s.augment,
            "precision": self.s.precision,
            "versions": versions(),
            "date": runs.timestamp(),
        }

    def _save(self, name: str, ck: dict[str, Any]) -> None:
        if self.ctx.is_main:
            ckpt_mod.save_checkpoint(self.run_dir / name, ck)

    # ------------------------------------------------------------------ loop
    def _log(self, epoch: int, values: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.log(self.global_step, epoch, values)

    def fit(self) -> TrainResult:
        s, ctx = self.s, self.ctx
        from panosamic.data import collate_panoramas

        if ctx.is_main:
            print(f"run directory: {self.run_dir}")
            print(f"{len(self.train_ds)} training / {len(self.val_ds)} validation panoramas; "
                  f"{_count(self.iters_per_epoch, 'step')} per epoch x {_count(s.epochs, 'epoch')}; "
                  f"max_lr {self.plan.max_lr:.3g}")
        stopped = False
        try:
            for epoch in range(self.start_epoch, s.epochs):
                skip = self.skip_batches if epoch == self.start_epoch else 0
                if self._train_epoch(epoch, skip, collate_panoramas):
                    stopped = True
                    break
                self._end_of_epoch(epoch)
                if s.max_steps is not None and self.global_step >= s.max_steps and epoch < s.epochs - 1:
                    if ctx.is_main:
                        print(f"stopped after step {self.global_step} (--max-steps); resume with --resume last")
                    stopped = True
                    break
        finally:
            if self.logger is not None:
                self.logger.close()
        finished = not stopped
        if ctx.is_main:
            from panosamic.evaluation.plots import plot_training_log

            try:
                print(f"training curves: {plot_training_log(self.run_dir, self.run_dir / 'train_log.png')}")
            except ValueError as e:  # nothing logged yet
                print(f"no training curves: {e}")
        if finished and not s.keep_last and ctx.is_main:
            (self.run_dir / runs.LAST_NAME).unlink(missing_ok=True)  # the reference's clean-up
        barrier()
        return TrainResult(self.run_dir, self.best_miou, self.best_epoch, self.global_step, finished)

    def _train_epoch(self, epoch: int, skip: int, collate) -> bool:
        """Train one epoch (from batch ``skip``); True when stopped by ``max_steps`` mid-epoch."""
        s, ctx = self.s, self.ctx
        seed_everything(s.seed, epoch, ctx.rank)
        self.train_ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip)
        loader = DataLoader(self.train_ds, batch_sampler=self.sampler, num_workers=s.workers, collate_fn=collate)
        self.net.train()
        # a bar on a terminal, else (or with --no-progress) a line every few seconds; other ranks are silent
        bar = Progress(self.iters_per_epoch, f"epoch {epoch + 1}/{s.epochs}", "step", bar=s.progress,
                       silent=not ctx.is_main, initial=skip)
        step_in_epoch = skip
        t0 = time.perf_counter()
        try:
            for inputs, labels in loader:
                inputs = move_inputs(inputs, ctx.device)
                labels = labels.to(ctx.device)
                self.global_step += 1
                step_in_epoch += 1
                outs = self.net(inputs)
                logits = torch.stack([o["sem_preds"] for o in outs])
                out = self.loss_fn(logits, labels, step=self.global_step)
                self.optimizer.zero_grad(set_to_none=True)
                out.total.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                loss = all_reduce_sum(out.total.detach().double().clone()) / ctx.world_size
                if self.global_step % s.log_every == 0 or step_in_epoch == 1:
                    values = {"train/loss": float(loss), "train/lr": current_lr(self.optimizer),
                              "train/step_time_s": (time.perf_counter() - t0) / max(step_in_epoch - skip, 1)}
                    values.update({f"train/{k}": v for k, v in out.terms.items()})
                    if self.loss_fn.schedule is not None:
                        values["train/w_first"] = out.w1
                    self._log(epoch + 1, values)
                bar.set_postfix(loss=f"{float(loss):.4f}")
                bar.update(1)
                if s.max_steps is not None and self.global_step >= s.max_steps and step_in_epoch < self.iters_per_epoch:
                    self._save(runs.LAST_NAME, self._checkpoint(epoch + 1, False, step_in_epoch, None))
                    bar.write(f"stopped at step {self.global_step} (--max-steps); resume with --resume last")
                    return True
        finally:
            bar.close()
        return False

    def _end_of_epoch(self, epoch: int) -> dict[str, Any] | None:
        s, ctx = self.s, self.ctx
        validate = (epoch + 1) % s.eval_every == 0 or epoch == s.epochs - 1
        metrics: dict[str, Any] | None = None
        if validate:
            res = run_validation(self.model, self.val_ds, num_classes=self.info.num_classes, ctx=ctx,
                                 batch_size=s.batch_size, workers=s.workers, loss_fn=self.loss_fn,
                                 precision=s.precision, class_names=self.info.class_names,
                                 progress=s.progress, desc=f"validate {epoch + 1}")
            m = res.metrics
            metrics = m.to_dict(include_confusion=True)
            improved = math.isfinite(m.miou) and m.miou > self.best_miou
            if improved:
                self.best_miou, self.best_epoch = m.miou, epoch + 1
            self._log(epoch + 1, {"val/miou": m.miou, "val/macc": m.macc, "val/pixel_acc": m.pixel_acc,
                                  "val/loss": res.loss, "val/best_miou": self.best_miou,
                                  **{f"val/iou/{k}": v for k, v in metrics["iou_per_class"].items()}})
            if ctx.is_main:
                print(format_class_table(m, f"epoch {epoch + 1}: mIoU {100 * m.miou:.2f} %  mAcc {100 * m.macc:.2f} %"
                                         f"  val loss {res.loss:.4f}"))
            ck = self._checkpoint(epoch + 1, True, self.iters_per_epoch, metrics)
            if improved:
                self._save(runs.BEST_NAME, ck)
            self._save(runs.LAST_NAME, ck)
        else:
            self._save(runs.LAST_NAME, self._checkpoint(epoch + 1, True, self.iters_per_epoch, None))
        barrier()
        return metrics


def _norm(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    return x


def settings_from_dict(d: dict[str, Any]) -> TrainSettings:
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in d.items() if k in names})
