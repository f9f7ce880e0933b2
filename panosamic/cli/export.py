"""``panosamic export`` flags: turn a training checkpoint into a Hub folder (weights, config, card)."""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.specs import DATASET_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="training checkpoint (model_best.pth / model_last.pth), its run folder or a glob of run folders; "
        "with --format onnx: a compact student (folder, distillation run or checkpoint, Hub id)",
    )
    parser.add_argument(
        "out", metavar="OUT",
        help="Hub folder to write (model.safetensors, config.json, README.md); with --format onnx: the .onnx file",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=("hub", "onnx"), default="hub",
        help="hub: a Hub folder; onnx: an ONNX graph of a compact student (dynamic batch), checked with onnx.checker",
    )  # fmt: skip
    parser.add_argument(
        "--dynamic-size", action="store_true",
        help="with --format onnx: accept any H x 2H input (H a multiple of 32) instead of the native size",
    )  # fmt: skip
    flags.add_architecture(parser, reference=True)  # for checkpoints that do not record it (the reference's)
    parser.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="override the dataset recorded in the checkpoint",
    )
    parser.add_argument("--fold", type=int, default=None, help="override the fold recorded in the checkpoint")
    parser.add_argument(
        "--depth-threshold",
        type=float,
        default=None,
        help="override the depth threshold (metres mapped to black) recorded in the checkpoint",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="cast the weights (published checkpoints are bfloat16); default: as trained",
    )
    parser.add_argument("--miou", type=float, default=None, help="mIoU for the card (fraction 0..1)")
    parser.add_argument("--macc", type=float, default=None, help="mAcc for the card (fraction 0..1)")
    parser.add_argument(
        "--license", default=None, help="license of the card's front matter (default: apache-2.0)"
    )
    parser.add_argument("--repo-id", default=None, help="repo id shown in the card's usage snippet")
    parser.add_argument(
        "--subfolder", default=None, help="subfolder shown in the card (default: the variant name)"
    )
    flags.add_debug(parser)  # fmt: skip


def check(args: argparse.Namespace) -> None:
    from panosamic.preflight import check_output_dir

    for flag, value in (("--miou", args.miou), ("--macc", args.macc)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} is a fraction in [0, 1], got {value}")
    if args.macc is not None and args.miou is None:
        raise ValueError("--macc needs --miou")
    if args.format == "onnx":
        from panosamic.preflight import check_output_file

        if not str(args.out).endswith(".onnx"):
            raise ValueError(f"with --format onnx, OUT is the .onnx file to write, got {args.out}")
        check_output_file(args.out, what="OUT")
        return
    if args.dynamic_size:
        raise ValueError("--dynamic-size goes with --format onnx")
    check_output_dir(args.out, what="OUT", create=False)


def run(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        return _run_onnx(args)
    from panosamic.training.export import export_checkpoint

    metrics = None if args.miou is None else {"miou": args.miou, "macc": args.macc}
    from panosamic.model.checkpoints import reference_model_config

    config = reference_model_config(args.config_path, args.vit_model, args.modalities, args.num_classes)
    result = export_checkpoint(
        args.checkpoint, args.out, dataset=args.dataset, fold=args.fold, depth_threshold=args.depth_threshold,
        dtype=args.dtype, metrics=metrics, license=args.license, repo_id=args.repo_id, subfolder=args.subfolder,
        config=config,
    )  # fmt: skip
    print(
        f"wrote {result.out_dir}: {result.num_tensors} tensors ({result.num_params:,} values), "
        f"{result.dropped_frozen} frozen SAM tensors left out; variant {result.config.variant_name}"
    )
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from panosamic.hub.student import load_student
    from panosamic.student.onnx import export_onnx

    student = load_student(args.checkpoint, subfolder=args.subfolder)
    path = export_onnx(student, args.out, dynamic_size=args.dynamic_size)
    size = "any H x 2H" if args.dynamic_size else "x".join(map(str, student.config.native_size))
    print(f"wrote {path}: {student.config.variant_name}, input (B, {3 * len(student.config.modalities)}, {size})")
    return 0
