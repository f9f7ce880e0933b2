"""``adapt(model, inputs, out_dir, ...)``: adapt a model to unlabelled panoramas (the Python API)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from panosamic.adapt.data import TargetPanoramas
from panosamic.adapt.masks import MASKS_NAME, MaskCache, compute_sam_masks
from panosamic.adapt.settings import AdaptSettings, check_output, check_source
from panosamic.adapt.trainer import AdaptResult, AdaptTrainer
from panosamic.distributed import DistContext
from panosamic.specs import SAM_VITS

__all__ = ["adapt", "build_source", "semantic_copy"]


def _load(model: Any, refine: bool | None, sam_weights: Any, device: torch.device, **load: Any) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        return model.to(device)
    from panosamic.model import find_checkpoint, load_model

    if refine is None:  # refinement by default when the model runs Meta's SAM weights
        cfg = find_checkpoint(model, subfolder=load.get("subfolder"),
                              **{k: v for k, v in load.items() if k != "subfolder"}).config
        refine = cfg is not None and cfg.vit in SAM_VITS
    return load_model(model, sam_weights=sam_weights, device=device, semantic_only=not refine, **load)


def _labeller(source: Any, model: torch.nn.Module, device: torch.device, options: dict[str, Any]) -> torch.nn.Module:
    """The fixed pseudo-label model: given, or loaded (SAM 3 prompted with the adapted model's class names)."""
    if isinstance(source, torch.nn.Module):
        net = source.to(device)
    else:
        from panosamic.model import load_model
        from panosamic.openvocab.loading import is_sam3_checkpoint

        if "classes" not in options and is_sam3_checkpoint(source):
            from panosamic.inference.result import class_info

            options["classes"] = list(class_info(model)[0])  # its own names, else its dataset's
        net = load_model(source, device=device, **options)
    if int(net.num_classes) != int(model.num_classes):
        raise ValueError(f"the pseudo-label model {source} has {net.num_classes} classes but the model adapted "
                         f"{model.num_classes}: give one class per model class, in its order")
    return net


def semantic_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The same model without SAM's instance branch (what is trained and exported)."""
    if model.semantic_only:
        return model
    out = type(model)(model.config.replace(semantic_only=True))
    out.load_state_dict({k: v for k, v in model.state_dict().items() if k in out.state_dict()}, strict=True)
    return out.to(next(model.parameters()).device)


def build_source(name: str, path: str | os.PathLike, model: torch.nn.Module, fold: int, seed: int,
                 projection: dict[str, Any] | None = None):
    """The labelled source set (training split, the library's augmentations) and its checks. ``pinhole``:
    a prepared pinhole folder whose photos are projected onto the model's canvas (``projection``: the fields
    of :class:`~panosamic.data.pinhole.ProjectionSettings`)."""
    from panosamic.data import PanoramaAugmentation, build_dataset, get_dataset_info
    from panosamic.data.pinhole_layout import PINHOLE_SOURCE

    if name == PINHOLE_SOURCE:
        from panosamic.data.pinhole import build_training_sources

        return build_training_sources([f"{name}={path}"], fold=fold, modalities=model.modalities,
                                      num_classes=model.num_classes, canvas_height=int(model.native_size[0]),
                                      projection=projection, seed=seed)

    info = get_dataset_info(name, path)  # a folder dataset's classes come from its classes.json
    if info.num_classes != model.num_classes:
        raise ValueError(f"--source-dataset {name} has {info.num_classes} classes, the model {model.num_classes}")
    return build_dataset(name, path, fold=fold, split="train", modalities=model.modalities,
                         augment=PanoramaAugmentation(seed=seed))


def _masks(model: torch.nn.Module, target: TargetPanoramas, out_dir: Path, resume: bool, progress: bool,
           silent: bool) -> MaskCache:
    path = out_dir / MASKS_NAME
    if resume and path.is_file():
        return MaskCache.load(path, len(target))
    cache = compute_sam_masks(model, target, progress=progress, silent=silent)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache.save(path)
    return cache


def adapt(
    model: Any,
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: AdaptSettings | None = None,
    depth: str | os.PathLike | None = None,
    normals: str | os.PathLike | None = None,
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    source_dataset: str | None = None,
    source_path: str | os.PathLike | None = None,
    source_fold: int = 1,
    source_projection: dict[str, Any] | None = None,
    resume: bool = False,
    sam_weights: Any = None,
    ctx: DistContext | None = None,
    load: dict[str, Any] | None = None,
    pseudo_labels_from: Any = None,
    pseudo_label_options: dict[str, Any] | None = None,
    **changes: Any,
) -> AdaptResult:
    """Self-train ``model`` (a PanoSAMic, or anything :func:`panosamic.load_model` accepts) on the
    unlabelled panoramas ``inputs`` (files / folders; ``depth`` / ``normals``: folders matched by name).

    Writes ``out_dir/adapted.pth`` (training-style checkpoint) and the Hub layout (``config.json`` +
    weights) in ``out_dir``: ``panosamic.load_model(out_dir)`` loads the result. ``changes`` override
    fields of ``settings`` (see :class:`AdaptSettings`). ``source_dataset`` / ``source_path``: a prepared
    labelled dataset mixed in against forgetting (``source_dataset="pinhole"``: a prepared pinhole folder,
    its photos placed as ``source_projection`` says). ``resume``: continue the unfinished run in ``out_dir``.
    ``pseudo_labels_from``: a fixed model (or checkpoint, e.g. ``"sam3"``; ``pseudo_label_options``: its
    ``load_model`` keywords, SAM 3 prompted with the model's class names by default) that makes the
    pseudo-labels instead of the mean teacher.
    """
    s = dataclasses.replace(settings or AdaptSettings(), **changes)
    ctx = ctx or DistContext()
    check_source(source_dataset, source_path)
    out = Path(out_dir)
    check_output(out, resume)  # before any model is loaded (or SAM masks computed)
    net = _load(model, s.refine_masks, sam_weights, ctx.device, **(load or {}))
    refine = s.refine_masks if s.refine_masks is not None else (net.config.vit in SAM_VITS and not net.semantic_only)
    if refine and net.semantic_only:
        raise ValueError("refine_masks needs SAM's instance branch: pass a model loaded with semantic_only=False")
    threshold = depth_threshold if depth_threshold is not None else net.config.depth_threshold
    target = TargetPanoramas(inputs, net.modalities, net.native_size, depth=depth, normals=normals,
                             depth_scale=depth_scale, depth_threshold=threshold)
    source = None if source_dataset is None else build_source(source_dataset, source_path, net, source_fold, s.seed,
                                                                 source_projection)
    masks = _masks(net, target, out, resume, s.progress, not ctx.is_main) if refine else None
    labeller = None if pseudo_labels_from is None else _labeller(pseudo_labels_from, net, ctx.device,
                                                                  dict(pseudo_label_options or {}))
    student = semantic_copy(net)
    trainer = AdaptTrainer(student, target, out, s, source=source, masks=masks, resume=resume, ctx=ctx,
                           labeller=labeller)
    return trainer.fit()
