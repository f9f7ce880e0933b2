"""The one training loop under ``train``, ``adapt`` and ``distill`` (and every later job).

A job describes itself as a :class:`Task` (its data set, one optimiser step, its validation, its
checkpoint payload and its finish); the :class:`Engine` owns everything else, once:

- **seeding**: every epoch re-seeds torch, numpy and python from (seed, epoch, rank)
  (:func:`seed_everything`; an epoch resumed mid-way goes on from the checkpoint's RNG state
  instead), the data loader draws nothing from them, the batch order is a function of (seed, epoch)
  (:class:`~panosamic.distributed.GlobalBatchSampler`), the data loader is built per epoch;
- **resume**: :meth:`Engine.resume` restores the counters, best score, RNG state and (through the
  task) the weights and optimiser; a run stopped mid-epoch skips the batches it already trained,
  so a resumed run repeats the uninterrupted run's steps exactly;
- **progress and logs**: one :class:`~panosamic.progress.Progress` per epoch (a bar on a terminal,
  else a line every few seconds with the loss), ``train_log.jsonl`` (``train/loss``, ``train/lr``,
  ``train/step_time_s`` and the task's terms, ``val/...``) and ``train_log.png`` at the end;
- the **max-steps** stop (one wording), **checkpoints** ``model_last.pth`` / ``model_best.pth``
  written atomically by the main process, the optimiser and schedule state in them;
- a **collapse warning** when the model predicts one class for more than
  :data:`COLLAPSE_SHARE` of the pixels it was checked on in an epoch;
- **DDP**: losses averaged over ranks, barriers, checkpoints and logs from rank 0 only
  (:func:`~panosamic.distributed.wrap_ddp` wraps a task's module); bf16 is the model's own
  mixed-precision mode (``configure_inference(precision=...)``), the same in training and prediction.

A new job subclasses :class:`Task`, builds its model, data and optimiser (:mod:`.optim`), and runs
``Engine(task, settings, ctx, run_dir=...).fit()``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from panosamic import runs
from panosamic.distributed import DistContext, GlobalBatchSampler, all_reduce_sum, barrier
from panosamic.progress import Progress, count
from panosamic.training import checkpoint as ckpt_mod
from panosamic.training.optim import current_lr
from panosamic.training.settings import LoopSettings

__all__ = [
    "COLLAPSE_SHARE",
    "Engine",
    "EngineResult",
    "LoopSettings",
    "StepOutput",
    "Task",
    "Validation",
    "collapse_message",
    "seed_everything",
]

#: Share of the checked pixels predicted as one class above which a model is reported as collapsed.
COLLAPSE_SHARE = 0.95


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Re-seed torch, numpy and python from (seed, epoch, rank)."""
    s = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, dtype=np.uint32)
    value = int(s[0]) << 32 | int(s[1])
    torch.manual_seed(value)
    np.random.seed(int(s[0]))
    random.seed(value)


def _loader_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, 1]).generate_state(1, dtype=np.uint32)[0])


@dataclass
class StepOutput:
    """One step of a task: the loss to minimise (with its graph), values to log (``train/<key>``),
    and optionally the per-class counts of the pixels the model predicted (the collapse check)."""

    loss: torch.Tensor
    values: dict[str, float] = field(default_factory=dict)
    predicted: torch.Tensor | None = None


@dataclass
class Validation:
    """A task's validation: ``score`` (higher is better; the best checkpoint follows it), the metrics
    stored in the checkpoint, the values logged (``val/...``) and the per-class prediction counts."""

    score: float
    metrics: dict[str, Any]
    values: dict[str, Any]
    predicted: np.ndarray | None = None


@dataclass
class EngineResult:
    run_dir: Path
    best_score: float
    best_epoch: int | None
    global_step: int
    finished: bool


class Task:
    """What a job supplies to the :class:`Engine`; override what applies.

    Attributes: ``train_set`` (a Dataset; ``set_epoch(epoch)`` is called when it has one),
    ``collate``, ``optimizer`` and ``scheduler`` (``None`` for Ranger21), ``class_names`` (collapse
    messages), ``validates`` (whether :meth:`validate` measures anything), ``keep_newest_as_best``
    (without validation: the newest model is the best one; ``False``: no best checkpoint).
    """

    train_set: Dataset
    collate: Callable[[Sequence[Any]], Any] | None = None
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    class_names: Sequence[str] | None = None
    validates: bool = False
    keep_newest_as_best: bool = False
    #: The progress bar's name for an epoch ("epoch 2/10").
    phase: str = "epoch"
    #: How the user continues a stopped run (named in the max-steps message).
    resume_hint: str = "--resume"

    def start_epoch(self, engine: Engine, epoch: int, skip: int) -> None:
        """Before the epoch's first batch (after seeding): modes, epoch-dependent state."""

    def step(self, engine: Engine, batch: Any, epoch: int, step_in_epoch: int) -> StepOutput:
        """Forward pass and loss of one batch (``step_in_epoch``: 0-based index of the batch in its epoch)."""
        raise NotImplementedError

    def after_step(self, engine: Engine) -> None:
        """After the optimiser step (e.g. an EMA teacher)."""

    def validate(self, engine: Engine, epoch: int) -> Validation | None:
        """Measure the model at the end of epoch ``epoch`` (0-based); print what the user should read."""
        return None

    def payload(self) -> dict[str, Any]:
        """The job's part of a checkpoint: model weights, its configuration, what resume checks."""
        raise NotImplementedError

    def load_payload(self, ck: Mapping[str, Any]) -> None:
        """Restore the job's state from a checkpoint (weights, loss state; the optimiser is the engine's)."""
        raise NotImplementedError

    def finish(self, engine: Engine) -> None:
        """After the last epoch of a finished run (main process and others alike; write from the main one)."""


def collapse_message(counts: Sequence[float] | np.ndarray, class_names: Sequence[str] | None,
                     where: str) -> str | None:
    """A warning line when one class holds more than :data:`COLLAPSE_SHARE` of ``counts``, else None."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or counts.size < 2:
        return None
    top = int(counts.argmax())
    share = counts[top] / total
    if share <= COLLAPSE_SHARE:
        return None
    name = class_names[top] if class_names is not None and top < len(class_names) else f"class {top}"
    return (f"warning: the model predicts '{name}' for {100 * share:.1f} % of the {where}: it has collapsed "
            "to one class (train longer, lower the learning rate, or check the data)")


class Engine:
    """Runs a :class:`Task`: ``Engine(task, settings, ctx, run_dir=...)``, optionally :meth:`resume`, then
    :meth:`fit`. The batch plan (``iters_per_epoch``) is known from construction on: build the engine
    once the task's training set exists, then the schedule, model and optimiser."""

    def __init__(self, task: Task, settings: LoopSettings, ctx: DistContext | None = None, *,
                 run_dir: str | Path | None = None, header: str | None = None) -> None:
        self.task, self.s = task, settings
        self.ctx = ctx or DistContext()
        #: Where checkpoints and logs go (may be set after construction, once every check has passed).
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.header = header
        self.sampler = self.make_sampler(len(task.train_set), settings, self.ctx)
        self.iters_per_epoch = self.sampler.batches_per_epoch
        self.global_step = 0
        self.start_epoch = 0
        self.skip_batches = 0
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self.logger: Any = None
        self._predicted: torch.Tensor | None = None
        self._rng_restored = False

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def make_sampler(num_samples: int, settings: LoopSettings, ctx: DistContext) -> GlobalBatchSampler:
        """The batch plan; refuses a set too small for one global batch (before any model is built)."""
        sampler = GlobalBatchSampler(num_samples, settings.batch_size, ctx.rank, ctx.world_size, seed=settings.seed,
                                     limit_batches=settings.limit_batches)
        if sampler.batches_per_epoch < 1:
            raise ValueError(f"{count(num_samples, 'sample')} make no complete batch of {settings.batch_size} x "
                             f"{count(ctx.world_size, 'process', 'processes')}: lower --batch-size")
        return sampler

    def resume(self, ck: Mapping[str, Any], which: str = "last") -> None:
        """Continue from checkpoint ``ck`` (its weights through the task, counters, optimiser and RNG here)."""
        self.task.load_payload(ck)
        self.task.optimizer.load_state_dict(ck["optimizer"])
        if self.task.scheduler is not None and ck.get("lr_scheduler") is not None:
            self.task.scheduler.load_state_dict(ck["lr_scheduler"])
        self.global_step = int(ck.get("global_step", 0))
        best = ck.get("best_miou")
        self.best_score = -math.inf if best is None else float(best)
        self.best_epoch = ck.get("best_epoch")
        epoch = int(ck["epoch"])  # 1-based epoch the checkpoint was taken in
        if ck.get("epoch_complete", True):
            self.start_epoch, self.skip_batches = epoch, 0
        else:
            self.start_epoch, self.skip_batches = epoch - 1, int(ck.get("step_in_epoch", 0))
        if which == "best" and ck.get("epoch_complete", True) and self.ctx.is_main:
            print(f"resuming from {runs.BEST_NAME} (epoch {epoch}); later epochs of that run are trained again")
        self._rng_restored = bool(ck.get("rng")) and self.ctx.world_size == 1
        if self._rng_restored:
            ckpt_mod.restore_rng_state(ck["rng"])

    # ------------------------------------------------------------------ checkpoints and logs
    def checkpoint(self, epoch: int, complete: bool, step_in_epoch: int,
                   metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A checkpoint: the loop's state (counters, optimiser, RNG) and the task's payload."""
        from panosamic.evaluation.report import versions

        m = dict(metrics or {})
        sched = self.task.scheduler
        return {
            "format_version": ckpt_mod.CHECKPOINT_FORMAT_VERSION,
            "epoch": epoch, "epoch_complete": complete, "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "best_miou": self.best_score, "best_epoch": self.best_epoch,
            "miou": m.get("miou"), "macc": m.get("macc"), "metrics": m,
            "optimizer": self.task.optimizer.state_dict(),
            "lr_scheduler": None if sched is None else sched.state_dict(),
            "rng": ckpt_mod.capture_rng_state(),
            **self.task.payload(),
            "versions": versions(), "date": runs.timestamp(),
        }  # fmt: skip

    def save(self, name: str, ck: Mapping[str, Any]) -> None:
        """Write ``run_dir/name`` atomically (main process only)."""
        if self.ctx.is_main:
            ckpt_mod.save_checkpoint(self.run_dir / name, ck)

    def log(self, epoch: int, values: Mapping[str, Any]) -> None:
        """One record of ``train_log.jsonl`` at the current step (main process only)."""
        if self.logger is not None:
            self.logger.log(self.global_step, epoch, values)

    def say(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True)

    # ------------------------------------------------------------------ loop
    def fit(self) -> EngineResult:
        """Train from the current state to the last epoch or ``max_steps``; then the task's finish."""
        from panosamic.evaluation.report import RunLogger

        s, ctx = self.s, self.ctx
        if self.run_dir is None:
            raise RuntimeError("Engine.fit: no run_dir set")
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.logger = RunLogger(self.run_dir, truncate_after_step=self.global_step)
            if self.header:
                print(self.header)
            print(f"{count(len(self.task.train_set), 'training sample')}: {count(self.iters_per_epoch, 'step')} "
                  f"per epoch x {count(s.epochs, 'epoch')} -> {self.run_dir}", flush=True)
        stopped = False
        try:
            for epoch in range(self.start_epoch, s.epochs):
                skip = self.skip_batches if epoch == self.start_epoch else 0
                if self._train_epoch(epoch, skip):
                    stopped = True
                    break
                self._end_of_epoch(epoch)
                if s.max_steps is not None and self.global_step >= s.max_steps and epoch < s.epochs - 1:
                    self._stopped_message()
                    stopped = True
                    break
        finally:
            if self.logger is not None:
                self.logger.close()
                self.logger = None
        if ctx.is_main:
            self._plot()
        if not stopped:
            self.task.finish(self)
            if not s.keep_last and ctx.is_main:
                (self.run_dir / runs.LAST_NAME).unlink(missing_ok=True)  # the reference's clean-up
        barrier()
        return EngineResult(self.run_dir, self.best_score, self.best_epoch, self.global_step, not stopped)

    def _stopped_message(self) -> None:
        self.say(f"stopped at step {self.global_step} (--max-steps); continue with {self.task.resume_hint}")

    def _plot(self) -> None:
        from panosamic.evaluation.plots import plot_training_log

        try:
            print(f"training curves: {plot_training_log(self.run_dir, self.run_dir / 'train_log.png')}")
        except ValueError as e:  # nothing logged yet
            print(f"no training curves: {e}")

    def _train_epoch(self, epoch: int, skip: int) -> bool:
        """Train one epoch (from batch ``skip``); True when stopped by ``max_steps`` mid-epoch."""
        s, ctx, task = self.s, self.ctx, self.task
        if not (skip and self._rng_restored):  # a resumed epoch goes on from the checkpoint's RNG state
            seed_everything(s.seed, epoch, ctx.rank)
        if hasattr(task.train_set, "set_epoch"):
            task.train_set.set_epoch(epoch)  # augmentations: a function of (seed, epoch, sample)
        task.start_epoch(self, epoch, skip)
        self.sampler.set_epoch(epoch, skip)
        # the loader's own generator (workers' seeds): it draws nothing from the global RNG, so the steps'
        # randomness is the same whether an epoch starts fresh or goes on from a checkpoint
        generator = torch.Generator().manual_seed(_loader_seed(s.seed, epoch, ctx.rank))
        loader = DataLoader(task.train_set, batch_sampler=self.sampler, num_workers=s.workers,
                            collate_fn=task.collate, generator=generator)
        # a bar on a terminal, else (or with --no-progress) a line every few seconds; other ranks are silent
        bar = Progress(self.iters_per_epoch, f"{task.phase} {epoch + 1}/{s.epochs}", "step", bar=s.progress,
                       silent=not ctx.is_main, initial=skip)
        self._predicted = None
        step_in_epoch, t0 = skip, time.perf_counter()
        try:
            for batch in loader:
                self.global_step += 1
                out = task.step(self, batch, epoch, step_in_epoch)
                step_in_epoch += 1
                task.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                task.optimizer.step()
                if task.scheduler is not None:
                    task.scheduler.step()
                task.after_step(self)
                loss = float(all_reduce_sum(out.loss.detach().double().clone())) / ctx.world_size
                if out.predicted is not None:
                    p = out.predicted.detach().to("cpu", torch.float64)
                    self._predicted = p if self._predicted is None else self._predicted + p
                if self.global_step % s.log_every == 0 or step_in_epoch == 1:
                    values = {"train/loss": loss, "train/lr": current_lr(task.optimizer),
                              "train/step_time_s": (time.perf_counter() - t0) / max(step_in_epoch - skip, 1)}
                    values.update({f"train/{k}": v for k, v in out.values.items()})
                    self.log(epoch + 1, values)
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update(1)
                if s.max_steps is not None and self.global_step >= s.max_steps and step_in_epoch < self.iters_per_epoch:
                    self.save(runs.LAST_NAME, self.checkpoint(epoch + 1, False, step_in_epoch))
                    bar.close()
                    self._stopped_message()
                    return True
        finally:
            bar.close()
        return False

    def _end_of_epoch(self, epoch: int) -> None:
        """Validation (when due), the collapse check, ``model_best.pth`` / ``model_last.pth``."""
        s, task = self.s, self.task
        due = (epoch + 1) % s.eval_every == 0 or epoch == s.epochs - 1
        metrics: dict[str, Any] | None = None
        predicted: Any = None
        where = f"training pixels of epoch {epoch + 1}"
        if task.validates:
            res = task.validate(self, epoch) if due else None
            improved = res is not None and math.isfinite(res.score) and res.score > self.best_score
            if res is not None:
                metrics = res.metrics
                if improved:
                    self.best_score, self.best_epoch = res.score, epoch + 1
                self.log(epoch + 1, {**res.values, "val/best_miou": self.best_score})
                if res.predicted is not None:
                    predicted, where = res.predicted, f"validation pixels of epoch {epoch + 1}"
        else:
            improved = task.keep_newest_as_best  # no labelled split: the newest model is the best one
            if improved:
                self.best_epoch = epoch + 1
        if predicted is None and self._predicted is not None:
            predicted = all_reduce_sum(self._predicted.to(self.ctx.device)).cpu().numpy()  # NCCL: device tensors
        if predicted is not None:
            message = collapse_message(predicted, task.class_names, where)
            if message:
                self.say(message)
        ck = self.checkpoint(epoch + 1, True, self.iters_per_epoch, metrics)
        if improved:
            self.save(runs.BEST_NAME, ck)
        self.save(runs.LAST_NAME, ck)
        barrier()
