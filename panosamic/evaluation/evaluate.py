"""``panosamic evaluate``: score checkpoints on one fold or on all three, in one command.

Accepts the reference's flags (``--dataset_path --config_path --checkpoint --subfolder
--sam_weights_path --dataset --fold --vit_model --modalities --num_gpus --batch_size
--workers_per_gpu --experiments_path``) plus ``--folds 1 2 3`` / ``--fold all``. ``--checkpoint``
and ``--subfolder`` may contain ``{fold}``. Each fold is scored from its own dataset-level int64
confusion matrix (every test sample exactly once, no shuffle, no drop-last, also under DDP); the
summary is the mean of the per-fold mIoU and mAcc (the papers' convention).

Checkpoint sources, per fold:

* ``--checkpoint``: anything :func:`panosamic.load_model` accepts (a published variant name, a Hub
  repo id with ``--subfolder``, a local Hub folder, a ``.safetensors``, a training ``.pth``, a run
  folder or a glob of run folders such as ``"experiments/stanford2d3ds/*_F{fold}_*"``: the newest);
* no ``--checkpoint``: the newest run of the experiment id under ``--experiments_path``.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # `python panosamic/evaluation/evaluate.py`
    sys.path[:] = [p for p in sys.path if not p.endswith(("panosamic/evaluation", "panosamic\\evaluation"))]

import argparse
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panosamic.specs import canonical_modalities

if TYPE_CHECKING:
    from panosamic.modeling.protocol import SegmentationModel

FOLD_PLACEHOLDER = "{fold}"
_COMMIT_IN_PATH = re.compile(r"snapshots[/\\]([0-9a-f]{40})[/\\]")


# ---------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class CheckpointSource:
    """Where one fold's weights come from: anything :func:`panosamic.load_model` accepts."""

    location: str
    subfolder: str | None = None

    def describe(self) -> str:
        return self.location if self.subfolder is None else f"{self.location} [{self.subfolder}]"


def parse_folds(args: argparse.Namespace, dataset: str) -> list[int]:
    from panosamic.data.registry import dataset_folds

    valid = dataset_folds(dataset, args.dataset_path)
    if args.folds:
        folds = list(dict.fromkeys(args.folds))
    elif str(args.fold).lower() == "all":
        folds = valid
    else:
        try:
            folds = [int(args.fold)]
        except ValueError:
            raise ValueError(f"--fold must be a number or 'all', got {args.fold!r}") from None
    bad = [f for f in folds if f not in valid]
    if bad:
        raise ValueError(f"{dataset} has folds {valid}; got {bad}")
    return folds


def _fill(template: str | None, fold: int) -> str | None:
    return None if template is None else template.replace(FOLD_PLACEHOLDER, str(fold))


def resolve_source(args: argparse.Namespace, fold: int) -> CheckpointSource:
    """``--checkpoint`` / ``--subfolder`` of a fold, or the newest run of the experiment id."""
    from panosamic import runs

    if args.checkpoint is not None:
        return CheckpointSource(str(_fill(args.checkpoint, fold)), _fill(args.subfolder, fold))
    missing = [f for f, v in (("--config", args.config_path), ("--vit", args.vit_model),
                              ("--modalities", args.modalities)) if v is None]
    if missing:
        raise ValueError("give --checkpoint, or " + ", ".join(missing) + " to find the training run by experiment id")
    exp_id = runs.experiment_id(args.config_path, fold, args.vit_model, canonical_modalities(args.modalities))
    run = runs.find_run_dir(args.experiments_path, args.dataset, exp_id, "best")
    return CheckpointSource(str(run))


def _given_config(args: argparse.Namespace, num_classes: int) -> Any:
    """The architecture the flags describe (for folders without config.json), or None."""
    if args.config_path is None or args.vit_model is None or args.modalities is None:
        return None
    from panosamic.config import PanoSAMicConfig

    return PanoSAMicConfig.from_json(args.config_path).model_config(
        vit=args.vit_model, modalities=args.modalities, num_classes=num_classes
    )


def check_flags(args: argparse.Namespace, model: SegmentationModel, num_classes: int, source: CheckpointSource) -> None:
    """Refuse flags the loaded checkpoint contradicts (they would be silently ignored otherwise)."""
    wrong = []
    vit = getattr(model.config, "vit", None)  # None for other kinds of model (a compact student)
    if args.vit_model is not None and args.vit_model != vit:
        wrong.append(f"--vit {args.vit_model} (the checkpoint is {vit or 'not a PanoSAMic'})")
    if args.modalities is not None and canonical_modalities(args.modalities) != model.modalities:
        wrong.append(f"--modalities {args.modalities} (the checkpoint uses {','.join(model.modalities)})")
    if model.num_classes != num_classes:
        wrong.append(f"the checkpoint has {model.num_classes} classes, the dataset {num_classes}")
    if wrong:
        raise ValueError(f"{source.describe()} does not match: " + "; ".join(wrong))


# ---------------------------------------------------------------------------- loading
def load_fold_model(args: argparse.Namespace, source: CheckpointSource, num_classes: int, device,
                    class_names: Any = None) -> tuple[Any, dict]:
    """The model of one fold (eval mode, on ``device``) and a description of its checkpoint; an
    open-vocabulary checkpoint (SAM 3) is prompted with ``class_names`` unless --classes is given."""
    from panosamic.model import find_variant, load_model
    from panosamic.openvocab.options import load_options

    model = load_model(
        source.location, subfolder=source.subfolder, config=_given_config(args, num_classes),
        sam_weights=args.sam_weights_path, semantic_only=not args.refine, revision=args.revision, device=device,
        **load_options(args, class_names, args.dataset, str(source.location)),
    )  # fmt: skip
    check_flags(args, model, num_classes, source)
    info = dict(model.checkpoint_info or {})
    if info.get("kind") == "hub":
        info["commit"] = _hub_commit(args, source)
    variant = find_variant(source.subfolder or source.location)
    if variant is not None:
        info["variant"] = variant.name
        info["reported"] = variant.reported.to_dict() if variant.reported else None
    return model, info


def _hub_commit(args: argparse.Namespace, source: CheckpointSource) -> str | None:
    try:
        from panosamic.hub.loading import resolve_checkpoint

        resolved = resolve_checkpoint(source.location, subfolder=source.subfolder, revision=args.revision,
                                      local_files_only=True)
    except (OSError, ValueError):  # informative only
        return None
    m = _COMMIT_IN_PATH.search(str(resolved.weights))
    return m.group(1) if m else None


# ---------------------------------------------------------------------------- run
def evaluate_fold(args: argparse.Namespace, fold: int, source: CheckpointSource, info: Any, ctx: Any) -> dict:
    """Load one fold's model, score its test split, print (and plot) the fold's table; its JSON entry."""
    from panosamic.data import build_dataset
    from panosamic.evaluation import report
    from panosamic.evaluation.sphere import DEFAULT_LATITUDE_BANDS, sphere_metrics
    from panosamic.evaluation.validation import per_sample_scores, run_validation

    if args.plots:
        from panosamic.evaluation.plots import plot_class_iou, plot_confusion, plot_latitude_bands

    model, ck_info = load_fold_model(args, source, info.num_classes, ctx.device, info.class_names)
    split = getattr(args, "split", "test")
    ds = build_dataset(args.dataset, args.dataset_path, fold=fold, split=split, modalities=model.modalities,
                       augment=False)
    if len(ds) == 0:
        raise ValueError(f"{args.dataset} fold {fold} has no test samples under {args.dataset_path}")
    _check_train_overlap(args, model, ck_info, fold, ds)  # no silent train/test leakage
    saver = _prediction_saver(args.save_dir, fold, ds.sample_names, info.palette) if args.save_dir else None
    res = run_validation(model, ds, num_classes=info.num_classes, ctx=ctx, batch_size=args.batch_size,
                         workers=args.workers_per_gpu, precision=args.precision, class_names=info.class_names,
                         progress=args.progress, refine=args.refine, on_sample=saver, desc=f"fold {fold}",
                         latitude_rows=True, seam_check=args.seam_check)
    m = res.metrics
    sphere = sphere_metrics(res.row_confusion, info.class_names, args.latitude_bands or DEFAULT_LATITUDE_BANDS)
    if ctx.is_main:
        reported = ck_info.get("reported") or {}
        published = (f"  (published for {ck_info['variant']}, {reported.get('over')}: mIoU {100 * reported['miou']:.2f} %)"
                     if reported.get("miou") is not None else "")
        sw = sphere.weighted
        print(report.format_class_table(
            m, f"fold {fold}: {res.num_samples} panoramas, {source.describe()}\n"
               f"fold {fold}: mIoU {100 * m.miou:.2f} %  mAcc {100 * m.macc:.2f} %{published}\n"
               f"fold {fold}: on the sphere (area-weighted): mIoU {100 * sw.miou:.2f} %  mAcc {100 * sw.macc:.2f} %",
            sphere=sw))
        print(report.format_band_table(sphere.bands))
        if res.seam is not None:
            print(report.format_seam(res.seam))
        print()
        if args.plots:
            plots = Path(args.plots)
            plot_class_iou(m, plots / f"fold{fold}_iou.png", palette=info.palette,
                           title=f"{args.dataset} fold {fold}: mIoU {100 * m.miou:.2f} %")
            plot_confusion(m, plots / f"fold{fold}_confusion.png")
            plot_latitude_bands([b.to_dict() for b in sphere.bands], plots / f"fold{fold}_latitude.png",
                                planar_miou=m.miou, sphere_miou=sw.miou,
                                title=f"{args.dataset} fold {fold}: mIoU by latitude")
    seam = {"seam": res.seam.to_dict()} if res.seam is not None else {}
    return {"fold": fold, "num_samples": res.num_samples, "checkpoint": ck_info, "modalities": list(model.modalities),
            **m.to_dict(include_confusion=True), **sphere.to_dict(), **seam,
            "frame_metrics": per_sample_scores(res, ds.sample_names)}


def report_folds(args: argparse.Namespace, per_fold: list[dict], info: Any, ctx: Any, output: Path) -> None:
    """The fold summary: printed, plotted (with a reported number when known) and written as JSON."""
    import numpy as np

    from panosamic.evaluation import report
    from panosamic.runs import timestamp

    summary = report.summarise_folds(per_fold)
    if args.plots:
        from panosamic.evaluation.plots import plot_fold_summary

        reported = next((f["checkpoint"].get("reported") for f in per_fold if f["checkpoint"].get("reported")), None)
        scores = {k: reported[k] for k in ("miou", "macc") if reported.get(k) is not None} if reported else None
        plot_fold_summary(per_fold, Path(args.plots) / "folds_summary.png", reported=scores,
                          title=f"{args.dataset}: {len(per_fold)} fold(s)")
    if len(per_fold) > 1:
        print(f"{len(per_fold)}-fold mean (mean of the per-fold scores): "
              f"mIoU {100 * summary['mean_miou']:.2f} %  mAcc {100 * summary['mean_macc']:.2f} %")
        for f in per_fold:
            print(f"  fold {f['fold']}: mIoU {100 * (f['miou'] or np.nan):.2f} %  mAcc {100 * (f['macc'] or np.nan):.2f} %")
        if summary.get("mean_sphere_miou") is not None:
            print(f"{len(per_fold)}-fold mean on the sphere (area-weighted): mIoU {100 * summary['mean_sphere_miou']:.2f} %"
                  f"  mAcc {100 * (summary['mean_sphere_macc'] or np.nan):.2f} %")
        if summary.get("mean_seam_agreement") is not None:
            print(f"{len(per_fold)}-fold mean seam agreement {100 * summary['mean_seam_agreement']:.2f} % "
                  f"({100 * (summary['mean_seam_band_agreement'] or np.nan):.2f} % near the seam), "
                  f"rolled run mIoU {100 * (summary['mean_rolled_miou'] or np.nan):.2f} %")
    if summary.get("reported") is not None:
        print(report.format_reported(summary["reported"]))
    if args.plots and len(per_fold) > 1 and summary.get("mean_latitude_bands"):
        from panosamic.evaluation.plots import plot_latitude_bands

        plot_latitude_bands(summary["mean_latitude_bands"], Path(args.plots) / "latitude_mean.png",
                            planar_miou=summary["mean_miou"], sphere_miou=summary.get("mean_sphere_miou"),
                            title=f"{args.dataset}: mIoU by latitude, mean of {len(per_fold)} folds")
    results = {
        "dataset": args.dataset, "dataset_path": str(Path(args.dataset_path).resolve()),
        "modalities": per_fold[-1]["modalities"], "class_names": list(info.class_names), "date": timestamp(),
        "device": str(ctx.device), "world_size": ctx.world_size, "refine": args.refine,
        "precision": args.precision, "versions": report.versions(), "summary": summary, "folds": per_fold,
    }
    report.write_json(output, results)
    print(f"results written to {output}")


def run(args: argparse.Namespace) -> int:
    from panosamic.data import get_dataset_info
    from panosamic.distributed import cleanup_distributed, init_distributed

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    info = get_dataset_info(args.dataset, args.dataset_path)  # a folder dataset's own classes
    folds = parse_folds(args, args.dataset)
    # every check before any work
    if not Path(args.dataset_path).is_dir():
        raise FileNotFoundError(f"dataset folder not found: {args.dataset_path}")
    sources = {fold: resolve_source(args, fold) for fold in folds}
    _precheck_train_overlap(args, folds, sources)  # leakage refused before any fold is scored
    if len(folds) > 1 and len({s.describe() for s in sources.values()}) == 1:
        print(f"warning: every fold uses the same checkpoint {sources[folds[0]].describe()} "
              "(put {fold} in --checkpoint/--subfolder for per-fold weights)", file=sys.stderr)
    if "WORLD_SIZE" not in os.environ and args.num_gpus > 1:
        print("note: --num-gpus > 1 evaluates under torchrun only (torchrun --nproc_per_node N -m panosamic.cli "
              "evaluate ...); evaluating in one process", file=sys.stderr)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    output = Path(args.output) if args.output else Path("evaluations") / f"{args.dataset}_{stamp}.json"
    ctx = init_distributed(None if args.device == "auto" else args.device)
    try:
        per_fold = [evaluate_fold(args, fold, sources[fold], info, ctx) for fold in folds]
        if ctx.is_main:
            report_folds(args, per_fold, info, ctx, output)
    finally:
        cleanup_distributed()
    return 0


def _precheck_train_overlap(args: argparse.Namespace, folds: list[int], sources: dict) -> None:
    """Refuse, before any work, a fold whose checkpoint is a training run or ``.pth`` trained on the
    split to score (other sources are checked by :func:`_check_train_overlap` once loaded)."""
    from panosamic.data import build_dataset
    from panosamic.data.record import check_train_overlap, read_training_record
    from panosamic.model import find_variant
    from panosamic.model.checkpoints import RUN_CHECKPOINTS, expand_run_pattern

    if getattr(args, "allow_train_overlap", False):
        return
    for fold in folds:
        p = Path(sources[fold].location).expanduser()
        if not p.exists():
            p = expand_run_pattern(str(p)) or p
        if p.is_dir() and sources[fold].subfolder is None:
            p = next((p / n for n in RUN_CHECKPOINTS if (p / n).is_file()), p)
        record = read_training_record({"kind": "training", "source": str(p)}) if p.suffix in (".pth", ".pt") else None
        variant = find_variant(sources[fold].subfolder or sources[fold].location) if record is None else None
        if record is None and variant is None:
            continue
        ds = build_dataset(args.dataset, args.dataset_path, fold=fold, split=getattr(args, "split", "test"),
                           modalities=("image",), augment=False)
        check_train_overlap(record, variant.config if variant is not None else None, args.dataset, args.dataset_path,
                            fold, ds.split, ds.sample_names)


def _check_train_overlap(args: argparse.Namespace, model: SegmentationModel, ck_info: dict, fold: int, ds: Any) -> None:
    """Refuse a split the checkpoint was trained on (``--allow-train-overlap``: warn and record it)."""
    from panosamic.data.record import check_train_overlap, read_training_record

    overlap = check_train_overlap(read_training_record(ck_info), model.config, args.dataset, args.dataset_path, fold,
                                  ds.split, ds.sample_names, allow=getattr(args, "allow_train_overlap", False))
    if overlap is not None:
        print(f"warning (--allow-train-overlap): {overlap}", file=sys.stderr)
        ck_info["train_overlap"] = overlap


def _prediction_saver(save_dir: str, fold: int, names: list[str], palette):
    from PIL import Image

    from panosamic.io import atomic_path
    from panosamic.viz import colorize

    root = Path(save_dir) / f"fold{fold}"

    def save(index: int, pred, labels) -> None:
        path = root / f"{names[index].replace('/', '__')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(colorize(pred, palette)).save(tmp)

    return save


__all__ = ["CheckpointSource", "load_fold_model", "parse_folds", "resolve_source", "run"]

if __name__ == "__main__":  # `python panosamic/evaluation/evaluate.py` with the reference's flags
    from panosamic.cli import run_script

    sys.exit(run_script("evaluate"))
