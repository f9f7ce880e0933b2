"""The distillation loop: a teacher labels panoramas once (cached), a student learns from its logits.

The loop is the training engine (:mod:`panosamic.training.engine`): the seeded per-epoch
randomness and the global batch sampler (so resuming at any step repeats the uninterrupted run),
atomic checkpoints ``model_best.pth`` / ``model_last.pth`` in a run directory, the loss lines,
``train_log.jsonl`` and ``train_log.png``, the collapse warning, DDP under torchrun; the
optimiser and learning-rate plan of :mod:`panosamic.training.optim` and the validation of ``evaluate``. The finished student is written as a folder
(``student/``: model.safetensors, config.json, model card) into the run directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panosamic import runs
from panosamic.distill.cache import TeacherCache, teacher_fingerprint
from panosamic.distill.data import DistillDataset, FolderSource, PreparedSource, collate_distill
from panosamic.distill.losses import DistillLoss, boundary_map
from panosamic.distill.settings import DistillSettings
from panosamic.distributed import DistContext, ShardSampler, barrier, new_run_dir_on_main, wrap_ddp
from panosamic.hub.checkpoint import model_entries, read_model_entries
from panosamic.progress import Progress
from panosamic.student import PanoStudent, StudentConfig
from panosamic.student.model import StudentTensorPath
from panosamic.training import checkpoint as ckpt_mod
from panosamic.training.engine import Engine, StepOutput, Task, Validation, seed_everything
from panosamic.training.optim import build_optimizer, lr_plan

__all__ = ["DistillResult", "DistillSettings", "Distiller"]

STUDENT_DIR = "student"


@dataclass
class DistillResult:
    run_dir: Path
    student_dir: Path | None
    best_miou: float
    best_epoch: int | None
    global_step: int
    finished: bool


def _load_teacher(s: DistillSettings) -> torch.nn.Module:
    if s.teacher is None:
        raise ValueError("no teacher: pass --teacher CHECKPOINT (any PanoSAMic checkpoint, Hub id or folder)")
    from panosamic.model import load_model

    return load_model(s.teacher, subfolder=s.teacher_subfolder, revision=s.teacher_revision,
                      sam_weights=s.sam_weights, semantic_only=s.boundary_weight == 0, **dict(s.teacher_options or {}))


def _predicted_counts(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-class counts of the argmax over the ``valid`` pixels (the collapse check)."""
    pred = logits.detach().argmax(1)[valid]
    return torch.bincount(pred, minlength=logits.shape[1])


class Distiller(Task):
    """Set up with :meth:`__init__` (all checks), then :meth:`fit`. ``teacher``: a model object
    instead of ``settings.teacher`` (Python API). The loop is the training
    :class:`~panosamic.training.engine.Engine`'s; this class supplies the step, validation and payload."""

    keep_newest_as_best = True  # without a labelled split the newest student is the best
    phase = "distill"
    resume_hint = "--resume last"

    def __init__(self, settings: DistillSettings, ctx: DistContext | None = None,
                 teacher: torch.nn.Module | None = None) -> None:
        self.s = s = settings
        self.ctx = ctx = ctx or DistContext()
        self._check_paths()
        self.dataset_key = s.dataset or "panoramas"
        self.resume_path: Path | None = None
        if s.resume is not None:  # before the teacher is loaded: a missing run is refused at once
            self._find_run_before_teacher()
        self.teacher = (teacher if teacher is not None else _load_teacher(s)).to(ctx.device).eval()
        self.student_config = self._student_config(self.teacher)
        self.class_names = self.student_config.class_names
        self.sources = self._sources(self.student_config.modalities)
        cache_root = s.cache_dir or str(Path(s.output) / "teacher_cache")
        self.cache = TeacherCache(cache_root, teacher_fingerprint(self.teacher, s.teacher_revision), s.cache_stride)
        augmentation = None
        if s.augment:
            from panosamic.data.transforms import PanoramaAugmentation

            augmentation = PanoramaAugmentation(seed=s.seed)
        self.train_ds = DistillDataset(self.sources, self.cache, modalities=self.student_config.modalities,
                                       native_size=self.student_config.native_size, augmentation=augmentation)
        self.train_set, self.collate = self.train_ds, collate_distill
        self.val_ds = None
        if s.validate and s.dataset is not None:
            self.val_ds = PreparedSource(s.dataset, s.dataset_path, fold=s.fold, split="test",
                                         modalities=self.student_config.modalities).ds
        self.validates = self.val_ds is not None
        self.engine = Engine(self, s, ctx)  # the settings' loop part (LoopSettings)
        self.iters_per_epoch = self.engine.iters_per_epoch
        self._build_student()
        self.exp_id = f"student_{self.student_config.backbone}_M{len(self.student_config.modalities)}"
        if s.resume is not None:
            run = self._find_run(self.exp_id)
            self.resume_path = run / f"model_{s.resume}.pth"
            self.engine.resume(ckpt_mod.load_checkpoint(self.resume_path), s.resume or "last")
            self.engine.run_dir = run
        else:
            self.engine.run_dir = new_run_dir_on_main(ctx, s.output, self.dataset_key, self.exp_id)
        self.run_dir = self.engine.run_dir

    # ------------------------------------------------------------------ set-up helpers
    def _find_run(self, exp_id: str) -> Path:
        s = self.s
        return runs.find_run_dir(s.output, self.dataset_key, exp_id, s.resume or "last")

    def _find_run_before_teacher(self) -> Path:
        """A run of this backbone to resume, found before the teacher is loaded (its modalities are not known yet)."""
        errors = []
        for m in (1, 2, 3):
            try:
                return self._find_run(f"student_{self.s.backbone}_M{m}")
            except FileNotFoundError as e:
                errors.append(e)
        raise errors[0]

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
        try:
            self.student = PanoStudent(self.student_config, pretrained=s.pretrained_backbone).to(ctx.device)
        except (OSError, RuntimeError) as e:  # offline / not cached: name the weights, not a cache path
            if not s.pretrained_backbone:
                raise
            raise ValueError(f"--pretrained-backbone: the ImageNet weights of backbone {s.backbone!r} could not be "
                             f"loaded (not cached, offline?): {str(e).splitlines()[0]}") from e
        self.training_config = TrainingConfig(optimizer=s.optimizer, lr_scheduler=LRSchedulerConfig(
            start_lr=s.max_lr / 100, max_lr=s.max_lr, warm_up_ratio=0.3, wind_down_ratio=0.5 * s.epochs))
        self.plan = lr_plan(self.training_config, self.iters_per_epoch, s.epochs, ctx.world_size, s.batch_size)
        self.optimizer, self.scheduler = build_optimizer(self.student.parameters(), self.training_config, self.plan)
        self.loss_fn = DistillLoss(s.loss_config())
        self.net = wrap_ddp(StudentTensorPath(self.student), ctx)

    # ------------------------------------------------------------------ the task's parts
    def load_payload(self, ck: Mapping[str, Any]) -> None:
        path = self.resume_path
        entries = read_model_entries(ck, str(path))
        held = entries.config.to_dict() if hasattr(entries.config, "to_dict") else entries.config
        if held != self.student_config.to_dict():
            raise ValueError(f"cannot resume {path}: it holds another student ({held})")
        if ck.get("teacher_id") != self.cache.teacher_id:
            raise ValueError(f"cannot resume {path}: it was distilled from another teacher")
        self.student.load_state_dict(entries.state, strict=True)

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "panosamic-student", **model_entries(self.student),  # "model", "model_config"
            "teacher_id": self.cache.teacher_id, "teacher": self.s.teacher,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.s).items()},
            "num_classes": self.student_config.num_classes,
        }

    def start_epoch(self, engine: Engine, epoch: int, skip: int) -> None:
        self.net.train()

    def step(self, engine: Engine, batch: Any, epoch: int, step_in_epoch: int) -> StepOutput:
        dev = self.ctx.device
        pixels, teacher, labels, bounds = (t.to(dev) for t in batch)
        logits = self.net(pixels)
        out = self.loss_fn(logits, teacher, labels, bounds)
        valid = pixels[:, :3].sum(1) > 0  # scanned pixels (black caps are no data)
        return StepOutput(out.total, dict(out.terms), predicted=_predicted_counts(logits, valid))

    def validate(self, engine: Engine, epoch: int) -> Validation | None:
        from panosamic.evaluation.validation import run_validation

        assert self.val_ds is not None
        s = self.s
        res = run_validation(self.student, self.val_ds, num_classes=self.student_config.num_classes, ctx=self.ctx,
                             batch_size=s.batch_size, workers=s.workers, progress=s.progress,
                             desc=f"validate {epoch + 1}")
        m = res.metrics
        if self.ctx.is_main:
            print(f"epoch {epoch + 1}: student mIoU {100 * m.miou:.2f} %  mAcc {100 * m.macc:.2f} %")
        return Validation(m.miou, m.to_dict(), {"val/miou": m.miou, "val/macc": m.macc},
                          predicted=np.asarray(m.confusion).sum(0))

    def finish(self, engine: Engine) -> None:
        self.student_dir = self._write_student()

    # ------------------------------------------------------------------ teacher pass
    @torch.no_grad()
    def label(self) -> int:
        """Run the teacher on every panorama not in the cache (each rank a shard); returns how many it ran."""
        todo = [(src, j) for src in self.sources for j in range(len(src)) if src.digests(j) not in self.cache]
        mine = [todo[i] for i in ShardSampler(len(todo), self.ctx.rank, self.ctx.world_size)]
        with Progress(len(mine), "teacher", "pano", bar=self.s.progress, silent=not self.ctx.is_main) as bar:
            for src, j in mine:
                inputs, _ = src.load(j)
                out = self.teacher([{m: inputs[m].to(self.ctx.device) for m in self.teacher.modalities}])[0]
                logits = out["sem_preds"].float().cpu()
                masks = out.get("instance_masks") or []
                bounds = boundary_map(masks, tuple(logits.shape[-2:])) if masks else None
                self.cache.put(src.digests(j), logits, bounds)
                bar.update(1)
        barrier()
        return len(todo)

    # ------------------------------------------------------------------ run
    def fit(self) -> DistillResult:
        ran = self.label()
        if self.ctx.is_main:
            print(f"teacher ran on {ran} panorama(s), {len(self.train_ds) - ran} from the cache {self.cache.dir}")
        self.student_dir: Path | None = None
        r = self.engine.fit()
        return DistillResult(r.run_dir, self.student_dir, r.best_score, r.best_epoch, r.global_step, r.finished)

    def _write_student(self) -> Path | None:
        """The best student as a folder (weights, config.json, card) in the run directory."""
        from panosamic.hub.student import save_student

        if not self.ctx.is_main:
            return None
        best_path = self.run_dir / runs.BEST_NAME
        best = ckpt_mod.load_checkpoint(best_path)
        student = PanoStudent(self.student_config)
        student.load_state_dict(read_model_entries(best, str(best_path)).state, strict=True)
        metrics = {"miou": best["miou"], "epoch": best["epoch"]} if best.get("miou") is not None else None
        return save_student(student, self.run_dir / STUDENT_DIR, metrics=metrics)
