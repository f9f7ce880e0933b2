"""``panosamic train`` flags (also ``python panosamic/evaluation/train.py`` with the reference's flags).

Multi-GPU: ``torchrun --nproc_per_node N -m panosamic.cli train ...`` or ``--num-gpus N`` (processes
spawned here).
"""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.cli.checks import check_at_least
from panosamic.data.pinhole_layout import add_pinhole_arguments, check_source_args
from panosamic.specs import DATASET_NAMES

DESCRIPTION = (
    "Train the fusion and decoder of PanoSAMic on a prepared dataset. The reference's underscore flags "
    "(--dataset_path --config_path --experiments_path --sam_weights_path --vit_model --num_gpus "
    "--workers_per_gpu --batch_size --compute_efficiency) are accepted too."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    flags.add_shared_arguments(parser, config_required=True)
    parser.set_defaults(vit_model="vit_h", modalities="image,depth,normals")
    parser.add_argument("--fold", type=int, default=1, help="fold of the dataset to train on")
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs (the learning-rate schedule spans them)"
    )
    parser.add_argument(
        "--resume",
        choices=("last", "best"),
        default=None,
        help="continue the newest run of this experiment id from model_{last,best}.pth",
    )
    flags.add(
        parser,
        "--compute-efficiency",
        "--compute_efficiency",
        dest="compute_efficiency",
        action="store_true",
        help="print the parameter counts and exit",
    )
    flags.add(
        parser,
        "--max-steps",
        "--max_steps",
        dest="max_steps",
        type=int,
        default=None,
        help="stop after this many optimiser steps (the schedule still spans all epochs)",
    )
    flags.add(
        parser,
        "--limit-batches",
        "--limit_batches",
        dest="limit_batches",
        type=int,
        default=None,
        help="at most this many training steps per epoch (quick runs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    flags.add(
        parser,
        "--eval-every",
        "--eval_every",
        dest="eval_every",
        type=int,
        default=1,
        help="validate every N epochs (and after the last)",
    )
    flags.add(
        parser,
        "--log-every",
        "--log_every",
        dest="log_every",
        type=int,
        default=5,
        help="log the training loss every N steps",
    )
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="no flip/roll/permute augmentation"
    )
    flags.add(
        parser, "--init-from", dest="init_from", default=None, metavar="CHECKPOINT",
        help="fine-tune: start from this checkpoint's fusion and decoder (variant name, Hub id, folder, .pth or "
        "run); a different class count re-initialises only the class head",
    )  # fmt: skip
    parser.add_argument("--keep-last", dest="keep_last", action="store_true",
                        help="keep model_last.pth after a finished run (the reference deletes it)")  # fmt: skip
    add_pinhole_arguments(parser)


def check_num_classes(args: argparse.Namespace) -> None:
    """``--num-classes``, when given, must be the dataset's (a folder dataset's: its classes.json)."""
    from panosamic.data.registry import get_dataset_info

    expected = get_dataset_info(args.dataset, getattr(args, "dataset_path", None)).num_classes
    if args.num_classes is not None and args.num_classes != expected:
        raise ValueError(f"--num-classes {args.num_classes}: {args.dataset} has {expected} classes")


def check(args: argparse.Namespace) -> None:
    """Flag values and the experiments folder, before any model is built."""
    from panosamic.preflight import check_output_dir

    check_at_least(
        ("--batch-size", args.batch_size, 1),
        ("--num-gpus", args.num_gpus, 1),
        ("--epochs", args.epochs, 1),
        ("--workers", args.workers_per_gpu, 0),
    )
    check_num_classes(args)
    check_source_args(args, DATASET_NAMES)
    if not args.compute_efficiency:
        check_output_dir(args.experiments_path, what="--experiments-path", create=False)


def run(args: argparse.Namespace) -> int:
    from panosamic.training.cli import run as train_run

    return train_run(args)
