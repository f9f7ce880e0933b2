"""``load_model``: any checkpoint -> a ready model, whatever its kind.

A checkpoint can be a registered variant name (``stanford2d3ds-vith-rgb-fold1``), a Hub repo id
(+ ``subfolder``), a local folder laid out like the Hub repo, a ``.safetensors`` file, a training
``.pth``, a training run folder (its ``model_best.pth``, else ``model_last.pth`` with a note), a
glob naming run folders (the newest match), a compact student (folder, distillation run or
checkpoint, Hub folder) or its ``.onnx`` export. The kind of model comes from config.json's
``"architecture"`` (or the training checkpoint's ``model_config``; PanoSAMic where nothing says),
and its registered loader (:mod:`panosamic.model.kinds`) loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from panosamic.hub.metadata import CONFIG_NAME, PANOSAMIC, architecture_of
from panosamic.model.checkpoints import TRAINING_SUFFIXES, find_run_checkpoint, is_run_dir, local_path
from panosamic.model.kinds import claiming_kind, get_kind, register_kind
from panosamic.model.registry import find_variant
from panosamic.modeling.protocol import SegmentationModel
from panosamic.student.config import ARCHITECTURE as STUDENT

__all__ = ["detect_kind", "load_model"]

register_kind(PANOSAMIC, "panosamic.model.panosamic:load_panosamic")
register_kind(STUDENT, "panosamic.hub.student:load_student_model")
register_kind("sam3", "panosamic.openvocab.loading:load_sam3", claims="panosamic.openvocab.loading:is_sam3_checkpoint")

#: load_model's options and their defaults: only those the caller changed reach the loader.
_DEFAULTS: dict[str, Any] = {"config": None, "sam_weights": None, "semantic_only": True, "strict": True,
                             "progress": True, "model_class": None}


def _read_json(path: Path) -> Any:
    from panosamic.config.checks import read_json  # names the file when it is not valid JSON

    return read_json(path)


def _training_kind(path: Path) -> str:
    """The architecture a training checkpoint's model part names (read memory-mapped: no tensor is read)."""
    from panosamic.hub.checkpoint import read_model_entries
    from panosamic.io import safe_torch_load

    try:
        obj = safe_torch_load(path, mmap=True)
    except ValueError:  # an old (non-zip) file cannot be mapped; a broken one fails again, with its message
        obj = safe_torch_load(path)
    return read_model_entries(obj, str(path)).architecture  # type: ignore[arg-type]


def detect_kind(checkpoint: str | os.PathLike, *, subfolder: str | None = None, **hub: Any) -> str:
    """The ``"architecture"`` of a checkpoint (see the module docstring), without loading its weights."""
    claimed = claiming_kind(checkpoint, subfolder)
    if claimed is not None:
        return claimed.name
    p = local_path(checkpoint)
    if p.suffix == ".onnx":
        return STUDENT
    if p.is_file():
        if p.suffix in TRAINING_SUFFIXES:
            return _training_kind(p)
        beside = p.parent / CONFIG_NAME
        return architecture_of(_read_json(beside)) if beside.is_file() else PANOSAMIC
    if p.is_dir():
        base = p / subfolder if subfolder else p
        for folder in (base, base / "student"):  # a model folder, or a distillation run's student
            if (folder / CONFIG_NAME).is_file():
                return architecture_of(_read_json(folder / CONFIG_NAME))
        if subfolder is None and is_run_dir(p):
            return _training_kind(find_run_checkpoint(p))
        return PANOSAMIC
    spec = str(checkpoint)
    from panosamic.hub.loading import HubOptions, hub_config_file, is_repo_id

    if (subfolder is None and find_variant(spec) is not None) or p.suffix in (*TRAINING_SUFFIXES, ".safetensors") \
            or not is_repo_id(spec):
        return PANOSAMIC  # a variant name, or a missing file: the PanoSAMic loader names what is wrong
    options = {k: v for k, v in hub.items() if k in HubOptions.names()}  # not the other kinds' keywords
    cfg = hub_config_file(spec, subfolder=subfolder, **options)
    return architecture_of(_read_json(cfg)) if cfg is not None else PANOSAMIC


def load_model(
    checkpoint: str | os.PathLike,
    *,
    subfolder: str | None = None,
    config: Any = None,
    sam_weights: Any = None,
    device: Any = "cpu",
    semantic_only: bool = True,
    strict: bool = True,
    progress: bool = True,
    model_class: Any = None,
    **options: Any,
) -> SegmentationModel:
    """Load any checkpoint (see the module docstring) into a model in ``eval()`` mode on ``device``.

    ``config``: a PanoSAMic's architecture (:class:`~panosamic.config.ModelConfig`), for checkpoints
    that carry none (the reference's training checkpoints, published folders that are not
    registered); it must agree with what the checkpoint says otherwise. ``sam_weights``: Meta's
    ``.pth``, a folder holding it, a state dict, or None (found in or downloaded into
    ``$PANOSAMIC_CACHE/sam``); not needed by the test architecture. ``semantic_only=False`` adds
    SAM's instance branch. ``options``: ``revision``, ``cache_dir``, ``local_files_only``,
    ``token``, ``force_download`` (Hub), and the keywords of other kinds' loaders.
    """
    given = {k: v for k, v in (("config", config), ("sam_weights", sam_weights), ("semantic_only", semantic_only),
                               ("strict", strict), ("progress", progress), ("model_class", model_class))
             if v is not _DEFAULTS[k] and v != _DEFAULTS[k]}
    kind = get_kind(detect_kind(checkpoint, subfolder=subfolder, **options))
    model = kind.load(checkpoint, subfolder=subfolder, device=device, **given, **options)
    if getattr(model, "checkpoint_info", None) is None:
        model.checkpoint_info = {"source": str(checkpoint), "kind": kind.name}
    return model
