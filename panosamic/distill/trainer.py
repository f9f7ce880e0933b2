"""The distillation loop: a teacher labels panoramas once (cached), a student learns from its logits.

It reuses the training machinery of ``panosamic train`` (panosamic.training): the seeded
per-epoch randomness and the global batch sampler (so resuming at any step repeats the
uninterrupted run), atomic checkpoints ``model_best.pth`` / ``model_last.pth`` in a run
directory, the JSONL/TensorBoard log, the optimiser and learning-rate plans, DDP under torchrun,
and the validation of ``evaluate``. The finished student is written as a folder
(``student/``: model.safetensors, config.json, model card) into the run directory.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from panosamic import runs
from panosamic.distill.cache import TeacherCache, teacher_fingerprint
from panosamic.distill.data import DistillDataset, FolderSource, PreparedSource, collate_distill
from panosamic.distill.losses import DistillLoss, DistillLossConfig, boundary_map
from panosamic.distributed import (
    DistContext,
    GlobalBatchSampler,
    ShardSampler,
    all_reduce_sum,
    barrier,
    new_run_dir_on_main,
)
from panosamic.evaluation.report import RunLogger, versions
from panosamic.student import PanoStudent, StudentConfig
from panosamic.training import checkpoint as ckpt_mod
from panosamic.training.optim import build_optimizer, current_lr, lr_plan
from panosamic.training.engine import seed_everything

__all__ = ["DistillResult", "DistillSettings", "Distiller"]

STUDENT_DIR = "student"


@dataclass(frozen=True)
class DistillSettings:
    """Everything a distillation run is told (the CLI flags)."""

    output: str = "experiments"
    teacher: str | None = None
    teacher_subfolder: str | None = None
    teacher_revision: str | None = None
    sam_weights: str | None = None
    panoramas: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_path: str | None = None
    fold: int = 1
    use_labels: bool = True
    validate: bool = True
    backbone: str = "mobilenetv3_large_100"
    pretrained_backbone: bool = False
    decoder_channels: int = 64
    native_size: tuple[int, int] | None = None
    cache_dir: str | None = None
    cache_stride: int = 4
    epochs: int = 10
    batch_size: int = 4
    max_lr: float = 2e-3
    optimizer: str = "RAdam"
    temperature: float = 2.0
    kd_weight: float = 1.0
    ce_weight: float = 0.0
    boundary_weight: float = 0.0
    resume: str | None = None
    max_steps: int | None = None
    limit_batches: int | None = None
    seed: int = 0
    device: str | None = None
    workers: int = 0
    augment: bool = True
    eval_every: int = 1
    log_every: int = 10
    keep_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "panoramas", tuple(str(p) for p in self.panoramas))
        if self.native_size is not None:
            object.__setattr__(self, "native_size", tuple(int(v) for v in self.native_size))
        if self.resume not in (None, "last", "best"):
            raise ValueError(f"resume must be 'last' or 'best', got {self.resume!r}")
        for name in ("epochs", "batch_size", "eval_every", "log_every", "cache_stride"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.panoramas and self.dataset_path is None:
            raise ValueError("nothing to distil on: give panorama folders/files and/or --dataset-path")
        if (self.dataset_path is None) != (self.dataset is None):
            raise ValueError("--dataset and --dataset-path go together")
        DistillLossConfig(self.temperature, self.kd_weight, self.ce_weight, self.boundary_weight)

    def loss_config(self) -> DistillLossConfig:
        return DistillLossConfig(self.temperature, self.kd_weight, self.ce_weight, self.boundary_weight)


@dataclass
class DistillResult:
    run_dir: Path
    student_dir: Path | None
    best_miou: float
    best_epoch: int | None
    global_step: int
    finished: bool


class _TensorPath(torch.nn.Module):
    """The student's tensor path as a module's forward (what DDP wraps)."""

    def __init__(self, student: PanoStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.student.forward_tensor(pixels)


def _load_teacher(s: DistillSettings) -> torch.nn.Module:
    if s.teacher is None:
        raise ValueError("no teacher: pass --teacher CHECKPOINT (any PanoSAMic checkpoint, Hub id or folder)")
    from panosamic.model import load_model

    return load_model(s.teacher, subfolder=s.teacher_subfolder, revision=s.teacher_revision,
                      sam_weights=s.sam_weights, semantic_only=s.boundary_weight == 0)


class Distiller:
    """Set up with :meth:`__init__` (all checks), then :meth:`fit`. ``teacher``: a model object
    instead of ``settings.teacher`` (Python API)."""

    def __init__(self, settings: DistillSettings, ctx: DistContext | None = None,
                 teacher: torch.nn.Module | None = None) -> None:
        self.s = s = settings
        self.ctx = ctx = ctx or DistContext()
        self._check_paths()
        self.teacher = (teacher if teacher is not None else _load_teacher(s)).to(ctx.device).eval()
        self.student_config = self._student_config(self.teacher)
        self.sources = self._sources(self.student_config.modalities)
        cache_root = s.cache_dir or str(Path(s.output) / "teacher_cache")
        self.cache = TeacherCache(cache_root, teacher_fingerprint(self.teacher, s.teacher_revision), s.cache_stride)
        augmentation = None
        if s.augment:
            from panosamic.data.transforms import PanoramaAugmentation

            augmentation = PanoramaAugmentation(seed=s.seed)
        self.train_ds = DistillDataset(self.sources, self.cache, modalities=self.student_config.modalities,
                                       native_size=self.student_config.native_size, augmentation=augmentation)
        self.val_ds = None
        if s.validate and s.dataset is not None:
            self.val_ds = PreparedSource(s.dataset, s.dataset_path, fold=s.fold, split="test",
                                         modalities=self.student_config.modalities).ds
        self.sampler = GlobalBatchSampler(len(self.train_ds), s.batch_size, ctx.rank, ctx.world_size, seed=s.seed,
                                          limit_batches=s.limit_batches)
        self.iters_per_epoch = self.sampler.batches_per_epoch
        if self.iters_per_epoch < 1:
            raise ValueError(f"{len(self.train_ds)} panoramas make no complete batch of {s.batch_size} x "
                             f"{ctx.world_size} processes: lower --batch-size")
        self._build_student()
        self.exp_id = f"student_{self.student_config.backbone}_M{len(self.student_config.modalities)}"
        self.dataset_key = s.dataset or "panoramas"
        self.global_step, self.start_epoch, self.skip_batches = 0, 0, 0
        self.best_miou, self.best_epoch = -math.inf, None
        if s.resume is not None:
            run = runs.find_run_dir(s.output, self.dataset_key, self.exp_id, s.resume)
            self._restore(ckpt_mod.load_checkpoint(run / f"model_{s.resume}.pth"), run / f"model_{s.resume}.pth")
            self.run_dir = run
        else:
            self.run_dir = new_run_dir_on_main(ctx, s.output, self.dataset_key, self.exp_id)
        self.logger = RunLogger(self.run_dir, truncate_after_step=self.global_step) if ctx.is_main else None

    # ------------------------------------------------------------------ set-up helpers
    def _check_paths(self) -> None:
        s = self.s
        missing = [p for p in s.panoramas if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"panorama file or folder not found: {missing[0]}")
        if s.dataset_path is not None and not Path(s.dataset_path).is_dir():
            raise FileNotFoundError(f"dataset folder not found: {s.dataset_path}")

    def _sources(self, modalities: Sequence[str]) -> list[Any]:
        s = self.s
        sources: list[Any] = [FolderSource(s.panoramas)] if s.panoramas else []
        if s.dataset_path is not None:
            sources.append(PreparedSource(s.dataset, s.dataset_path, fold=s.fold, split="train",
                                          modalities=modalities, use_labels=s.use_labels))
        return sources

    def _student_config(self, teacher: torch.nn.Module) -> StudentConfig:
        s = self.s
        mods = tuple(teacher.modalities)
        if s.panoramas and mods != ("image",):
            raise ValueError(f"the teacher uses {list(mods)}: unlabelled panorama folders give RGB only; "
                             "distil on a prepared dataset (--dataset-path) instead")
        native = s.native_size or tuple(teacher.native_size)
        return StudentConfig(backbone=s.backbone, modalities=mods, num_classes=int(teacher.num_classes),
                             decoder_channels=s.decoder_channels, native_size=native,
                             class_names=getattr(teacher, "class_names", None), palette=getattr(teacher, "palette", None),
                             depth_threshold=getattr(teacher, "depth_threshold", None),
                             dataset=getattr(teacher, "dataset", None) or s.dataset)

    def _build_student(self) -> None:
        from panosamic.config import LRSchedulerConfig, TrainingConfig

        s, ctx = self.s, self.ctx
        seed_everything(s.seed, 1_000_000, 0)  # the same initial weights on every rank and in every repeat
        self.student = PanoStudent(self.student_config, pretrained=s.pretrained_backbone).to(ctx.device)
        self.training_config = TrainingConfig(optimizer=s.optimizer, lr_scheduler=LRSchedulerConfig(
            start_lr=s.max_lr / 100, max_lr=s.max_lr, warm_up_ratio=0.3, wind_down_ratio=0.5 * s.epochs))
        self.plan = lr_plan(self.training_config, self.iters_per_epoch, s.epochs, ctx.world_size, s.batch_size)
        self.optimizer, self.scheduler = build_optimizer(self.student.parameters(), self.training_config, self.plan)
        self.loss_fn = DistillLoss(s.loss_config())
        self.net: torch.nn.Module = _TensorPath(self.student)
        if ctx.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    def _restore(self, ck: dict[str, Any], path: Path) -> None:
        if ck.get("student_config") != self.student_config.to_dict():
            raise ValueError(f"cannot resume {path}: it holds another student ({ck.get('student_config')})")
        if ck.get("teacher_id") != self.cache.teacher_id:
            raise ValueError(f"cannot resume {path}: it was distilled from another teacher")
        self.student.load_state_dict(ckpt_mod.strip_ddp_prefix(ck["model"]), strict=True)
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.scheduler is not None and ck.get("lr_scheduler") is not None:
            self.scheduler.load_state_dict(ck["lr_scheduler"])
        self.global_step = int(ck["global_step"])
        self.best_miou, self.best_epoch = float(ck["best_miou"]), ck.get("best_epoch")
        epoch = int(ck["epoch"])
        complete = bool(ck["epoch_complete"])
        self.start_epoch, self.skip_batches = (epoch, 0) if complete else (epoch - 1, int(ck["step_in_epoch"]))
        if self.ctx.world_size == 1 and ck.get("rng"):
            ckpt_mod.restore_rng_state(ck["rng"])

    def _checkpoint(self, epoch: int, complete: bool, step_in_epoch: int, metrics: dict | None) -> dict[str, Any]:
        return {
            "format_version": ckpt_mod.CHECKPOINT_FORMAT_VERSION, "kind": "panosamic-student",
            "epoch": epoch, "epoch_complete": complete, "step_in_epoch": step_in_epoch,
            "global_step": self.global_step, "model": self.student.state_dict(),
            "best_miou": self.best_miou, "best_epoch": self.best_epoch,
            "miou": (metrics or {}).get("miou"), "macc": (metrics or {}).get("macc"), "metrics": metrics or {},
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": ckpt_mod.capture_rng_state(), "student_config": self.student_config.to_dict(),
            "teacher_id": self.cache.teacher_id, "teacher": self.s.teacher,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.s).items()},
            "num_classes": self.student_config.num_classes, "versions": versions(), "date": runs.timestamp(),
        }

    def _save(self, name: str, ck: dict[str, Any]) -> None:
        if self.ctx.is_main:
            ckpt_mod.save_checkpoint(self.run_dir / name, ck)

    def _log(self, epoch: int, values: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.log(self.global_step, epoch, values)

    # ------------------------------------------------------------------ teacher pass
    @torch.no_grad()
    def label(self) -> int:
        """Run the teacher on every panorama not in the cache (each rank a shard); returns how many it ran."""
        todo = [(src, j) for src in self.sources for j in range(len(src)) if src.digests(j) not in self.cache]
        mine = [todo[i] for i in ShardSampler(len(todo), self.ctx.rank, self.ctx.world_size)]
        bar = None
        if self.s.progress and self.ctx.is_main and mine:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(mine), desc="teacher", unit="pano", dynamic_ncols=True)
        for src, j in mine:
            inputs, _ = src.load(j)
            out = self.teacher([{m: inputs[m].to(self.ctx.device) for m in self.teacher.modalities}])[0]
            logits = out["sem_preds"].float().cpu()
            masks = out.get("instance_masks") or []
            bounds = boundary_map(masks, tuple(logits.shape[-2:])) if masks else None
            self.cache.put(src.digests(j), logits, bounds)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        barrier()
        return len(todo)

    # ------------------------------------------------------------------ loop
    def fit(self) -> DistillResult:
        s, ctx = self.s, self.ctx
        ran = self.label()
        if ctx.is_main:
            print(f"run directory: {self.run_dir}\nteacher ran on {ran} panorama(s), "
                  f"{len(self.train_ds) - ran} from the cache {self.cache.dir}")
        stopped = False
        try:
            for epoch in range(self.start_epoch, s.epochs):
                if self._train_epoch(epoch, self.skip_batches if epoch == self.start_epoch else 0):
                    stopped = True
                    break
                self._end_of_epoch(epoch)
                if s.max_steps is not None and self.global_step >= s.max_steps and epoch < s.epochs - 1:
                    stopped = True
                    break
        finally:
            if self.logger is not None:
                self.logger.close()
        student_dir = None
        if not stopped:
            student_dir = self._write_student()
            if not s.keep_last and ctx.is_main:
                (self.run_dir / runs.LAST_NAME).unlink(missing_ok=True)
        barrier()
        return DistillResult(self.run_dir, student_dir, self.best_miou, self.best_epoch, self.global_step, not stopped)

    def _train_epoch(self, epoch: int, skip: int) -> bool:
        """One epoch from batch ``skip``; True when stopped by ``max_steps`` in the middle."""
        s, ctx = self.s, self.ctx
        seed_everything(s.seed, epoch, ctx.rank)
        self.train_ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip)
        loader = DataLoader(self.train_ds, batch_sampler=self.sampler, num_workers=s.workers,
                            collate_fn=collate_distill)
        self.net.train()
        step_in_epoch, t0 = skip, time.perf_counter()
        for pixels, teacher, labels, bounds in loader:
            dev = ctx.device
            self.global_step += 1
            step_in_epoch += 1
            logits = self.net(pixels.to(dev))
            out = self.loss_fn(logits, teacher.to(dev), labels.to(dev), bounds.to(dev))
            self.optimizer.zero_grad(set_to_none=True)
            out.total.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            loss = float(all_reduce_sum(out.total.detach().double().clone())) / ctx.world_size
            if self.global_step % s.log_every == 0 or step_in_epoch == 1:
                self._log(epoch + 1, {"train/loss": loss, "train/lr": current_lr(self.optimizer),
                                      "train/step_time_s": (time.perf_counter() - t0) / max(step_in_epoch - skip, 1),
                                      **{f"train/{k}": v for k, v in out.terms.items()}})
            if s.max_steps is not None and self.global_step >= s.max_steps and step_in_epoch < self.iters_per_epoch:
                self._save(runs.LAST_NAME, self._checkpoint(epoch + 1, False, step_in_epoch, None))
                if ctx.is_main:
                    print(f"stopped at step {self.global_step} (--max-steps); continue with --resume last")
                return True
        return False

    def _end_of_epoch(self, epoch: int) -> None:
        s = self.s
        metrics = None
        validate = self.val_ds is not None and ((epoch + 1) % s.eval_every == 0 or epoch == s.epochs - 1)
        if validate:
            from panosamic.evaluation.validation import run_validation

            res = run_validation(self.student, self.val_ds, num_classes=self.student_config.num_classes, ctx=self.ctx,
                                 batch_size=s.batch_size, workers=s.workers, progress=False)
            metrics = res.metrics.to_dict()
            miou = res.metrics.miou
            self._log(epoch + 1, {"val/miou": miou, "val/macc": res.metrics.macc})
            if self.ctx.is_main:
                print(f"epoch {epoch + 1}: student mIoU {100 * miou:.2f} %")
            improved = math.isfinite(miou) and miou > self.best_miou
        else:
            improved = self.val_ds is None  # without a labelled split the newest student is the best
        if improved:
            self.best_miou = metrics["miou"] if metrics else self.best_miou
            self.best_epoch = epoch + 1
        ck = self._checkpoint(epoch + 1, True, self.iters_per_epoch, metrics)
        if improved:
            self._save(runs.BEST_NAME, ck)
        self._save(runs.LAST_NAME, ck)
        barrier()

    def _write_student(self) -> Path | None:
        """The best student as a folder (weights, config.json, card) in the run directory."""
        from panosamic.student.hub import save_student

        if not self.ctx.is_main:
            return None
        best = ckpt_mod.load_checkpoint(self.run_dir / runs.BEST_NAME)
        student = PanoStudent(self.student_config)
        student.load_state_dict(best["model"], strict=True)
        metrics = {"miou": best["miou"], "epoch": best["epoch"]} if best.get("miou") is not None else None
        return save_student(student, self.run_dir / STUDENT_DIR, metrics=metrics)
