"""``panosamic distill``: a teacher labels panoramas once (cached), a compact student learns from it.

Examples::

    panosamic distill --teacher dfki-av/PanoSAMic --teacher-subfolder stanford2d3ds-vith-rgb-fold1 \\
        --panoramas my_panoramas/ --epochs 30 --out experiments
    panosamic distill --teacher experiments/stanford2d3ds/RUN/model_best.pth \\
        --dataset stanford2d3ds --dataset-path data/stanford2d3ds --ce-weight 0.5 --epochs 30

Multi-GPU: ``torchrun --nproc_per_node N -m panosamic.cli distill ...``. No torch import at module
level: ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from panosamic.distill.settings import DistillLossConfig, DistillSettings
from panosamic.specs import DATASET_NAMES

HELP = "distil a teacher checkpoint into a compact student (cached teacher outputs, KL + optional labels)"
DATASET_CHOICES = DATASET_NAMES  # every registered dataset, ``folder`` (your own data) included
#: The flags' defaults are the settings' (a class: DistillSettings() itself needs something to distil on).
_D = DistillSettings


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 512x1024, got {text!r}") from None
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--teacher", required=True, help="teacher checkpoint: Hub id, variant name, folder, .safetensors, .pth or run folder")
    a("--teacher-subfolder", default=None, help="subfolder of a Hub repo")
    a("--teacher-revision", default=None, help="Hub revision (also part of the cache key)")
    a("--sam-weights", default=None, help="Meta's SAM .pth or a folder holding it (default: cache / download)")
    a("--panoramas", nargs="*", default=[], help="unlabelled panorama files or folders (RGB teachers)")
    a("--dataset", choices=DATASET_CHOICES, default=None, help="a prepared dataset to distil on (its training split)")
    a("--dataset-path", default=None, help="the prepared dataset's folder")
    a("--fold", type=int, default=_D.fold, help="fold of --dataset (its training split is used)")
    a("--no-labels", dest="use_labels", action="store_false", help="ignore the dataset's labels (pure distillation)")
    a("--no-validate", dest="validate", action="store_false", help="no validation on the dataset's test split")
    a("--backbone", default=_D.backbone, help="timm backbone of the student")
    a("--pretrained-backbone", action="store_true", help="start from the backbone's ImageNet weights (Hub download)")
    a("--decoder-channels", type=int, default=_D.decoder_channels, help="channels of the student's FPN-lite decoder")
    a("--native-size", type=_size, default=None, help="HEIGHTxWIDTH the student runs at (default: the teacher's)")
    a("--cache-dir", default=None, help="teacher-output cache (default: OUT/teacher_cache)")
    a("--cache-stride", type=int, default=_D.cache_stride, help="store teacher logits at 1/N resolution (default %(default)s)")
    a("--out", "--output", dest="output", default=_D.output, help="root of the run directories")
    a("--epochs", type=int, default=_D.epochs, help="epochs (the learning-rate schedule spans them)")
    a("--batch-size", type=int, default=_D.batch_size, help="panoramas per process and step")
    a("--max-lr", type=float, default=_D.max_lr, help="peak learning rate")
    a("--optimizer", choices=("RAdam", "Ranger21"), default=_D.optimizer, help="optimiser of the student")
    a("--temperature", type=float, default=_D.temperature, help="softmax temperature T of the KL term")
    a("--kd-weight", type=float, default=_D.kd_weight, help="weight of the KL term (x T^2)")
    a("--ce-weight", type=float, default=_D.ce_weight, help="weight of the cross entropy on ground truth, where it exists")
    a("--boundary-weight", type=float, default=_D.boundary_weight, help="weight of the KL on the teacher's SAM mask boundaries")
    a("--resume", choices=("last", "best"), default=None, help="continue the newest run from model_{last,best}.pth")
    a("--max-steps", type=int, default=None, help="stop after this many optimiser steps (resume with --resume last)")
    a("--limit-batches", type=int, default=None, help="at most this many steps per epoch")
    a("--seed", type=int, default=_D.seed, help="random seed")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a("--workers", type=int, default=_D.workers, help="DataLoader workers")
    a("--no-augment", dest="augment", action="store_false", help="no flip/roll/RGB-permutation augmentation")
    a("--eval-every", type=int, default=_D.eval_every, help="validate every N epochs (and after the last)")
    a("--log-every", type=int, default=_D.log_every, help="log the training loss every N steps")
    a("--keep-last", action="store_true", help="keep model_last.pth after a finished run")
    a("--no-progress", dest="progress", action="store_false", help="no progress bars")
    a("--debug", action="store_true", help="show tracebacks")
    from panosamic.openvocab import options as open_vocab

    open_vocab.add_arguments(parser)  # --teacher sam3 --classes "floor, bed, lamp": an open-vocabulary teacher


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``distill`` on an ``add_subparsers()`` object."""
    parser = subparsers.add_parser("distill", help=HELP, description=HELP)
    add_arguments(parser)
    parser.set_defaults(_run=run)
    return parser


def settings_from_args(args: argparse.Namespace) -> DistillSettings:
    from panosamic.openvocab.options import teacher_options

    return DistillSettings.from_args(args, device=None if args.device == "auto" else args.device,
                                     teacher_options=teacher_options(args))


def check(args: argparse.Namespace) -> None:
    """Every flag, before the teacher (or any model) is loaded: each refusal names its flag and value."""
    from panosamic.training.checks import (
        check_backbone,
        check_backbone_weights_cached,
        check_out_folder,
        check_size,
    )
    from panosamic.training.settings import check_flags

    if not args.panoramas and args.dataset_path is None:
        raise ValueError("nothing to distil on: give --panoramas (files or folders) and/or --dataset-path")
    from panosamic.openvocab import options as open_vocab

    open_vocab.check(args, checkpoint=args.teacher)
    check_flags(args, DistillSettings, DistillLossConfig)  # each flag of a setting with a range: --epochs, ...
    check_out_folder("--out", args.output)
    if args.cache_dir is not None:
        check_out_folder("--cache-dir", args.cache_dir)
    from panosamic.student.config import BACKBONE_STRIDE

    check_size("--native-size", args.native_size, multiple=2 * BACKBONE_STRIDE)
    check_backbone("--backbone", args.backbone)
    if args.pretrained_backbone:
        check_backbone_weights_cached("--pretrained-backbone", args.backbone)
    settings_from_args(args)  # the remaining cross-field rules (e.g. --dataset with --dataset-path)


def run(args: argparse.Namespace) -> int:
    from panosamic.distill.api import distill_worker

    result = distill_worker(settings_from_args(args))
    if result is not None and result.student_dir is not None:
        best = "not validated" if result.best_epoch is None or result.best_miou < 0 else f"{100 * result.best_miou:.2f} %"
        print(f"student (mIoU {best}) in {result.student_dir}")
    return 0
