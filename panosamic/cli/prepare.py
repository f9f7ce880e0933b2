"""``panosamic prepare`` flags: turn a raw dataset download into the processed layout."""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.cli.checks import check_at_least
from panosamic.data.pinhole_layout import PINHOLE_DATASETS
from panosamic.specs import DATASET_NAMES

#: Skipped samples listed by name at the end of a run (the rest are counted).
MAX_LISTED = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from panosamic.data.depth import DEPTH_RESIZE_MODES

    parser.add_argument(
        "dataset", choices=DATASET_NAMES + PINHOLE_DATASETS, help="which dataset the raw folder holds"
    )
    parser.add_argument(
        "--raw", required=True, metavar="DIR", help="the raw download (the dataset's own layout)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (processed layout)")
    parser.add_argument(
        "--scale", type=float, default=None,
        help="resize factor in (0, 1]; default: the reference's (stanford2d3ds 1.0, matterport3d 0.25, "
        "structured3d 1.0, folder 1.0). Use 0.25 for 2048x4096 Stanford panoramas (-> 512x1024, the model's size)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true",
        help="delete what an earlier prepare wrote in --out (samples, caches) and start clean; without it a "
        "rerun resumes, and refuses other --scale / --depth-resize than the folder was prepared with",
    )  # fmt: skip
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip samples with missing/unreadable raw files"
    )
    parser.add_argument(
        "--depth-resize", choices=DEPTH_RESIZE_MODES, default="reference",
        help="reference: Lanczos including the holes (what the published checkpoints saw); "
        "hole-aware: no depth is invented next to holes (for new training; always for folder)",
    )  # fmt: skip
    g = parser.add_argument_group("folder (your own data: DATA/classes.json, images/, labels/, see the README)")
    g.add_argument("--folds", type=int, default=None, metavar="K",
                   help="without DATA/splits/*.txt: K folds by a seeded shuffle (default 5)")
    g.add_argument("--seed", type=int, default=None, metavar="N", help="seed of the --folds shuffle (default 0)")
    g = parser.add_argument_group("pinhole photos (trained on projected onto the panorama, see the README)")
    g.add_argument("--pinhole", action="store_true",
                   help="folder: images/ are ordinary (perspective) photos, not panoramas")
    g.add_argument("--fov", type=float, default=None, metavar="DEG",
                   help="with --pinhole: horizontal field of view of every photo (or \"fov_deg\" in "
                   "classes.json; per photo in cameras.json)")
    flags.add_progress(parser)
    flags.add_debug(parser)


def check(args: argparse.Namespace) -> None:
    from panosamic.preflight import check_output_dir

    given = [f for f, v in (("--folds", args.folds), ("--seed", args.seed)) if v is not None]
    if given and args.dataset != "folder":
        raise ValueError(f"{' and '.join(given)}: only for `prepare folder`; {args.dataset} has its published folds")
    if args.pinhole and args.dataset != "folder":
        raise ValueError(f"--pinhole: only for `prepare folder`; {args.dataset} knows its own projection")
    if args.fov is not None and not args.pinhole:
        raise ValueError("--fov: only with `prepare folder --pinhole` (the photos' horizontal field of view)")
    if args.fov is not None and not 0 < args.fov < 180:
        raise ValueError(f"--fov must be in (0, 180) degrees, got {args.fov:g}")
    if args.dataset == "folder" and args.skip_bad:
        raise ValueError("--skip-bad: `prepare folder` checks every file first and names the first problem; fix it")
    check_at_least(("--folds", args.folds, 2))
    check_output_dir(args.out, what="--out", create=False)


def run(args: argparse.Namespace) -> int:
    from panosamic.data.prepare import prepare_dataset

    extra = {"folds": args.folds, "seed": args.seed or 0} if args.dataset == "folder" else {}
    if args.pinhole or args.dataset in PINHOLE_DATASETS:
        from panosamic.data.pinhole_prepare import prepare_pinhole_folder, prepare_stanford_pinhole

        prepare = prepare_pinhole_folder if args.pinhole else prepare_stanford_pinhole
        report = prepare(args.raw, args.out, args.scale, overwrite=args.overwrite, skip_bad=args.skip_bad,
                         progress=args.progress, fov_deg=args.fov, **extra)  # fmt: skip
    else:
        report = prepare_dataset(
            args.dataset, args.raw, args.out, args.scale, overwrite=args.overwrite, skip_bad=args.skip_bad,
            depth_resize=args.depth_resize, progress=args.progress, **extra,
        )  # fmt: skip
    what = "photos" if args.pinhole or args.dataset in PINHOLE_DATASETS else "panoramas"
    print(
        f"prepared {report.num_samples} {report.dataset} {what} in {report.out} "
        f"({report.num_written} written, {report.num_existing} already done) in {report.seconds:.1f} s"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} bad sample(s):")
        for name, reason in report.skipped[:MAX_LISTED]:
            print(f"  {name}: {reason}")
        if len(report.skipped) > MAX_LISTED:
            print(f"  ... and {len(report.skipped) - MAX_LISTED} more")
    return 0
