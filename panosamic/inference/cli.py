"""``panosamic predict``: segment panorama files and folders with any checkpoint (the flags:
:mod:`panosamic.cli.predict`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from panosamic import viz
from panosamic.inference.inputs import _unique_names, collect_inputs, match_aux
from panosamic.inference.predict import _prepare, _Prepared, _resolve_device, _run
from panosamic.inference.result import LEGEND_FILE, SUMMARY_FILE, PredictionResult, _save_image, class_info
from panosamic.io import atomic_write_text


def config_from_args(args: argparse.Namespace) -> Any:
    """A ModelConfig from ``--config --vit --modalities --num-classes`` (all or none), else None."""
    given = {"--config": args.config_path, "--vit": args.vit_model, "--modalities": args.modalities,
             "--num-classes": args.num_classes}  # fmt: skip
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"{', '.join(given)} describe the architecture together: also give {', '.join(missing)}")
    from panosamic.config import PanoSAMicConfig

    return PanoSAMicConfig.from_json(args.config_path).model_config(
        vit=args.vit_model, modalities=args.modalities, num_classes=args.num_classes
    )


def pick_device(device: str) -> str:
    """``--device``: ``auto`` is CUDA when available, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The model of ``--checkpoint`` (any kind of checkpoint: see :func:`panosamic.load_model`)."""
    from panosamic.model import load_model

    return load_model(
        args.checkpoint, subfolder=args.subfolder, config=config_from_args(args), sam_weights=args.sam_weights_path,
        semantic_only=not args.refine, revision=args.revision, local_files_only=bool(args.local_files_only),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    inputs = collect_inputs(args.inputs)
    depths = match_aux(inputs, args.depth, "depth")
    normals = match_aux(inputs, args.normals, "normals")
    names = _unique_names(inputs)
    out_dir = Path(args.out)
    model = load_model_from_args(args)
    _resolve_device(model, pick_device(args.device))
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
