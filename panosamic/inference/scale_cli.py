"""``panosamic predict`` on the scaled path: from the parsed flags to :func:`predict_dataset`.

The flags are :func:`panosamic.cli.predict.add_scale_arguments` (torch-free, for a quick ``--help``);
``panosamic.inference.cli.run`` loads the model and, ``if wants_scaled(args)``, returns
``run_scaled(args, model)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from panosamic.inference.scale import ScaleOptions


def wants_scaled(args: argparse.Namespace) -> bool:
    """Whether ``panosamic predict`` should take the scaled path: a list file, a dataset, explicit
    ``--outputs`` / ``--workers``, or several torchrun processes."""
    explicit = any(getattr(args, k, None) is not None for k in ("manifest", "dataset", "outputs", "workers"))
    return explicit or int(os.environ.get("WORLD_SIZE", "1")) > 1


def options_from_args(args: argparse.Namespace) -> ScaleOptions:
    from panosamic.inference.scale import DEFAULT_OUTPUTS, ScaleOptions

    return ScaleOptions(
        outputs=args.outputs or DEFAULT_OUTPUTS, batch_size=getattr(args, "batch_size", 1),
        workers=2 if args.workers is None else args.workers, resume=args.resume,
        precision=getattr(args, "precision", "fp32"), depth_scale=getattr(args, "depth_scale", None),
        depth_threshold=getattr(args, "depth_threshold", None), overlay_alpha=getattr(args, "overlay_alpha", 0.5),
        overlay_format=getattr(args, "overlay_format", "jpg"), fingerprint=args.fingerprint,
        progress=getattr(args, "progress", True), max_pixels=getattr(args, "max_pixels", None),
    )  # fmt: skip


def run_scaled(args: argparse.Namespace, model: Any) -> int:
    """``panosamic predict`` on the scaled path with an already loaded model; exit status."""
    from panosamic.inference.scale import predict_dataset

    if getattr(args, "refine", False):
        raise ValueError("--refine is not available at scale (with --manifest/--dataset/--outputs/--workers/torchrun)")
    report = predict_dataset(
        model, getattr(args, "inputs", None) or None, getattr(args, "out", "predictions"), manifest=args.manifest,
        dataset=args.dataset, dataset_path=args.dataset_path, split=args.split, fold=args.fold,
        depth=getattr(args, "depth", None), normals=getattr(args, "normals", None), device=getattr(args, "device", None),
        options=options_from_args(args), recursive=getattr(args, "recursive", False), exclude=getattr(args, "out", None),
    )  # fmt: skip
    # torchrun reports any rank's non-zero exit as a crash (ChildFailedError): a run that finished with
    # skipped panoramas exits 0 there, unless --strict (documented in panosamic.inference.cli)
    lenient = report.world_size > 1 and not getattr(args, "strict", False)
    if report.rank != 0:
        return 0 if lenient or not report.failed else 1
    t = report.totals
    for f in report.failed:
        print(f"  {f['input']}: {f['error']}", file=sys.stderr)
    exit_note = "" if not report.failed or not lenient else " (exit status 0 under torchrun; --strict for 1)"
    print(f"{report.total} panorama(s) on {report.world_size} process(es): predicted {t['predicted']}, "
          f"already finished {t['resumed']}, failed {len(report.failed)}; summary: {report.summary}{exit_note}")  # fmt: skip
    return 0 if lenient or not report.failed else 1
