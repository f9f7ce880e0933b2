"""``panosamic evaluate``: score checkpoints on one fold or on all three, in one command.

Accepts the reference's flags (``--dataset_path --config_path --checkpoint --subfolder
--sam_weights_path --dataset --fold --vit_model --modalities --num_gpus --batch_size
--workers_per_gpu --experiments_path``) plus ``--folds 1 2 3`` / ``--fold all``. ``--checkpoint``
and ``--subfolder`` may contain ``{fold}``. Each fold is scored from its own dataset-level int64
confusion matrix (every test sample exactly once, no shuffle, no drop-last, also under DDP); the
summary is the mean of the per-fold mIoU and mAcc (the papers' convention).

Checkpoint sources, per fold:

* ``--checkpoint run_dir/model_best.pth`` (or a run directory): a training checkpoint;
* ``--checkpoint REPO_ID_OR_FOLDER [--subfolder NAME]``: Hub weights (``from_pretrained_panosamic``);
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
from typing import Any

from panosamic.constants import MODALITIES
from panosamic.evaluation.train import add_shared_arguments

FOLD_PLACEHOLDER = "{fold}"
#: ViT used when neither the flags nor the checkpoint say (the reference's default).
DEFAULT_VIT = "vit_h"
_TRAINING_SUFFIXES = (".pth", ".pt")
_COMMIT_IN_PATH = re.compile(r"snapshots[/\\]([0-9a-f]{40})[/\\]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_shared_arguments(parser, config_required=False)
    parser.add_argument("--fold", default="1", help="fold number, or 'all' for every fold of the dataset")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="several folds, e.g. --folds 1 2 3")
    parser.add_argument("--checkpoint", default=None,
                        help="training checkpoint (.pth or run dir), Hub repo id or local Hub folder; may hold {fold}")
    parser.add_argument("--subfolder", default=None,
                        help="Hub subfolder, e.g. stanford2d3ds-vith-rgb-fold{fold}")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--output", default=None,
                        help="JSON results file (default: evaluations/<dataset>_<date>.json)")
    parser.add_argument("--plots", default=None, help="folder for per-class IoU and confusion-matrix PNGs")
    parser.add_argument("--save-dir", "--save_dir", dest="save_dir", default=None,
                        help="folder for colourised predictions (<fold>/<sample>.png)")
    parser.add_argument("--refine", action="store_true",
                        help="refine the semantic map with SAM instance masks (majority vote, slow)")
    # taken from the checkpoint when it says (training checkpoints, our Hub folders); else the reference's defaults
    parser.set_defaults(vit_model=None, modalities=None)


# ---------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class CheckpointSource:
    """Where one fold's weights come from."""

    kind: str  # "training" or "hub"
    location: str  # file path, folder or repo id
    subfolder: str | None = None

    def describe(self) -> str:
        return self.location if self.subfolder is None else f"{self.location} [{self.subfolder}]"


def parse_folds(args: argparse.Namespace, dataset: str) -> list[int]:
    from panosamic.data import DATASETS

    valid = sorted(DATASETS[dataset].folds)
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


def resolve_source(args: argparse.Namespace, fold: int, modalities: tuple[str, ...]) -> CheckpointSource:
    from panosamic.evaluation import checkpoint as ckpt_mod

    if args.checkpoint is None:
        if args.config_path is None:
            raise ValueError("give --checkpoint, or --config_path (with --experiments_path) to find the training run")
        exp_id = ckpt_mod.experiment_id(args.config_path, fold, args.vit_model, modalities)
        run = ckpt_mod.find_run_dir(args.experiments_path, args.dataset, exp_id, "best")
        return CheckpointSource("training", str(run / ckpt_mod.BEST_NAME))
    loc = _fill(args.checkpoint, fold)
    assert loc is not None
    p = Path(loc).expanduser()
    if p.suffix in _TRAINING_SUFFIXES:
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint not found: {p}")
        return CheckpointSource("training", str(p))
    if p.is_dir() and (p / ckpt_mod.BEST_NAME).is_file():
        return CheckpointSource("training", str(p / ckpt_mod.BEST_NAME))
    if not p.exists() and loc.startswith((".", "/", "~")):
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return CheckpointSource("hub", loc, _fill(args.subfolder, fold))


def _stored(args: argparse.Namespace, fold: int, field: str) -> Any:
    """``vit_model`` / ``modalities`` as stored with the first fold's checkpoint (None if unknown)."""
    if args.checkpoint is None:
        return None
    try:
        src = resolve_source(args, fold, ("image",))
        if src.kind == "training":
            import torch

            return torch.load(src.location, map_location="cpu", weights_only=True, mmap=True).get(field)
        from panosamic.hub.loading import resolve_checkpoint
        from panosamic.hub.metadata import HubModelInfo

        resolved = resolve_checkpoint(src.location, subfolder=src.subfolder, revision=args.revision)
        if resolved.config is None:
            return None
        return getattr(HubModelInfo.from_json(resolved.config), field)
    except Exception:  # the real loading reports problems with context
        return None


def _peek_training(path: str, num_classes: int) -> None:
    """Refuse a training checkpoint for another class count before any work (lazy mmap load)."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ck, dict) or "model" not in ck:
        raise ValueError(f"{path} is not a PanoSAMic training checkpoint (a dict with a 'model' state dict)")
    k = ck.get("num_classes")
    if k is not None and k != num_classes:
        raise ValueError(f"{path} was trained for {k} classes; the dataset has {num_classes}")


# ---------------------------------------------------------------------------- loading
def load_model(args: argparse.Namespace, source: CheckpointSource, num_classes: int, modalities: tuple[str, ...],
               device) -> tuple[Any, dict[str, Any]]:
    """The model of one fold (eval mode, on ``device``) and a description of its checkpoint."""
    from panosamic.config import PanoSAMicConfig
    from panosamic.model import PanoSAMic, load_state_dict_checked

    semantic_only = not args.refine
    if source.kind == "hub":
        model = PanoSAMic.from_pretrained_panosamic(
            source.location, subfolder=source.subfolder, config_path=args.config_path, vit_model=args.vit_model,
            modalities=modalities, num_classes=num_classes, sam_weights_path=args.sam_weights_path,
            semantic_only=semantic_only, revision=args.revision,
        )
        info: dict[str, Any] = {"kind": "hub", "id": source.location, "subfolder": source.subfolder,
                                "revision": args.revision, "commit": _hub_commit(args, source)}
    else:
        from panosamic.evaluation.checkpoint import load_checkpoint, strip_ddp_prefix

        ck = load_checkpoint(source.location)
        k = ck.get("num_classes", num_classes)
        if k != num_classes:
            raise ValueError(f"{source.location} was trained for {k} classes; the dataset has {num_classes}")
        if ck.get("config") is not None:
            config = PanoSAMicConfig.from_dict(ck["config"])
        elif args.config_path is not None:
            config = PanoSAMicConfig.from_json(args.config_path)
        else:
            raise ValueError(f"{source.location} stores no config: pass --config_path")
        vit = ck.get("vit_model") or args.vit_model
        mods = tuple(ck.get("modalities") or modalities)
        if tuple(mods) != tuple(modalities):
            raise ValueError(f"{source.location} was trained on modalities {mods}, --modalities gives {modalities}")
        model = PanoSAMic.from_config(config, vit_model=vit, modalities=mods, num_classes=num_classes,
                                      semantic_only=semantic_only)
        state = strip_ddp_prefix(ck["model"])
        if not semantic_only:  # refinement: the SAM instance branch comes from Meta's file
            from panosamic.weights.sam import resolve_sam_weights

            model.load_sam_weights(resolve_sam_weights(args.sam_weights_path, vit))
            load_state_dict_checked(model, state, strict=True,
                                    only_prefixes=("image_encoder.", "feature_fuser.", "semantic_decoder."))
        else:
            load_state_dict_checked(model, state, strict=True)
        info = {"kind": "training", "path": str(Path(source.location).resolve()), "epoch": ck.get("epoch"),
                "global_step": ck.get("global_step"), "trained_miou": ck.get("miou"), "date": ck.get("date"),
                "vit_model": vit}
    return model.to(device).eval(), info


def _hub_commit(args: argparse.Namespace, source: CheckpointSource) -> str | None:
    try:
        from panosamic.hub.loading import resolve_checkpoint

        resolved = resolve_checkpoint(source.location, subfolder=source.subfolder, revision=args.revision,
                                      local_files_only=True)
    except Exception:  # informative only
        return None
    m = _COMMIT_IN_PATH.search(str(resolved.weights))
    return m.group(1) if m else None


# ---------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from panosamic.constants import canonical_modalities
    from panosamic.data import build_dataset, get_dataset_info
    from panosamic.evaluation import report
    from panosamic.evaluation.checkpoint import timestamp
    from panosamic.evaluation.distributed import cleanup_distributed, init_distributed
    from panosamic.evaluation.validation import per_sample_scores, run_validation

    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    info = get_dataset_info(args.dataset)
    folds = parse_folds(args, args.dataset)
    if args.modalities is None:
        args.modalities = _stored(args, folds[0], "modalities") or ",".join(MODALITIES)
    if args.vit_model is None:
        args.vit_model = _stored(args, folds[0], "vit_model") or DEFAULT_VIT
    modalities = canonical_modalities(args.modalities)
    # every check before any work
    if not Path(args.dataset_path).is_dir():
        raise FileNotFoundError(f"dataset folder not found: {args.dataset_path}")
    datasets, sources = {}, {}
    for fold in folds:
        ds = build_dataset(args.dataset, args.dataset_path, fold=fold, split="test", modalities=modalities,
                           augment=False)
        if len(ds) == 0:
            raise ValueError(f"{args.dataset} fold {fold} has no test samples under {args.dataset_path}")
        datasets[fold] = ds
        sources[fold] = resolve_source(args, fold, modalities)
        if sources[fold].kind == "training":
            _peek_training(sources[fold].location, info.num_classes)
    if len(folds) > 1 and len({s.describe() for s in sources.values()}) == 1:
        print(f"warning: every fold uses the same checkpoint {sources[folds[0]].describe()} "
              "(put {fold} in --checkpoint/--subfolder for per-fold weights)", file=sys.stderr)
    if args.refine:
        try:
            import panosamic.model.instance_semantic_fusion  # noqa: F401
        except ImportError as e:
            raise RuntimeError("--refine needs panosamic.model.instance_semantic_fusion (not available)") from e
    if "WORLD_SIZE" not in os.environ and args.num_gpus > 1:
        print("note: --num_gpus > 1 evaluates under torchrun only (torchrun --nproc_per_node N -m panosamic.cli "
              "evaluate ...); evaluating in one process", file=sys.stderr)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    output = Path(args.output) if args.output else Path("evaluations") / f"{args.dataset}_{stamp}.json"

    ctx = init_distributed(None if args.device == "auto" else args.device)
    try:
        per_fold = []
        for fold in folds:
            model, ck_info = load_model(args, sources[fold], info.num_classes, modalities, ctx.device)
            ds = datasets[fold]
            saver = _prediction_saver(args.save_dir, fold, ds.sample_names, info.palette) if args.save_dir else None
            res = run_validation(model, ds, num_classes=info.num_classes, ctx=ctx, batch_size=args.batch_size,
                                 workers=args.workers_per_gpu, precision=args.precision,
                                 class_names=info.class_names, progress=args.progress, refine=args.refine,
                                 on_sample=saver, desc=f"fold {fold}")
            m = res.metrics
            entry = {"fold": fold, "num_samples": res.num_samples, "checkpoint": ck_info,
                     **m.to_dict(include_confusion=True), "frame_metrics": per_sample_scores(res, ds.sample_names)}
            per_fold.append(entry)
            if ctx.is_main:
                print(report.format_class_table(
                    m, f"fold {fold}: {res.num_samples} panoramas, {sources[fold].describe()}\n"
                       f"fold {fold}: mIoU {100 * m.miou:.2f} %  mAcc {100 * m.macc:.2f} %"))
                print()
                if args.plots:
                    plots = Path(args.plots)
                    report.iou_bar_png(plots / f"fold{fold}_iou.png", m, info.palette,
                                       f"{args.dataset} fold {fold}: mIoU {100 * m.miou:.2f} %")
                    report.confusion_png(plots / f"fold{fold}_confusion.png", m)
            del model
        summary = report.summarise_folds(per_fold)
        if ctx.is_main:
            if len(folds) > 1:
                print(f"{len(folds)}-fold mean (mean of the per-fold scores): "
                      f"mIoU {100 * summary['mean_miou']:.2f} %  mAcc {100 * summary['mean_macc']:.2f} %")
                for f in per_fold:
                    print(f"  fold {f['fold']}: mIoU {100 * (f['miou'] or np.nan):.2f} %  "
                          f"mAcc {100 * (f['macc'] or np.nan):.2f} %")
            results = {
                "dataset": args.dataset, "dataset_path": str(Path(args.dataset_path).resolve()),
                "modalities": list(modalities), "class_names": list(info.class_names), "date": timestamp(),
                "device": str(ctx.device), "world_size": ctx.world_size, "refine": args.refine,
                "precision": args.precision, "versions": report.versions(), "summary": summary, "folds": per_fold,
            }
            report.write_json(output, results)
            print(f"results written to {output}")
    finally:
        cleanup_distributed()
    return 0


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


def main(argv: list[str] | None = None) -> int:
    """``python panosamic/evaluation/evaluate.py`` with the reference's flags."""
    from panosamic.cli import run_script

    return run_script("evaluate", argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CheckpointSource", "add_arguments", "load_model", "main", "parse_folds", "resolve_source", "run"]
