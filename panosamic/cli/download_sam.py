"""``panosamic download-sam`` flags: download and verify Meta's SAM checkpoints."""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.specs import SAM_VITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "vit_model",
        nargs="+",
        choices=SAM_VITS,
        metavar="VIT",
        help=f"ViT size(s) to download: {', '.join(SAM_VITS)}",
    )
    flags.add(
        parser,
        "--out",
        "--dir",
        dest="dir",
        default=None,
        metavar="DIR",
        help="folder to download into (default: $PANOSAMIC_CACHE/sam, else ~/.cache/panosamic/sam)",
    )
    parser.add_argument("--force", action="store_true", help="download again even if the file exists")
    parser.add_argument("--verify", action="store_true", help="also check the MD5 of files already present")
    flags.add_progress(
        parser, help="download silently (without it: a bar on a terminal, else a line every 10 s)"
    )
    flags.add_debug(parser)  # fmt: skip


def check(args: argparse.Namespace) -> None:
    from panosamic.preflight import check_output_dir

    if args.dir is not None:
        check_output_dir(args.dir, what="--out", create=False)


def run(args: argparse.Namespace) -> int:
    from panosamic.weights.sam import download_sam_checkpoint, verify_sam_checkpoint

    for vit in args.vit_model:
        path = download_sam_checkpoint(vit, args.dir, progress=args.progress, force=args.force)
        if args.verify:
            verify_sam_checkpoint(path, vit)
        print(path)
    return 0
