"""``load_model``: any checkpoint -> a ready model.

A checkpoint can be a registered variant name (``stanford2d3ds-vith-rgb-fold1``), a Hub repo id
(+ ``subfolder``), a local folder laid out like the Hub repo, a ``.safetensors`` file, a training
``.pth``, a training run folder (its ``model_best.pth``, else ``model_last.pth`` with a note) or a
glob naming run folders (the newest match). Every check runs before any weights are loaded, so
a refused checkpoint never leaves a half-loaded model.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from panosamic.config import ConfigError, ModelConfig, PanoSAMicConfig
from panosamic.hub.files import read_weights, saved_prefixes
from panosamic.hub.loading import resolve_checkpoint
from panosamic.hub.metadata import CONFIG_NAME
from panosamic.io import safe_torch_load
from panosamic.model.panosamic import PanoSAMic
from panosamic.model.registry import find_variant
from panosamic.modeling.state_dict import check_state_dict
from panosamic.specs import FROZEN_PREFIXES, PUBLISHED_REPO, TRAINABLE_PREFIXES

logger = logging.getLogger(__name__)

#: File names of a training run's checkpoints, best first.
RUN_CHECKPOINTS = ("model_best.pth", "model_last.pth")
_TRAINING_SUFFIXES = (".pth", ".pt")
_ARCHITECTURE = ("vit", "modalities", "num_classes", "channel_attention", "spatial_attention", "dual_view",
                 "basic_fusion", "canvas_size")


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`find_checkpoint` found: the config (if known), the tensors and where they came from."""

    config: ModelConfig | None
    tensors: dict[str, torch.Tensor]
    source: str
    kind: str  # "hub" or "training"
    meta: Mapping[str, Any]


# ---------------------------------------------------------------------------- training checkpoints
def find_run_checkpoint(run_dir: Path) -> Path:
    """``model_best.pth`` of a run folder, else ``model_last.pth`` (with a note)."""
    for name in RUN_CHECKPOINTS:
        if (run_dir / name).is_file():
            if name != RUN_CHECKPOINTS[0]:
                logger.warning("note: %s has no %s (the run was stopped early?); using %s",
                               run_dir, RUN_CHECKPOINTS[0], name)
            return run_dir / name
    raise FileNotFoundError(f"{run_dir} holds neither {RUN_CHECKPOINTS[0]} nor {RUN_CHECKPOINTS[1]}")


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in RUN_CHECKPOINTS)


def expand_run_pattern(pattern: str) -> Path | None:
    """The newest run folder (or checkpoint file) matching a glob, or None if nothing matches."""
    matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(pattern)))
    runs = [m for m in matches if _is_run_dir(m) or (m.is_file() and m.suffix in _TRAINING_SUFFIXES)]
    return runs[-1] if runs else None  # run folders are named by date: the last is the newest


def reference_config(d: Any, path: Path) -> PanoSAMicConfig:
    """The reference config stored in a training checkpoint; an error names the checkpoint file."""
    where = f"{path} (config)"
    try:
        return PanoSAMicConfig.from_dict(d, where=where)
    except ConfigError as e:
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where}: {e}") from None


#: Keys of a training checkpoint that record its architecture (the reference's trainer writes none).
_RECORDED = {"vit_model": "vit", "modalities": "modalities", "num_classes": "num_classes"}


def training_config(ck: Mapping[str, Any], path: Path) -> ModelConfig | None:
    """The ModelConfig a training checkpoint was trained with; None when it does not record it
    (the reference's own checkpoints: ``epoch``, ``model``, ``best_miou``, ``miou``, ``macc``)."""
    if ck.get("model_config") is not None:
        return ModelConfig.from_dict(ck["model_config"], where=f"{path} (model_config)")
    if any(ck.get(k) is None for k in ("config", *_RECORDED)):
        return None
    use = {k: ck.get(k) for k in ("class_names", "dataset", "fold", "depth_threshold")}
    return reference_config(ck["config"], path).model_config(
        vit=ck["vit_model"], modalities=tuple(ck["modalities"]), num_classes=int(ck["num_classes"]), **use
    )


def read_training_checkpoint(path: Path) -> Checkpoint:
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping) and "student_config" in obj:  # a distillation checkpoint
        return Checkpoint(None, {}, str(path), "student", {})
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        raise ValueError(f"{path} is not a panosamic training checkpoint (a dict with a 'model' state dict)")
    state = {k.removeprefix("module."): v for k, v in obj["model"].items()}
    meta: dict[str, Any] = {k: obj.get(k) for k in ("epoch", "global_step", "miou", "macc", "date", "best_miou")}
    if isinstance(obj.get("config"), Mapping):
        meta["training"] = reference_config(obj["config"], path).training
    config = training_config(obj, path)
    if config is None:  # what it does record must agree with the caller's architecture
        meta["recorded"] = {field: obj[k] for k, field in _RECORDED.items() if obj.get(k) is not None}
    return Checkpoint(config, state, str(path), "training", meta)


# ---------------------------------------------------------------------------- finding
def find_checkpoint(checkpoint: str | os.PathLike, *, subfolder: str | None = None, **hub: Any) -> Checkpoint:
    """Locate and read a checkpoint (see the module docstring); ``hub``: revision, cache_dir,
    local_files_only, token, force_download."""
    spec = str(checkpoint)
    p = Path(spec).expanduser()
    if not p.exists() and any(c in spec for c in "*?["):
        found = expand_run_pattern(spec)
        if found is None:
            raise FileNotFoundError(f"no training run matches {spec!r}")
        p = found
    if not p.exists() and p.suffix in (*_TRAINING_SUFFIXES, ".safetensors"):
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_file() and p.suffix in _TRAINING_SUFFIXES:
        return read_training_checkpoint(p)
    if _is_run_dir(p) and subfolder is None:
        return read_training_checkpoint(find_run_checkpoint(p))
    variant = find_variant(spec) if not p.exists() and subfolder is None and "/" not in spec else None
    repo, sub = (variant.repo or PUBLISHED_REPO, variant.subfolder) if variant is not None else (spec, subfolder)
    resolved = resolve_checkpoint(repo, subfolder=sub, **hub)
    config = ModelConfig.from_json(resolved.config) if resolved.config is not None else None
    if config is None:
        known = variant or find_variant(sub) or find_variant(resolved.source)
        config = known.config if known is not None else None
    tensors = read_weights(resolved.weights, local=resolved.local)
    return Checkpoint(config, tensors, resolved.source, "hub", {"repo": repo, "subfolder": sub})


def settle_config(found: ModelConfig | None, given: ModelConfig | None, source: str,
                  recorded: Mapping[str, Any] | None = None) -> ModelConfig:
    """The checkpoint's config, checked against a given one (their architectures must agree);
    ``recorded``: the architecture facts a checkpoint without a config does record."""
    if found is None:
        if given is None:
            what = ("is a training checkpoint that does not record its architecture (the reference's format)"
                    if source.endswith(_TRAINING_SUFFIXES) else
                    f"has no {CONFIG_NAME} and is not a registered variant, so its architecture is unknown")
            raise ValueError(f"{source} {what}: pass config=ModelConfig(...) "
                             "(command line: --config FILE --vit VIT --modalities M --num-classes K)")
        wrong = [f"{k}: given {getattr(given, k)!r}, the checkpoint says {v!r}"
                 for k, v in (recorded or {}).items() if _normal(k, v) != getattr(given, k)]
        if wrong:
            raise ValueError(f"the given architecture disagrees with {source}: " + "; ".join(wrong))
        return given
    if given is not None:
        wrong = [f"{k}: given {getattr(given, k)!r}, the checkpoint says {getattr(found, k)!r}"
                 for k in _ARCHITECTURE if getattr(given, k) != getattr(found, k)]
        if wrong:
            raise ValueError(f"the given architecture disagrees with {source}: " + "; ".join(wrong))
    return found


def _normal(field: str, value: Any) -> Any:
    if field == "modalities":
        from panosamic.specs import canonical_modalities

        return canonical_modalities(value)
    return int(value) if field == "num_classes" else value


# ---------------------------------------------------------------------------- students
def _student_config_file(p: Path, subfolder: str | None) -> Path | None:
    base = p / subfolder if subfolder else p
    for folder in (base, base / "student"):  # a student folder, or a distillation run's
        cfg = folder / CONFIG_NAME
        if cfg.is_file():
            return cfg
    return None


def load_student_if_any(checkpoint: str | os.PathLike, *, subfolder: str | None, device: Any, **hub: Any) -> Any:
    """A compact student (:mod:`panosamic.student`) if ``checkpoint`` is one — an ``.onnx`` export,
    a student folder, a distillation run or checkpoint, a Hub folder whose config.json says
    ``"architecture": "panosamic-student"`` — else None."""
    from panosamic.config.checks import read_json  # names the file when it is not valid JSON
    from panosamic.student.config import is_student_config
    from panosamic.student.hub import load_student

    p = Path(str(checkpoint)).expanduser()
    if p.suffix == ".onnx":
        from panosamic.student.onnx import OnnxStudent

        if not p.is_file():
            raise FileNotFoundError(f"ONNX model not found: {p}")
        return OnnxStudent(p)
    if p.is_dir():
        cfg = _student_config_file(p, subfolder)
        if cfg is not None and is_student_config(read_json(cfg)):
            return load_student(cfg.parent, device=device)
        return None
    from panosamic.hub.loading import _hub_file, _is_repo_id

    if find_variant(str(checkpoint)) is not None or "/" not in str(checkpoint) or not _is_repo_id(str(checkpoint)):
        return None
    kw = {k: hub.get(k) for k in ("revision", "cache_dir", "token")}
    cfg = _hub_file(str(checkpoint), CONFIG_NAME, subfolder=subfolder, local_files_only=bool(hub.get("local_files_only")),
                    force_download=bool(hub.get("force_download")), optional=True, **kw)
    if cfg is not None and is_student_config(read_json(cfg)):
        return load_student(str(checkpoint), subfolder=subfolder, revision=hub.get("revision"), device=device,
                            local_files_only=bool(hub.get("local_files_only")))
    return None


# ---------------------------------------------------------------------------- loading
_PROMPT, _CACHED = "prompt_encoder.", "_cached_prompt_encoder."


def _holds_instance_branch(tensors: Mapping[str, torch.Tensor]) -> bool:
    """A full state dict (the reference's trainer saves SAM's prompt encoder and mask decoder too)."""
    return any(k.startswith("mask_decoder.") for k in tensors) and any(k.startswith((_PROMPT, _CACHED)) for k in tensors)


def _with_prompt_encoder_copies(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The prompt encoder under both of its names (the newer reference saves a ``_cached_`` copy, the older not)."""
    out = dict(tensors)
    for a, b in ((_PROMPT, _CACHED), (_CACHED, _PROMPT)):
        for k, v in tensors.items():
            if k.startswith(a):
                out.setdefault(b + k[len(a):], v)
    return out


def resolve_sam(sam_weights: Any, config: ModelConfig, progress: bool = True) -> Any:
    """Meta's SAM weights for a config: a state dict as given, else a path (found or downloaded)."""
    if isinstance(sam_weights, Mapping):
        return sam_weights
    from panosamic.weights.sam import resolve_sam_weights

    return resolve_sam_weights(sam_weights, config.vit, progress=progress)


def load_model(
    checkpoint: str | os.PathLike,
    *,
    subfolder: str | None = None,
    config: ModelConfig | None = None,
    sam_weights: Any = None,
    device: str | torch.device = "cpu",
    semantic_only: bool = True,
    strict: bool = True,
    progress: bool = True,
    model_class: type[PanoSAMic] = PanoSAMic,
    classes: Any = None,
    **hub: Any,
) -> PanoSAMic:
    """Load any checkpoint (see the module docstring) into a model in ``eval()`` mode on ``device``;
    a compact student (folder, distillation run, ``.onnx``) loads as its own class, with the same
    forward and prediction interface.

    ``config``: the architecture, for folders that carry none (it must agree with what the
    checkpoint says otherwise). ``sam_weights``: Meta's ``.pth``, a folder holding it, a state
    dict, or None (download into ``$PANOSAMIC_CACHE/sam``); not needed by the test architecture.
    ``classes``: the class list of an open-vocabulary checkpoint (``"sam3"``, ``"test-sam3-tiny"``, a
    SAM 3 folder saved by transformers or a Hub id; ``hub`` may then hold ``views``, ``fov_deg``,
    ``coverage_threshold``, ``smoothing``: :func:`panosamic.openvocab.load_sam3`).
    ``semantic_only=False`` adds SAM's instance branch. ``hub``: ``revision``, ``cache_dir``,
    ``local_files_only``, ``token``, ``force_download``.
    """
    from panosamic.openvocab.loading import is_sam3_checkpoint, load_sam3

    if classes is not None or is_sam3_checkpoint(checkpoint, subfolder):  # open vocabulary: SAM 3 + your classes
        return load_sam3(checkpoint, classes=classes, subfolder=subfolder, device=device, **hub)
    student = load_student_if_any(checkpoint, subfolder=subfolder, device=device, **hub) if config is None else None
    if student is not None:
        return student
    ck = find_checkpoint(checkpoint, subfolder=subfolder, **hub)
    if ck.kind == "student":
        from panosamic.student.hub import load_student

        return load_student(ck.source, device=device)
    cfg = settle_config(ck.config, config, ck.source, ck.meta.get("recorded")).replace(semantic_only=bool(semantic_only))
    prefixes = saved_prefixes(cfg) if ck.kind == "hub" else ("image_encoder.", *TRAINABLE_PREFIXES)
    if not any(k.startswith("image_encoder.") for k in ck.tensors):
        prefixes = TRAINABLE_PREFIXES  # e.g. a test-architecture folder in the published layout
    elif ck.kind == "training" and not cfg.semantic_only and _holds_instance_branch(ck.tensors):
        prefixes = (*FROZEN_PREFIXES, *TRAINABLE_PREFIXES)  # a full state dict: SAM's file is not needed
        ck = dataclasses.replace(ck, tensors=_with_prompt_encoder_copies(ck.tensors))
    needs_sam = "image_encoder." not in prefixes or (not cfg.semantic_only and "mask_decoder." not in prefixes)
    sam = resolve_sam(sam_weights, cfg, progress) if needs_sam else None  # fails fast offline
    model = model_class(cfg)
    ignored = [k for k in ck.tensors if not k.startswith(prefixes)]
    if ignored:  # frozen SAM tensors in a Hub folder, SAM's instance branch in a training checkpoint
        logger.info("%s: %d tensor(s) outside %s ignored (they come from Meta's file)", ck.source, len(ignored), prefixes)
    tensors = {k: v for k, v in ck.tensors.items() if k.startswith(prefixes)}
    tensors = check_state_dict(model, tensors, strict=strict, only_prefixes=prefixes, source=ck.source)
    if sam is not None:
        model.load_sam_weights(sam)
    model.load_state_dict(tensors, strict=False)  # checked above; cast to the model's dtype
    model.checkpoint_info = {"source": ck.source, "kind": ck.kind,
                             **{k: v for k, v in ck.meta.items() if k not in ("training", "recorded")}}
    logger.info("loaded %d tensors from %s", len(tensors), ck.source)
    return model.to(device).eval()
