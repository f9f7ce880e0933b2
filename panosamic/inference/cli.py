"""``panosamic predict``: segment panorama files and folders with any checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from panosamic import viz
from panosamic.inference.inputs import _unique_names, collect_inputs, match_aux
from panosamic.inference.predict import PRECISIONS, _prepare, _Prepared, _resolve_device, _run
from panosamic.inference.result import LEGEND_FILE, SUMMARY_FILE, PredictionResult, _save_image, class_info
from panosamic.io import atomic_write_text
from panosamic.specs import VIT_SPECS


def config_from_args(args: argparse.Namespace) -> Any:
    """A ModelConfig from ``--config --vit --modalities --num-classes`` (all or none), else None."""
    given = {"--config": args.config, "--vit": args.vit, "--modalities": args.modalities, "--num-classes": args.num_classes}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"{', '.join(given)} describe the architecture together: also give {', '.join(missing)}")
    from panosamic.config import PanoSAMicConfig

    return PanoSAMicConfig.from_json(args.config).model_config(
        vit=args.vit, modalities=args.modalities, num_classes=args.num_classes
    )


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The model of ``--checkpoint`` (any kind of checkpoint: see :func:`panosamic.load_model`)."""
    from panosamic.model import load_model

    return load_model(
        args.checkpoint, subfolder=args.subfolder, config=config_from_args(args), sam_weights=args.sam_weights,
        semantic_only=not args.refine, revision=args.revision, local_files_only=bool(args.local_files_only),
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="panorama files or folders (jpg/png/webp)")
    parser.add_argument(
        "--checkpoint", required=True,
        help="a published variant name (see `panosamic info`), a Hub repo id (with --subfolder), a local Hub-layout "
        "folder, a .safetensors file, a training .pth or a training run folder",
    )  # fmt: skip
    parser.add_argument("--subfolder", help="variant subfolder, e.g. stanford2d3ds-vith-rgbd-fold1")
    parser.add_argument("--depth", help="depth file (one input) or folder with depth files matched by name")
    parser.add_argument(
        "--normals", help="normals file (one input) or folder with normal images matched by name"
    )
    parser.add_argument("--out", default="predictions", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--refine", action="store_true", help="refine labels with SAM's automatic masks (slower)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="default: %(default)s")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="panoramas per forward pass (default: %(default)s)"
    )
    parser.add_argument(
        "--sam-grid",
        choices=("image", "canvas"),
        default="image",
        help="with --refine: prompt SAM only on the panorama (default) or on the whole padded canvas "
        "like the reference (twice the work, same semantic logits)",
    )
    g = parser.add_argument_group("depth")
    g.add_argument(
        "--depth-scale", type=float, help="depth files are metric: metres per stored unit (e.g. 0.001)"
    )
    g.add_argument("--depth-threshold", type=float, help="metres mapped to black (default: the checkpoint's)")
    g = parser.add_argument_group("output")
    g.add_argument(
        "--overlay-alpha", type=float, default=0.5, help="colour weight of the overlay (default: %(default)s)"
    )
    g.add_argument("--overlay-format", choices=("jpg", "png"), default="jpg", help="default: %(default)s")
    g = parser.add_argument_group("checkpoints without a config.json that are not published variants")
    g.add_argument("--config", help="reference config JSON (e.g. config/config_stanford2d3ds_dv.json)")
    g.add_argument("--vit", choices=tuple(VIT_SPECS), help="ViT size")
    g.add_argument("--modalities", help="comma-separated, e.g. image,depth")
    g.add_argument("--num-classes", type=int)
    g.add_argument(
        "--sam-weights", help="SAM .pth file or folder (default: the cache; downloaded if missing)"
    )
    g.add_argument("--revision", help="Hub revision")
    g.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise ValueError(f"--overlay-alpha must lie in [0, 1], got {args.overlay_alpha}")
    if args.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}")
    inputs = collect_inputs(args.inputs)
    depths = match_aux(inputs, args.depth, "depth")
    normals = match_aux(inputs, args.normals, "normals")
    names = _unique_names(inputs)
    out_dir = Path(args.out)
    model = load_model_from_args(args)
    _resolve_device(model, args.device)
    if args.refine:
        from panosamic.modeling.instance import InstanceSettings

        model.instance_settings = InstanceSettings(grid=args.sam_grid)
    threshold = (
        args.depth_threshold if args.depth_threshold is not None else getattr(model, "depth_threshold", None)
    )
    class_names, palette = class_info(model)

    summary: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "subfolder": args.subfolder,
        "refine": bool(args.refine),
        "class_names": list(class_names),
        "palette": palette.tolist(),
        "predictions": {},
        "skipped": [],
    }
    failed: list[tuple[Path, str]] = []

    def fail(path: Path, err: BaseException) -> None:
        msg = str(err) or type(err).__name__
        failed.append((path, msg))
        summary["skipped"].append({"input": str(path), "error": msg})
        tqdm.write(f"panosamic predict: skipped {path}: {msg}", file=sys.stderr)

    start = time.perf_counter()
    todo = list(zip(inputs, depths, normals, names))
    with tqdm(total=len(todo), unit="pano", desc="predict", disable=None) as bar:
        for b in range(0, len(todo), args.batch_size):
            batch: list[tuple[Path, _Prepared]] = []
            for path, d, nm, name in todo[b : b + args.batch_size]:
                try:
                    for kind, found, folder in (("depth", d, args.depth), ("normals", nm, args.normals)):
                        if kind in model.modalities and found is None and folder is not None:
                            raise FileNotFoundError(f"no {kind} file matching {path.name} in {folder}")
                    prep = _prepare(
                        model, path, d, nm, depth_scale=args.depth_scale, depth_threshold=threshold, name=name
                    )
                    batch.append((path, prep))
                except (ValueError, TypeError, OSError) as e:
                    fail(path, e)
                    bar.update(1)
            if not batch:
                continue

            def infer(preps: list[_Prepared]) -> list[PredictionResult]:
                return _run(model, preps, refine=args.refine, device=None, precision=args.precision)

            done_batch: list[tuple[Path, _Prepared, PredictionResult]] = []
            try:
                results = infer([p for _, p in batch])
                done_batch = [(path, prep, res) for (path, prep), res in zip(batch, results)]
            except (ValueError, RuntimeError) as e:
                if len(batch) == 1:
                    fail(batch[0][0], e)
                    bar.update(1)
                    continue
                for path, prep in batch:  # find the panorama that fails, keep the others
                    try:
                        done_batch.append((path, prep, infer([prep])[0]))
                    except (ValueError, RuntimeError) as e1:
                        fail(path, e1)
                        bar.update(1)
            for path, prep, res in done_batch:
                try:
                    files = res.save(
                        out_dir,
                        prep.name,
                        overlay_alpha=args.overlay_alpha,
                        overlay_format=args.overlay_format,
                        legend=False,
                    )
                    summary["predictions"][prep.name] = {
                        "input": str(path),
                        "files": {k: v.name for k, v in files.items()},
                        **res.summary(),
                    }
                except OSError as e:
                    fail(path, e)
                bar.update(1)
    seconds = time.perf_counter() - start
    done = len(summary["predictions"])
    summary["seconds"] = round(seconds, 3)
    summary["seconds_per_panorama"] = round(seconds / max(done, 1), 3)
    if done:
        _save_image(viz.legend(class_names, palette), out_dir / LEGEND_FILE)
        summary["legend"] = LEGEND_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {done} prediction(s) to {out_dir}" + (f"; skipped {len(failed)}:" if failed else ""))
    for path, msg in failed:
        print(f"  {path}: {msg}", file=sys.stderr)
    return 1 if failed else 0
