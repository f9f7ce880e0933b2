"""Turn a training checkpoint into a Hub folder: trainable tensors, config.json, model card.

    panosamic export runs/stanford2d3ds/.../model_best.pth OUT_DIR [--dtype bfloat16]

The checkpoint (``torch.load(weights_only=True)``) is a dict whose ``model`` entry is the full
state dict (or a bare state dict). Its metadata (``config``, ``vit_model``, ``modalities``,
``num_classes``, ``class_names``, ``dataset``, ``fold``, ``miou``, ``macc``) fills config.json
and the card; flags fill in or override. The trainable tensors are checked against the
architecture (built on the meta device: no memory, no SAM weights needed) before anything is
written; frozen SAM tensors are dropped and the result is refused if any would remain.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from panosamic.hub.files import split_trainable, write_hub_folder
from panosamic.hub.metadata import EvaluationResult, HubModelInfo
from panosamic.io import safe_torch_load


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote."""

    out_dir: Path
    info: HubModelInfo
    num_tensors: int
    num_params: int
    dropped_frozen: int


def _load(path: Path) -> dict[str, Any]:
    if path.is_dir():
        path = path / "model_best.pth"
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {path}")
    obj = safe_torch_load(path)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}")
    if "model" in obj:
        if not isinstance(obj["model"], Mapping):
            raise ValueError(f"{path}: 'model' is not a state dict")
        return dict(obj)
    if obj and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        return {"model": dict(obj)}
    raise ValueError(f"{path}: neither a training checkpoint (dict with 'model') nor a state dict")


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    config_path: Any = None,
    vit_model: str | None = None,
    modalities: Any = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    fold: int | None = None,
    depth_threshold: float | None = None,
    dtype: str | None = None,
    metrics: Any = None,
    license: str | None = None,
    repo_id: str | None = None,
    subfolder: str | None = None,
) -> ExportResult:
    """Write the Hub folder of a training checkpoint; see the module docstring."""
    from panosamic.config import PanoSAMicConfig
    from panosamic.hub.card import generate_model_card
    from panosamic.hub.loading import check_trainable

    ckpt = _load(Path(checkpoint))
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    trainable, frozen, other = split_trainable(state)
    if other:
        raise ValueError(f"{checkpoint}: {len(other)} key(s) that are neither SAM nor PanoSAMic: {sorted(other)[:5]}")

    def pick(given: Any, *keys: str) -> Any:
        if given is not None:
            return given
        return next((ckpt[k] for k in keys if ckpt.get(k) is not None), None)

    cfg = pick(config_path, "config")
    values = dict(
        vit_model=pick(vit_model, "vit_model", "vit"),
        modalities=pick(modalities, "modalities"),
        num_classes=pick(num_classes, "num_classes"),
    )
    missing = [k for k, v in [("config_path", cfg), *values.items()] if v is None]
    if missing:
        raise ValueError(f"{checkpoint} does not record {', '.join(missing)}: pass them as options")
    n_classes = int(values["num_classes"])
    class_names = ckpt.get("class_names")
    ds = pick(dataset, "dataset")
    palette = None
    if ds is not None:
        from panosamic.hub.metadata import dataset_labels

        names, palette = dataset_labels(ds, n_classes)
        class_names = class_names or names
    info = HubModelInfo(
        vit_model=str(values["vit_model"]),
        modalities=tuple(values["modalities"]) if not isinstance(values["modalities"], str) else values["modalities"],
        num_classes=n_classes,
        config=PanoSAMicConfig.coerce(cfg),
        class_names=class_names,
        palette=palette,
        dataset=ds,
        fold=pick(fold, "fold"),
        depth_threshold=pick(depth_threshold, "depth_threshold"),
    )
    if metrics is None and ckpt.get("miou") is not None:
        metrics = {"miou": float(ckpt["miou"]), "macc": None if ckpt.get("macc") is None else float(ckpt["macc"])}
    results = EvaluationResult.coerce_all(metrics, info)

    from panosamic.model import PanoSAMic

    with torch.device("meta"):
        skeleton = PanoSAMic(semantic_only=True, **info.model_kwargs())
    tensors = check_trainable(skeleton, trainable, strict=True, source=str(checkpoint))
    n_params = sum(int(v.numel()) for v in tensors.values())
    card = generate_model_card(
        info,
        metrics=results,
        repo_id=repo_id,
        subfolder=subfolder or info.variant_name,
        license=license,
        num_tensors=len(tensors),
        num_params=n_params,
        dtype=dtype or str(next(iter(tensors.values())).dtype).removeprefix("torch."),
    )
    write_hub_folder(out_dir, tensors, info, card=card, dtype=dtype)
    return ExportResult(Path(out_dir), info, len(tensors), n_params, len(frozen))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (model_best.pth) or its run folder")
    parser.add_argument("out_dir", type=Path, help="Hub folder to write (model.safetensors, config.json, README.md)")
    parser.add_argument("--config_path", "--config-path", dest="config_path", default=None,
                        help="config JSON (default: the one stored in the checkpoint)")  # fmt: skip
    parser.add_argument("--vit_model", "--vit-model", dest="vit_model", default=None, choices=["vit_b", "vit_l", "vit_h", "vit_tiny"])
    parser.add_argument("--modalities", default=None, help="e.g. image,depth,normals")
    parser.add_argument("--num_classes", "--num-classes", dest="num_classes", type=int, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--depth-threshold", dest="depth_threshold", type=float, default=None)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="cast the weights (published checkpoints are bfloat16); default: as trained")  # fmt: skip
    parser.add_argument("--miou", type=float, default=None, help="mIoU for the card (fraction 0..1)")
    parser.add_argument("--macc", type=float, default=None, help="mAcc for the card (fraction 0..1)")
    parser.add_argument("--license", default=None, help="license for the card front matter (default apache-2.0)")
    parser.add_argument("--repo-id", default=None, help="repo id shown in the card's usage snippet")
    parser.add_argument("--subfolder", default=None, help="subfolder shown in the card (default: variant name)")


def run(args: argparse.Namespace) -> int:
    metrics = None
    if args.miou is not None:
        metrics = {"miou": args.miou, "macc": args.macc}
    result = export_checkpoint(
        args.checkpoint,
        args.out_dir,
        config_path=args.config_path,
        vit_model=args.vit_model,
        modalities=args.modalities,
        num_classes=args.num_classes,
        dataset=args.dataset,
        fold=args.fold,
        depth_threshold=args.depth_threshold,
        dtype=args.dtype,
        metrics=metrics,
        license=args.license,
        repo_id=args.repo_id,
        subfolder=args.subfolder,
    )
    print(
        f"wrote {result.out_dir}: {result.num_tensors} trainable tensors ({result.num_params:,} values), "
        f"{result.dropped_frozen} frozen SAM tensors left out; variant {result.info.variant_name}"
    )
    return 0
