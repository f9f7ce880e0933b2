"""Command-line flags of the open-vocabulary segmenter (``--classes``, ``--classes-file``,
``--views``, ``--fov``, ``--coverage-threshold``, ``--smoothing``), shared by predict, evaluate and
distill. No torch here: the flags are checked before any model loads."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from panosamic.openvocab.classes import ClassPrompts, parse_class_file, parse_class_list

__all__ = ["add_arguments", "check", "classes_from_args", "load_options", "teacher_options", "view_options"]

VIEW_CHOICES = ("erp", "cube", "tangent")


def add_arguments(parser: argparse.ArgumentParser, *, classes: bool = True) -> None:
    g = parser.add_argument_group("open vocabulary (--checkpoint sam3, test-sam3-tiny, or a SAM 3 folder / Hub id)")
    if classes:
        g.add_argument("--classes", metavar="NAMES",
                       help='the classes to segment, comma-separated: --classes "floor, bed, lamp"')
        g.add_argument("--classes-file", metavar="FILE",
                       help="one class per line, optionally with synonyms: 'lamp: light, lantern' (# comments)")
    g.add_argument("--views", choices=VIEW_CHOICES, default=None,
                   help="erp: the whole panorama (the reference's zero-shot baseline, default); cube / tangent: "
                   "perspective views blended back onto the panorama")
    g.add_argument("--fov", type=float, metavar="DEG", help="field of view of each view (default: cube 100, tangent 75)")
    g.add_argument("--coverage-threshold", type=float, metavar="T",
                   help="class score under which a pixel goes to the catch-all class (clutter / objects; "
                   "else ignore); default 0.05")
    g.add_argument("--smoothing", type=int, default=0, metavar="K",
                   help="odd majority-filter window over the labels (0: off)")


def classes_from_args(args: argparse.Namespace) -> ClassPrompts | None:
    """The class list of ``--classes`` / ``--classes-file`` (checked), or None when neither is given."""
    text, file = getattr(args, "classes", None), getattr(args, "classes_file", None)
    if text is not None and file is not None:
        raise ValueError("give the classes once: --classes or --classes-file, not both")
    if file is not None:
        return parse_class_file(file)
    if text is not None:
        return parse_class_list(text, where="--classes")
    return None


def check(args: argparse.Namespace, *, needs_classes: bool = True, checkpoint: str | None = None) -> None:
    """Refuse bad open-vocabulary flags before any model loads."""
    from panosamic.openvocab.loading import NEEDS_CLASSES, is_sam3_checkpoint
    from panosamic.openvocab.views import check_views

    classes = classes_from_args(args)
    checkpoint = checkpoint or getattr(args, "checkpoint", None)
    if needs_classes and classes is None and checkpoint and is_sam3_checkpoint(checkpoint, getattr(args, "subfolder", None)):
        raise ValueError(NEEDS_CLASSES)
    views = getattr(args, "views", None)
    fov = getattr(args, "fov", None)
    if fov is not None and views in (None, "erp"):
        raise ValueError("--fov applies to --views cube or tangent")
    check_views(views or "erp", fov)
    t = getattr(args, "coverage_threshold", None)
    if t is not None and not 0 <= t <= 1:
        raise ValueError(f"--coverage-threshold must be in [0, 1], got {t}")
    k = getattr(args, "smoothing", 0) or 0
    if k < 0 or (k > 1 and k % 2 == 0):
        raise ValueError(f"--smoothing must be 0 (off) or an odd window size, got {k}")


def load_options(args: argparse.Namespace, dataset_classes: Sequence[str] | None = None,
                 dataset: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`panosamic.load_model` for the open-vocabulary flags given ({} if none).

    ``dataset_classes``: the class names of the dataset scored (evaluate): the prompts when no
    ``--classes`` is given, else the given list must have as many classes, in the dataset's order.
    """
    out: dict[str, Any] = {}
    classes = classes_from_args(args)
    if classes is not None and dataset_classes is not None and classes.num_classes != len(dataset_classes):
        raise ValueError(f"--classes gives {classes.num_classes} classes but {dataset or 'the dataset'} has "
                         f"{len(dataset_classes)} ({', '.join(dataset_classes)}): give one name (synonyms in a "
                         "classes file) per dataset class, in this order")
    if classes is None and dataset_classes is not None:
        from panosamic.openvocab.loading import is_sam3_checkpoint

        if is_sam3_checkpoint(checkpoint or getattr(args, "checkpoint", None) or "", getattr(args, "subfolder", None)):
            classes = ClassPrompts.create(list(dataset_classes))
    if classes is not None:
        out["classes"] = classes
    out.update(view_options(args))
    if out and "classes" not in out:
        raise ValueError("--views / --fov / --coverage-threshold / --smoothing apply to an open-vocabulary "
                         "checkpoint (sam3, test-sam3-tiny, a SAM 3 folder) with --classes or --classes-file")
    return out


def view_options(args: argparse.Namespace) -> dict[str, Any]:
    """``views``, ``fov_deg``, ``coverage_threshold``, ``smoothing`` as given on the command line."""
    out: dict[str, Any] = {}
    for flag, key in (("views", "views"), ("fov", "fov_deg"), ("coverage_threshold", "coverage_threshold")):
        if getattr(args, flag, None) is not None:
            out[key] = getattr(args, flag)
    if getattr(args, "smoothing", 0):
        out["smoothing"] = args.smoothing
    return out


def teacher_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The open-vocabulary options of a distillation teacher as plain values (they are stored with
    the run's settings), or None when no class list is given."""
    out = load_options(args)
    if not out:
        return None
    out["classes"] = out["classes"].to_dict()
    return out
