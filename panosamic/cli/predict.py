"""``panosamic predict`` flags: segment panorama files and folders with any checkpoint."""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.cli.checks import check_at_least
from panosamic.openvocab import options as open_vocab
from panosamic.specs import DATASET_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="panorama files or folders (jpg/png/webp); or --manifest / --dataset",
    )
    parser.add_argument(
        "--recursive", action="store_true",
        help="also predict the panoramas in sub-folders of folder inputs (output names: the file stem, with the folder's name when two clash)",
    )  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help=flags.CHECKPOINT_HELP)
    flags.add_hub(parser)
    parser.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    parser.add_argument(
        "--runtime", choices=("auto", "torch", "onnx"), default="auto",
        help="onnx: run an exported compact student (.onnx, see `panosamic export --format onnx`) with "
        "onnxruntime; auto: onnx for .onnx checkpoints, else torch",
    )  # fmt: skip
    parser.add_argument("--depth", help="depth file (one input) or folder with depth files matched by name")
    parser.add_argument(
        "--normals", help="normals file (one input) or folder with normal images matched by name"
    )
    parser.add_argument("--out", default="predictions", metavar="DIR", help="output folder")
    parser.add_argument(
        "--refine", action="store_true", help="refine labels with SAM's automatic masks (slower)"
    )
    flags.add_device(parser)
    flags.add_precision(parser)
    flags.add_batch_size(parser)
    parser.add_argument(
        "--sam-grid", choices=("image", "canvas"), default="image",
        help="with --refine: prompt SAM only on the panorama, or on the whole padded canvas like the reference "
        "(twice the work, same semantic logits)",
    )  # fmt: skip
    parser.add_argument(
        "--max-pixels", type=int, metavar="N",
        help="refuse panoramas of more than N pixels, from the file header (default: "
        "panosamic.inference.inputs.MAX_PIXELS = 8192 x 16384)",
    )  # fmt: skip
    parser.add_argument(
        "--strict", action="store_true",
        help="under torchrun, exit 1 when some panoramas were skipped (default there: 0, so that the launcher "
        "reports no crash; in one process a skipped panorama always gives exit status 1)",
    )  # fmt: skip
    flags.add_progress(parser)
    g = parser.add_argument_group("depth")
    g.add_argument(
        "--depth-scale", type=float, help="depth files are metric: metres per stored unit (e.g. 0.001)"
    )
    g.add_argument("--depth-threshold", type=float, help="metres mapped to black (default: the checkpoint's)")
    g = parser.add_argument_group("output")
    g.add_argument("--overlay-alpha", type=float, default=0.5, help="colour weight of the overlay")
    g.add_argument(
        "--overlay-format", choices=("jpg", "png"), default="jpg", help="file format of the overlay"
    )
    g = parser.add_argument_group("checkpoints without a config.json that are not published variants")
    flags.add_architecture(g)
    flags.add_sam_weights(g)
    open_vocab.add_arguments(parser)
    add_scale_arguments(parser)
    flags.add_debug(parser)


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the scaled path (:func:`panosamic.inference.scale.predict_dataset`)."""
    g = parser.add_argument_group("at scale (also under torchrun --nproc_per_node N)")
    g.add_argument(
        "--manifest",
        metavar="FILE",
        help="a .txt (one path per line) or .csv (image[,depth,normals] columns) list of panoramas",
    )
    g.add_argument("--dataset", choices=DATASET_NAMES, help="predict a prepared dataset's split")
    g.add_argument("--dataset-path", metavar="DIR", help="the prepared dataset folder (with --dataset)")
    g.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="with --dataset (val: a folder dataset's splits/val.txt)")
    g.add_argument("--fold", type=int, default=1, help="with --dataset")
    g.add_argument(
        "--outputs",
        metavar="KINDS",
        help="comma-separated subset of labels,color,overlay,probs (default: labels,color,overlay)",
    )
    g.add_argument("--workers", type=int, metavar="N", help="data-loading processes per process (default: 2)")
    g.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip panoramas the output folder's progress log says are finished (default: on)",
    )
    g.add_argument("--fingerprint", default="stat",
                   help="how changed inputs are found: stat (size and mtime) or hash (content)")  # fmt: skip


def check(args: argparse.Namespace) -> None:
    """Flag values and the output folder, before any model is built."""
    from panosamic.preflight import check_output_dir

    if not (args.inputs or args.manifest or args.dataset):
        raise ValueError(
            "nothing to predict: give panorama files or folders, --manifest FILE, or "
            "--dataset NAME --dataset-path DIR"
        )
    is_onnx = str(args.checkpoint).endswith(".onnx")
    if args.runtime == "onnx" and not is_onnx:
        raise ValueError(f"--runtime onnx runs an .onnx export (panosamic export --format onnx), got {args.checkpoint}")
    if args.runtime == "torch" and is_onnx:
        raise ValueError(f"{args.checkpoint} is an ONNX graph: use --runtime onnx (or auto)")
    if is_onnx and args.device not in ("auto", "cpu"):
        raise ValueError(f"--device {args.device}: an ONNX student runs on the CPU (onnxruntime); use --device cpu")
    check_at_least(("--batch-size", args.batch_size, 1), ("--max-pixels", args.max_pixels, 1))
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise ValueError(f"--overlay-alpha must lie in [0, 1], got {args.overlay_alpha}")
    open_vocab_flags = any(getattr(args, k, None) for k in ("classes", "classes_file", "views", "fov"))
    if not is_onnx or open_vocab_flags:  # an .onnx student is no SAM 3 (and its path imports no torch)
        open_vocab.check(args)
    if args.outputs is not None:
        from panosamic.inference.writers import parse_outputs

        try:
            parse_outputs(args.outputs)
        except ValueError as e:
            raise ValueError(f"--{e} (an empty list would write nothing)") from None
    if args.manifest is not None:
        _check_manifest(args.manifest)
    check_output_dir(args.out, what="--out", create=False)
    if not is_onnx:
        _check_downloads(args)


def _check_downloads(args: argparse.Namespace) -> None:
    """Offline, a published variant whose checkpoint or SAM weights are missing fails here at once,
    naming every missing file (not after the Hub client's retries)."""
    from panosamic.model.downloads import check_downloads

    check_downloads(args.checkpoint, subfolder=args.subfolder, sam_weights=args.sam_weights_path,
                    revision=args.revision, local_files_only=args.local_files_only)


def _check_manifest(path: str) -> None:
    """A missing or binary ``--manifest`` is refused before any model is loaded."""
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"--manifest {p} not found (expected a .txt or .csv list of panoramas)")
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    try:
        if b"\0" in head:
            raise UnicodeDecodeError("utf-8", head, head.index(b"\0"), head.index(b"\0") + 1, "NUL byte")
        (head if len(head) < (1 << 16) else head[:-4]).decode("utf-8-sig")  # a cut multi-byte character is fine
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--manifest {p} is not a text list of panoramas (binary content at byte {e.start}); expected a .txt "
            "with one path per line or a .csv with an image column"
        ) from None


def run(args: argparse.Namespace) -> int:
    from panosamic.inference.cli import run as predict_run

    return predict_run(args)
