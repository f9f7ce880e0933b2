"""``panosamic train`` (and ``python panosamic/evaluation/train.py``): train the fusion and decoder
of PanoSAMic on a prepared dataset. The flags (the reference's, hyphenated, with its underscore
spellings as aliases) are in :mod:`panosamic.cli.train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys


def settings_from_args(args: argparse.Namespace):
    from panosamic.training.trainer import TrainSettings

    return TrainSettings(
        dataset_path=args.dataset_path, config_path=args.config_path, experiments_path=args.experiments_path,
        dataset=args.dataset, fold=args.fold, batch_size=args.batch_size, epochs=args.epochs,
        vit_model=args.vit_model, modalities=args.modalities, sam_weights_path=args.sam_weights_path,
        resume=args.resume, max_steps=args.max_steps, limit_batches=args.limit_batches, precision=args.precision,
        seed=args.seed, device=None if args.device == "auto" else args.device, eval_every=args.eval_every,
        log_every=args.log_every, workers=args.workers_per_gpu, augment=args.augment, keep_last=args.keep_last,
        progress=args.progress, init_from=getattr(args, "init_from", None),
        sources=tuple(getattr(args, "sources", None) or ()), projection=_projection(args),
    )


def _projection(args: argparse.Namespace) -> dict | None:
    """Where pinhole sources land on the canvas (None without --source)."""
    if not getattr(args, "sources", None):
        return None
    from panosamic.data.pinhole_layout import projection_from_args

    return projection_from_args(args)


def precheck(settings) -> None:
    """The cheap checks of :class:`Trainer`, before processes are spawned."""
    from panosamic import runs
    from panosamic.config import PanoSAMicConfig
    from panosamic.data import build_dataset

    PanoSAMicConfig.from_json(settings.config_path)
    for split in ("train", "test"):
        ds = build_dataset(settings.dataset, settings.dataset_path, fold=settings.fold, split=split,
                           modalities=settings.modalities, augment=False)
        if len(ds) == 0:
            raise ValueError(f"{settings.dataset} fold {settings.fold} has no {split} samples under "
                             f"{settings.dataset_path}")
    if settings.resume is not None:
        exp_id = runs.experiment_id(settings.config_path, settings.fold, settings.vit_model, settings.modalities)
        runs.find_run_dir(settings.experiments_path, settings.dataset, exp_id, settings.resume)


def train_worker(settings_dict: dict) -> int:
    """One training process (rank from the environment)."""
    from panosamic.distributed import cleanup_distributed, init_distributed
    from panosamic.training.trainer import Trainer, settings_from_dict

    settings = settings_from_dict(settings_dict)
    ctx = init_distributed(settings.device)
    try:
        result = Trainer(settings, ctx).fit()
        if ctx.is_main:
            best = "none" if result.best_epoch is None else f"{100 * result.best_miou:.2f} % (epoch {result.best_epoch})"
            print(f"best mIoU {best}; checkpoints in {result.run_dir}")
    finally:
        cleanup_distributed()
    return 0


def _compute_efficiency(settings) -> int:
    from panosamic.config import PanoSAMicConfig
    from panosamic.data import get_dataset_info
    from panosamic.model import PanoSAMic

    model = PanoSAMic(PanoSAMicConfig.from_json(settings.config_path).model_config(
        vit=settings.vit_model, modalities=settings.modalities,
        num_classes=get_dataset_info(settings.dataset, settings.dataset_path).num_classes,
    ))  # fmt: skip
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"parameters: {total:,} total, {trainable:,} trainable, {total - trainable:,} frozen (FLOPs: not computed)")
    return 0


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.compute_efficiency:
        return _compute_efficiency(settings)
    under_torchrun = "WORLD_SIZE" in os.environ
    if under_torchrun or args.num_gpus == 1:
        if under_torchrun and args.num_gpus not in (1, int(os.environ["WORLD_SIZE"])):
            print(f"note: --num-gpus {args.num_gpus} ignored, torchrun started {os.environ['WORLD_SIZE']} processes",
                  file=sys.stderr)
        return train_worker(dataclasses.asdict(settings))
    import torch

    on_cuda = settings.device not in (None, "cpu") or (settings.device is None and torch.cuda.is_available())
    if on_cuda and torch.cuda.device_count() < args.num_gpus:
        raise ValueError(f"--num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA device(s) visible")
    precheck(settings)
    from panosamic.distributed import spawn

    spawn(train_worker, args.num_gpus, (dataclasses.asdict(settings),))
    return 0
