"""``panosamic predict``: segment panorama files and folders with any checkpoint (the flags:
:mod:`panosamic.cli.predict`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from panosamic import viz
from panosamic.inference.inputs import _unique_names, collect_inputs, match_aux
from panosamic.inference.predict import _prepare, _Prepared, _resolve_device, _run
from panosamic.inference.result import LEGEND_FILE, SUMMARY_FILE, PredictionResult, _save_image, class_info
from panosamic.io import atomic_write_text
from panosamic.progress import Progress


def config_from_args(args: argparse.Namespace) -> Any:
    """A ModelConfig from ``--config --vit --modalities --num-classes`` (all or none), else None."""
    given = {"--config": args.config_path, "--vit": args.vit_model, "--modalities": args.modalities,
             "--num-classes": args.num_classes}  # fmt: skip
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(
            f"{', '.join(given)} describe the architecture together: also give {', '.join(missing)}"
        )
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
    from panosamic.openvocab.options import load_options

    return load_model(
        args.checkpoint, subfolder=args.subfolder, config=config_from_args(args), sam_weights=args.sam_weights_path,
        semantic_only=not args.refine, revision=args.revision, local_files_only=bool(args.local_files_only),
        **load_options(args),
    )  # fmt: skip


#: Errors of one panorama that skip it (the others are still predicted).
_PANORAMA_ERRORS = (ValueError, TypeError, OSError, RuntimeError, MemoryError)


class _FilePredictor:
    """Predicts panorama files batch by batch; a failing panorama is skipped, not the folder."""

    def __init__(self, args: argparse.Namespace, model: Any, progress: Progress) -> None:
        self.args, self.model, self.progress = args, model, progress
        self.out_dir = Path(args.out)
        self.threshold = (
            args.depth_threshold
            if args.depth_threshold is not None
            else getattr(model, "depth_threshold", None)
        )
        self.class_names, self.palette = class_info(model)
        self.summary: dict[str, Any] = {
            "checkpoint": str(args.checkpoint), "subfolder": args.subfolder, "refine": bool(args.refine),
            "class_names": list(self.class_names), "palette": self.palette.tolist(), "predictions": {}, "skipped": [],
        }  # fmt: skip

    def fail(self, path: Path, err: BaseException) -> None:
        from panosamic.errors import describe_error

        msg = describe_error(err, context=f"predicting {path}" if isinstance(err, MemoryError) else str(path))
        self.summary["skipped"].append({"input": str(path), "error": msg})
        self.progress.write(f"panosamic predict: skipped {path}: {msg}")
        self.progress.update(1)

    def prepare(self, todo: list[tuple[Path, Path | None, Path | None, str]]) -> list[tuple[Path, _Prepared]]:
        args, batch = self.args, []
        for path, d, nm, name in todo:
            try:
                for kind, found, folder in (("depth", d, args.depth), ("normals", nm, args.normals)):
                    if kind in self.model.modalities and found is None and folder is not None:
                        raise FileNotFoundError(f"no {kind} file matching {path.name} in {folder}")
                prep = _prepare(self.model, path, d, nm, depth_scale=args.depth_scale,
                                depth_threshold=self.threshold, name=name,
                                max_pixels=getattr(args, "max_pixels", None))  # fmt: skip
                batch.append((path, prep))
            except _PANORAMA_ERRORS as e:
                self.fail(path, e)
        return batch

    def infer(self, batch: list[tuple[Path, _Prepared]]) -> list[tuple[Path, _Prepared, PredictionResult]]:
        def forward(preps: list[_Prepared]) -> list[PredictionResult]:
            return _run(
                self.model, preps, refine=self.args.refine, device=None, precision=self.args.precision
            )

        if not batch:
            return []
        try:
            return [(path, prep, res) for (path, prep), res in zip(batch, forward([p for _, p in batch]))]
        except _PANORAMA_ERRORS as e:
            if len(batch) == 1:
                self.fail(batch[0][0], e)
                return []
        done = []
        for path, prep in batch:  # find the panorama that fails, keep the others
            try:
                done.append((path, prep, forward([prep])[0]))
            except _PANORAMA_ERRORS as e:
                self.fail(path, e)
        return done

    def save(self, path: Path, prep: _Prepared, res: PredictionResult) -> None:
        try:
            files = res.save(self.out_dir, prep.name, overlay_alpha=self.args.overlay_alpha,
                             overlay_format=self.args.overlay_format, legend=False)  # fmt: skip
        except _PANORAMA_ERRORS as e:
            self.fail(path, e)
            return
        self.summary["predictions"][prep.name] = {"input": str(path), "files": {k: v.name for k, v in files.items()},
                                                  **res.summary()}  # fmt: skip
        self.progress.update(1)

    def finish(self, seconds: float) -> int:
        done, skipped = len(self.summary["predictions"]), len(self.summary["skipped"])
        self.summary["seconds"] = round(seconds, 3)
        self.summary["seconds_per_panorama"] = round(seconds / max(done, 1), 3)
        if done:
            _save_image(viz.legend(self.class_names, self.palette), self.out_dir / LEGEND_FILE)
            self.summary["legend"] = LEGEND_FILE
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / SUMMARY_FILE, json.dumps(self.summary, indent=2) + "\n")
        note = f"; skipped {skipped} (listed above and in {SUMMARY_FILE})" if skipped else ""
        print(f"wrote {done} prediction{'s' * (done != 1)} to {self.out_dir} in {seconds:.1f} s{note}")
        return 1 if skipped else 0


def run(args: argparse.Namespace) -> int:
    from panosamic.inference.scale_cli import run_scaled, wants_scaled

    if wants_scaled(args):  # each rank moves the model to its own device there (not all to cuda:0 first)
        args.device = str(pick_device(args.device))
        return run_scaled(args, load_model_from_args(args))
    inputs = collect_inputs(args.inputs)
    depths = match_aux(inputs, args.depth, "depth")
    normals = match_aux(inputs, args.normals, "normals")
    todo = list(zip(inputs, depths, normals, _unique_names(inputs)))
    model = load_model_from_args(args)
    _resolve_device(model, pick_device(args.device))
    if args.refine:
        from panosamic.modeling.instance import InstanceSettings

        model.instance_settings = InstanceSettings(grid=args.sam_grid)
    start = time.perf_counter()
    with Progress(len(todo), "predict", "pano", bar=args.progress) as progress:
        job = _FilePredictor(args, model, progress)
        for b in range(0, len(todo), args.batch_size):
            for path, prep, res in job.infer(job.prepare(todo[b : b + args.batch_size])):
                job.save(path, prep, res)
    return job.finish(time.perf_counter() - start)
