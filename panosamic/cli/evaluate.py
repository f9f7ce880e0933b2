"""``panosamic evaluate`` flags (also ``python panosamic/evaluation/evaluate.py`` with the reference's flags)."""

from __future__ import annotations

import argparse
from pathlib import Path

from panosamic import flags
from panosamic.cli.checks import check_at_least
from panosamic.cli.train import check_num_classes
from panosamic.openvocab import options as open_vocab

DESCRIPTION = (
    "Score checkpoints on one fold or on several (each fold from its own confusion matrix; the summary "
    "is the mean of the per-fold scores). --checkpoint and --subfolder may hold {fold}. Without "
    "--checkpoint, the newest run of the experiment id (--config --vit --modalities) under "
    "--experiments-path is used. The reference's underscore flags (--dataset_path --config_path "
    "--experiments_path --sam_weights_path --vit_model --num_gpus --workers_per_gpu --batch_size "
    "--save_dir) are accepted too."
)
#: Folder of the results file when --output is not given.
DEFAULT_OUTPUT_DIR = "evaluations"


class _OutputFile(argparse.Action):
    """``--out FILE`` (``--output``, the earlier spelling, is a hidden alias); messages name the spelling used."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.output_flag = option_string or "--out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    flags.add_shared_arguments(parser, config_required=False)
    parser.add_argument("--fold", default="1", help="fold number, or 'all' for every fold of the dataset")
    parser.add_argument(
        "--folds", type=int, nargs="+", default=None, help="several folds, e.g. --folds 1 2 3"
    )
    parser.add_argument("--checkpoint", default=None, help=flags.CHECKPOINT_HELP + "; may hold {fold}")
    flags.add_hub(parser, fold_pattern=True)
    flags.add(
        parser, "--out", "--output", dest="output", default=None, metavar="FILE", action=_OutputFile,
        help=f"JSON results file (default: {DEFAULT_OUTPUT_DIR}/<dataset>_<date>.json)",
    )  # fmt: skip
    parser.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="folder for the per-class IoU, confusion-matrix and fold-summary PNGs",
    )
    flags.add(
        parser,
        "--save-dir",
        "--save_dir",
        dest="save_dir",
        default=None,
        metavar="DIR",
        help="folder for colourised predictions (<fold>/<sample>.png)",
    )
    parser.add_argument("--refine", action="store_true",
                        help="refine the semantic map with SAM instance masks (majority vote, slow)")  # fmt: skip
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="split scored (default test; val: a folder dataset's splits/val.txt)")
    parser.add_argument("--allow-train-overlap", action="store_true",
                        help="score a split that shares panoramas (or areas) with the checkpoint's training split "
                        "(refused otherwise: the scores would be inflated)")  # fmt: skip
    parser.add_argument("--latitude-bands", type=int, default=None, metavar="N",
                        help="latitude bands of the per-band IoU table and figure: N equal bands from +90 to "
                        "-90 deg (default: bands of 30 deg)")  # fmt: skip
    parser.add_argument("--seam-check", action="store_true",
                        help="one more forward per panorama, rolled by half its width: agreement of the rolled-back "
                        "prediction with the unrolled one (all pixels and near the +-180 deg seam) and the "
                        "rolled run's mIoU")  # fmt: skip
    open_vocab.add_arguments(parser)


def check(args: argparse.Namespace) -> None:
    """Flag values and every output location, before any model is built."""
    from panosamic.preflight import check_output_dir, check_output_file

    check_at_least(("--batch-size", args.batch_size, 1), ("--workers", args.workers_per_gpu, 0))
    check_num_classes(args)
    open_vocab.check(args, needs_classes=False)  # a SAM 3 checkpoint is prompted with the dataset's class names
    if args.latitude_bands is not None and not 1 <= args.latitude_bands <= 180:
        raise ValueError(f"--latitude-bands must be in 1..180, got {args.latitude_bands}")
    if args.output:
        check_output_file(args.output, what=getattr(args, "output_flag", "--out"))
    else:
        check_output_dir(Path(DEFAULT_OUTPUT_DIR), what="--out (default folder)", create=False)
    for flag, folder in (("--plots", args.plots), ("--save-dir", args.save_dir)):
        if folder:
            check_output_dir(folder, what=flag, create=False)


def run(args: argparse.Namespace) -> int:
    from panosamic.evaluation.evaluate import run as evaluate_run

    return evaluate_run(args)
