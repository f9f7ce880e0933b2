"""``panosamic adapt``: self-train a model on a folder of unlabelled panoramas.

Only argparse here at import time (``--help`` stays fast); torch and the model load in :func:`run`.
Runs in one process or under ``torchrun --nproc_per_node N -m panosamic.cli adapt ...`` (DDP).
"""

from __future__ import annotations

import argparse
import sys

from panosamic import flags
from panosamic.adapt.settings import AdaptSettings

__all__ = ["add_arguments", "add_parser", "check", "run"]

HELP = "adapt a model to unlabelled panoramas (mean-teacher self-training)"
_D = AdaptSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="unlabelled panorama files or folders (jpg/png/webp)")
    p.add_argument("--checkpoint", required=True,
                   help="the model to adapt: variant name, Hub id, local folder, .safetensors, training .pth or run")
    flags.add_hub(p)
    p.add_argument("--out", required=True, help="output folder: adapted.pth, config.json + weights, train_log.jsonl")
    p.add_argument("--depth", help="folder of depth files matched by name (models using depth)")
    p.add_argument("--normals", help="folder of normal images matched by name (models using normals)")
    p.add_argument("--depth-scale", type=float, help="depth files are metric: metres per stored unit")
    p.add_argument("--depth-threshold", type=float, help="metres mapped to black (default: the checkpoint's)")
    g = p.add_argument_group("labelled source set (against forgetting)")
    g.add_argument("--source-dataset", help="dataset name of a prepared labelled set, e.g. stanford2d3ds, or pinhole "
                   "(a prepared pinhole folder, its photos projected onto the panorama: the --pinhole-* flags)")
    g.add_argument("--source-path", help="its prepared folder")
    g.add_argument("--source-fold", type=int, default=1, help="its fold (training split used; default 1)")
    g.add_argument("--source-weight", type=float, default=_D.source_weight, help="default: %(default)s")
    g = p.add_argument_group("self-training")
    g.add_argument("--epochs", type=int, default=_D.epochs, help="default: %(default)s")
    g.add_argument("--batch-size", type=int, default=_D.batch_size, help="per process (default: %(default)s)")
    g.add_argument("--lr", type=float, default=_D.lr, help="AdamW learning rate (default: %(default)s)")
    g.add_argument("--ema-decay", type=float, default=_D.ema_decay, help="teacher EMA decay (default: %(default)s)")
    g.add_argument("--keep-fraction", type=float, default=_D.keep_fraction,
                   help="share of each class's most confident pixels kept (default: %(default)s)")
    g.add_argument("--max-threshold", type=float, default=_D.max_threshold,
                   help="confidence above which a pixel is always kept (default: %(default)s)")
    g.add_argument("--threshold-every", type=int, default=_D.threshold_every,
                   help="epochs between threshold re-estimates (default: %(default)s)")
    g.add_argument("--refine-masks", action=argparse.BooleanOptionalAction, default=None,
                   help="refine pseudo-labels with SAM's automatic masks (default: with Meta's SAM weights)")
    g.add_argument("--no-photometric", action="store_true", help="student views without photometric changes")
    g.add_argument("--train-encoder", action="store_true", help="also train the SAM encoder (normally frozen)")
    g = p.add_argument_group("run")
    g.add_argument("--max-steps", type=int, help="stop after this many steps (continue with --resume)")
    g.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    g.add_argument("--keep-last", action="store_true", help="keep model_last.pth at the end")
    g.add_argument("--seed", type=int, default=_D.seed, help="default: %(default)s")
    flags.add_precision(g)
    flags.add_device(g)
    g.add_argument("--workers", type=int, default=_D.workers, help="data-loading processes (default: %(default)s)")
    flags.add_sam_weights(g)
    g.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    flags.add_progress(g, "--quiet")
    flags.add_debug(p)
    g = p.add_argument_group("a fixed pseudo-label model instead of the mean teacher")
    g.add_argument("--pseudo-labels-from", metavar="CHECKPOINT",
                   help="e.g. sam3 (SAM 3 prompted with the model's class names, or --classes: one per model class)")
    from panosamic.openvocab import options as open_vocab

    open_vocab.add_arguments(p)
    from panosamic.data.pinhole_layout import add_pinhole_arguments

    add_pinhole_arguments(p, sources=False)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``adapt`` on a subparsers object."""
    parser = subparsers.add_parser("adapt", help=HELP, description=HELP)
    add_arguments(parser)
    parser.set_defaults(_run=run)
    return parser


def settings_from_args(args: argparse.Namespace) -> AdaptSettings:
    return AdaptSettings.from_args(args, photometric=not args.no_photometric)


def check(args: argparse.Namespace) -> None:
    """Every flag and the output folder, before any model is loaded (or SAM masks computed)."""
    from panosamic.adapt.settings import check_output, check_source
    from panosamic.training.checks import check_number, check_out_folder
    from panosamic.training.settings import check_flags

    check_flags(args, AdaptSettings)  # each flag of a setting with a range: --epochs, --lr, --ema-decay, ...
    check_number("--source-fold", args.source_fold, minimum=1, integer=True)
    for flag, value in (("--depth-scale", args.depth_scale), ("--depth-threshold", args.depth_threshold)):
        check_number(flag, value, above=0)
    settings_from_args(args)
    check_source(args.source_dataset, args.source_path)
    _source_projection(args)
    check_out_folder("--out", args.out)
    check_output(args.out, args.resume)
    _check_pseudo_labels(args)


def _check_pseudo_labels(args: argparse.Namespace) -> None:
    from panosamic.openvocab import options as open_vocab

    open_vocab.check(args, needs_classes=False, checkpoint=args.pseudo_labels_from or "")
    given = open_vocab.view_options(args) or open_vocab.classes_from_args(args)
    if given and args.pseudo_labels_from is None:
        raise ValueError("--classes / --classes-file / --views / --fov / --coverage-threshold / --smoothing describe "
                         "the pseudo-label model: give --pseudo-labels-from CHECKPOINT (e.g. sam3)")


def _pseudo_label_options(args: argparse.Namespace) -> dict:
    from panosamic.openvocab import options as open_vocab

    out = open_vocab.view_options(args)
    classes = open_vocab.classes_from_args(args)
    if classes is not None:
        out["classes"] = classes
    return out


def _source_projection(args: argparse.Namespace) -> dict | None:
    """Where the photos of a pinhole source land (checked; None for other sources)."""
    from panosamic.data.pinhole_layout import PINHOLE_SOURCE, projection_flags_given, projection_from_args

    projection = projection_from_args(args)
    given = projection_flags_given(args)
    if given and args.source_dataset != PINHOLE_SOURCE:
        raise ValueError(f"{given[0]}: only with --source-dataset pinhole")
    return projection if args.source_dataset == PINHOLE_SOURCE else None


def run(args: argparse.Namespace) -> int:
    from panosamic.adapt.api import adapt
    from panosamic.distributed import cleanup_distributed, init_distributed

    settings = settings_from_args(args)
    ctx = init_distributed(args.device)
    load = {"subfolder": args.subfolder, "revision": args.revision, "local_files_only": bool(args.local_files_only)}
    try:
        result = adapt(
            args.checkpoint, args.inputs, args.out, settings=settings, depth=args.depth, normals=args.normals,
            depth_scale=args.depth_scale, depth_threshold=args.depth_threshold, source_dataset=args.source_dataset,
            source_path=args.source_path, source_fold=args.source_fold, source_projection=_source_projection(args),
            resume=args.resume, pseudo_labels_from=args.pseudo_labels_from,
            pseudo_label_options=_pseudo_label_options(args),
            sam_weights=args.sam_weights_path, ctx=ctx, load={k: v for k, v in load.items() if v is not None},
        )  # fmt: skip
    finally:
        cleanup_distributed()
    if ctx.is_main:
        state = "finished" if result.finished else "stopped"
        from panosamic.progress import count

        print(f"adapt {state} after {count(result.global_step, 'step')} -> {result.out_dir}", file=sys.stdout)
    return 0
