"""``panosamic predict``: segment panorama files and folders with any checkpoint (the flags:
:mod:`panosamic.cli.predict`).

Two drivers of the one core (:mod:`panosamic.inference.pipeline`): files and folders in this process
(``summary.json``, ``legend.png``), or the scaled path (:mod:`panosamic.inference.scale_cli`: a list
file, a dataset, ``--outputs`` / ``--workers`` or torchrun; resumable, ``summary.jsonl``).

Exit status: 0 when every panorama was predicted; 1 when some were skipped (each named on stderr
and listed in the summary). Under torchrun with several processes the ranks exit 0 after a run that
finished with skipped panoramas (so that the launcher reports no crash; the last line says how many
failed), unless ``--strict``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from panosamic import viz
from panosamic.inference.inputs import _unique_names, describe_ignored, match_aux, scan_inputs

# the plain driver's forward, by this name (the fault suite patches it)
from panosamic.inference.pipeline import (
    PANORAMA_ERRORS,
    Prepared,
    forward as _run,
    forward_each,
    place_model,
    prepare,
)
from panosamic.inference.result import LEGEND_FILE, SUMMARY_FILE, PredictionResult, _save_image, class_info
from panosamic.io import atomic_write_text
from panosamic.progress import Progress


def config_from_args(args: argparse.Namespace) -> Any:
    """A ModelConfig from ``--config --vit --modalities --num-classes`` (all or none), else None."""
    from panosamic.model.checkpoints import reference_model_config

    return reference_model_config(args.config_path, args.vit_model, args.modalities, args.num_classes)


def is_onnx(args: argparse.Namespace) -> bool:
    """Whether ``--checkpoint`` is an exported ONNX student run by onnxruntime (a path imports no torch)."""
    return str(args.checkpoint).lower().endswith(".onnx") and getattr(args, "runtime", "auto") in ("auto", "onnx")


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The model of ``--checkpoint`` (any kind of checkpoint: see :func:`panosamic.load_model`; an
    ``.onnx`` export is opened here directly, so that its path imports no torch)."""
    if is_onnx(args):
        from panosamic.student.onnx import OnnxStudent

        return OnnxStudent(args.checkpoint)
    from panosamic.model import load_model
    from panosamic.openvocab.options import load_options

    return load_model(
        args.checkpoint, subfolder=args.subfolder, config=config_from_args(args), sam_weights=args.sam_weights_path,
        semantic_only=not args.refine, revision=args.revision, local_files_only=bool(args.local_files_only),
        **load_options(args),
    )  # fmt: skip


def say(line: str) -> None:
    print(f"panosamic predict: {line}", file=sys.stderr, flush=True)


def drop_unused_aux(args: argparse.Namespace, model: Any) -> None:
    """``--depth`` / ``--normals`` for a model that does not use them: one note, and they are dropped."""
    for kind in ("depth", "normals"):
        if getattr(args, kind, None) is not None and kind not in model.modalities:
            say(f"note: --{kind} is ignored: this model uses only {', '.join(model.modalities)}")
            setattr(args, kind, None)


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

    def prepare(self, todo: list[tuple[Path, Path | None, Path | None, str]]) -> list[tuple[Path, Prepared]]:
        args, batch = self.args, []
        for path, d, nm, name in todo:
            try:
                for kind, found, folder in (("depth", d, args.depth), ("normals", nm, args.normals)):
                    if kind in self.model.modalities and found is None and folder is not None:
                        raise FileNotFoundError(f"no {kind} file matching {path.name} in {folder}")
                notes: list[str] = []
                prep = prepare(self.model, path, d, nm, depth_scale=args.depth_scale, depth_threshold=self.threshold,
                               name=name, max_pixels=args.max_pixels, notes=notes)  # fmt: skip
                for line in notes:
                    self.progress.write(f"panosamic predict: note: {line}")
                batch.append((path, prep))
            except PANORAMA_ERRORS as e:
                self.fail(path, e)
        return batch

    def infer(self, batch: list[tuple[Path, Prepared]]) -> list[tuple[Path, Prepared, PredictionResult]]:
        return forward_each(self.model, batch, self.fail, run=_run, device=None, precision=self.args.precision,
                            refine=self.args.refine)  # fmt: skip

    def save(self, path: Path, prep: Prepared, res: PredictionResult) -> None:
        try:
            files = res.save(self.out_dir, prep.name, overlay_alpha=self.args.overlay_alpha,
                             overlay_format=self.args.overlay_format, legend=False)  # fmt: skip
        except PANORAMA_ERRORS as e:
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
        model = load_model_from_args(args)
        drop_unused_aux(args, model)
        return run_scaled(args, model)
    inputs, ignored = scan_inputs(args.inputs, recursive=args.recursive, exclude=args.out)
    if describe_ignored(ignored):
        say(describe_ignored(ignored))
    depths = match_aux(inputs, args.depth, "depth")
    normals = match_aux(inputs, args.normals, "normals")
    todo = list(zip(inputs, depths, normals, _unique_names(inputs)))
    device = None
    if not is_onnx(args):
        from panosamic.distributed import resolve_device

        device = resolve_device(args.device)  # a missing device is refused before the model is loaded
    model = load_model_from_args(args)
    drop_unused_aux(args, model)
    if args.depth is None:
        todo = [(p, None, nm, name) for p, _, nm, name in todo]
    if args.normals is None:
        todo = [(p, d, None, name) for p, d, _, name in todo]
    place_model(model, device)
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
