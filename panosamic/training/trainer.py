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
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panosamic import runs
from panosamic.config import PanoSAMicConfig
from panosamic.constants import PRECISIONS
from panosamic.data.record import training_record
from panosamic.distributed import DistContext, new_run_dir_on_main, wrap_ddp
from panosamic.evaluation.report import format_class_table
from panosamic.evaluation.validation import move_inputs, run_validation
from panosamic.hub.checkpoint import model_entries, read_model_entries
from panosamic.specs import SAM_VITS, VIT_SPECS, canonical_modalities
from panosamic.training import checkpoint as ckpt_mod
from panosamic.training.engine import Engine, LoopSettings, StepOutput, Task, Validation, seed_everything
from panosamic.training.losses import PanoSAMicLoss, class_weights_from_counts
from panosamic.training.optim import build_optimizer, lr_plan

__all__ = ["TrainResult", "TrainSettings", "Trainer", "seed_everything"]



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
    #: ``--source KIND=PATH[@WEIGHT]`` training sources (pinhole folders projected onto the
    #: canvas, panoramic datasets), mixed by weight; empty: the --dataset's training split.
    sources: tuple[str, ...] = ()
    #: Fields of :class:`panosamic.data.pinhole.ProjectionSettings` for pinhole sources.
    projection: dict[str, Any] | None = None
    #: Fine-tuning: start from this checkpoint's fusion and decoder (panosamic.training.init_from).
    init_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", canonical_modalities(self.modalities))
        object.__setattr__(self, "sources", tuple(self.sources))
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


class Trainer(Task):
    """Set up with :meth:`__init__` (all checks happen there), then :meth:`fit`. The loop is the
    :class:`~panosamic.training.engine.Engine`'s; this class supplies the step, validation and payload."""

    validates = True
    resume_hint = "--resume last"

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
        from panosamic.data import build_dataset, collate_panoramas, get_dataset_info
        from panosamic.data.transforms import PanoramaAugmentation

        s, ctx = self.s, self.ctx
        self.info = get_dataset_info(s.dataset, s.dataset_path)  # folder datasets: classes.json of the folder
        self.class_names = self.info.class_names
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
        self.train_set, self.collate = self.train_ds, collate_panoramas
        if s.sources:  # train on the sources; the --dataset's test split still validates
            from panosamic.data.pinhole import build_training_sources, canvas_height_of

            self.train_set = build_training_sources(
                s.sources, fold=s.fold, modalities=s.modalities, num_classes=self.info.num_classes,
                canvas_height=canvas_height_of(self.val_ds), projection=s.projection, seed=s.seed, augment=s.augment,
            )  # fmt: skip
        self.exp_id = runs.experiment_id(s.config_path, s.fold, s.vit_model, s.modalities)
        self.resume_path: Path | None = None
        self.resume_ckpt: dict[str, Any] | None = None
        if s.resume is not None:
            run = runs.find_run_dir(s.experiments_path, s.dataset, self.exp_id, s.resume)
            self.resume_path = run / f"model_{s.resume}.pth"
            self.resume_ckpt = ckpt_mod.load_checkpoint(self.resume_path)
            self._check_resume(self.resume_ckpt)
        loop = LoopSettings(epochs=s.epochs, batch_size=s.batch_size, seed=s.seed, workers=s.workers,
                            max_steps=s.max_steps, limit_batches=s.limit_batches, eval_every=s.eval_every,
                            log_every=s.log_every, keep_last=s.keep_last, progress=s.progress)
        self.engine = Engine(self, loop, ctx)
        self.iters_per_epoch = self.engine.iters_per_epoch
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
        if s.init_from is not None and self.resume_ckpt is None:  # fine-tuning (--init-from)
            from panosamic.training.init_from import init_from

            line = init_from(self.model, s.init_from).line()
            if self.ctx.is_main:
                print(line)
        self.model.to(self.ctx.device)

    def _build_optimisation(self) -> None:
        ctx = self.ctx
        class_weights = None
        if self.config.loss.cross_entropy is not None or self.config.loss.focal is not None:
            class_weights = class_weights_from_counts(self.train_set.class_pixel_counts(), self.info.class_names)
        self.loss_fn = PanoSAMicLoss(self.config.loss, self.info.num_classes, class_weights,
                                     total_steps=self.total_steps).to(ctx.device)
        self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), self.config.training, self.plan)
        self.net = wrap_ddp(self.model, ctx)

    def _start_run(self) -> None:
        """Counters (restored when resuming) and the run folder."""
        s, ctx = self.s, self.ctx
        if self.resume_ckpt is not None:
            self.engine.resume(self.resume_ckpt, s.resume or "last")
            self.engine.run_dir = self.resume_path.parent  # type: ignore[union-attr]
        else:
            self.engine.run_dir = new_run_dir_on_main(ctx, s.experiments_path, s.dataset, self.exp_id)
        self.run_dir = self.engine.run_dir
        self.engine.header = f"{len(self.val_ds)} validation panoramas; max_lr {self.plan.max_lr:.3g}"

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

    # ------------------------------------------------------------------ the task's parts
    def load_payload(self, ck: Mapping[str, Any]) -> None:
        from panosamic.modeling import load_state_dict_checked

        load_state_dict_checked(self.model, read_model_entries(ck, str(self.resume_path)).state, strict=True)
        self.loss_fn.load_state_dict_extra(ck.get("loss_state") or {})

    def payload(self) -> dict[str, Any]:
        s = self.s
        return {
            **model_entries(self.model),  # "model", "model_config"
            "loss_state": self.loss_fn.state_dict_extra(),
            "config": self.config.to_dict(),
            "config_name": Path(s.config_path).stem,
            "vit_model": s.vit_model,
            "modalities": list(s.modalities),
            "num_classes": self.info.num_classes,
            "class_names": list(self.info.class_names),
            "dataset": s.dataset,
            "fold": s.fold,
            # what it was trained on: `evaluate` refuses splits that overlap it
            "training_record": training_record(s.dataset, s.dataset_path, s.fold, "train", self.train_ds.sample_names),
            "init_from": s.init_from,
            "depth_threshold": self.model.config.depth_threshold,
            "batch_size": s.batch_size,
            "world_size": self.ctx.world_size,
            "epochs": s.epochs,
            "seed": s.seed,
            "limit_batches": s.limit_batches,
            "augment": s.augment,
            "precision": s.precision,
            "sources": list(s.sources),
            "projection": s.projection,
        }

    def start_epoch(self, engine: Engine, epoch: int, skip: int) -> None:
        self.net.train()

    def step(self, engine: Engine, batch: Any, epoch: int, step_in_epoch: int) -> StepOutput:
        inputs, labels = batch
        outs = self.net(move_inputs(inputs, self.ctx.device))
        logits = torch.stack([o["sem_preds"] for o in outs])
        out = self.loss_fn(logits, labels.to(self.ctx.device), step=engine.global_step)
        values = dict(out.terms)
        if self.loss_fn.schedule is not None:
            values["w_first"] = out.w1
        return StepOutput(out.total, values)

    def validate(self, engine: Engine, epoch: int) -> Validation:
        s = self.s
        res = run_validation(self.model, self.val_ds, num_classes=self.info.num_classes, ctx=self.ctx,
                             batch_size=s.batch_size, workers=s.workers, loss_fn=self.loss_fn,
                             precision=s.precision, class_names=self.info.class_names,
                             progress=s.progress, desc=f"validate {epoch + 1}")
        m = res.metrics
        metrics = m.to_dict(include_confusion=True)
        if self.ctx.is_main:
            print(format_class_table(m, f"epoch {epoch + 1}: mIoU {100 * m.miou:.2f} %  mAcc {100 * m.macc:.2f} %"
                                     f"  val loss {res.loss:.4f}"))
        values = {"val/miou": m.miou, "val/macc": m.macc, "val/pixel_acc": m.pixel_acc, "val/loss": res.loss,
                  **{f"val/iou/{k}": v for k, v in metrics["iou_per_class"].items()}}
        return Validation(m.miou, metrics, values, predicted=np.asarray(m.confusion).sum(0))

    # ------------------------------------------------------------------ run
    def fit(self) -> TrainResult:
        r = self.engine.fit()
        return TrainResult(r.run_dir, r.best_score, r.best_epoch, r.global_step, r.finished)


def _norm(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    return x


def settings_from_dict(d: dict[str, Any]) -> TrainSettings:
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in d.items() if k in names})
