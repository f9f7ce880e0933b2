"""Finding and reading a PanoSAMic checkpoint: variant name, Hub repo id (+ subfolder), local folder,
``.safetensors``, training ``.pth``, run folder, or a glob of run folders (the newest).

Nothing here builds a model: :func:`find_checkpoint` returns the config (if known), the tensors and
where they came from, and :func:`settle_config` checks a caller's architecture against it.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from panosamic.config import ModelConfig, PanoSAMicConfig
from panosamic.config.model import ARCHITECTURE_FIELDS
from panosamic.hub.checkpoint import read_model_entries
from panosamic.hub.files import read_weights
from panosamic.hub.loading import resolve_checkpoint
from panosamic.hub.metadata import CONFIG_NAME
from panosamic.io import safe_torch_load
from panosamic.model.registry import find_variant
from panosamic.specs import PUBLISHED_REPO, canonical_modalities

logger = logging.getLogger(__name__)

#: File names of a training run's checkpoints, best first.
RUN_CHECKPOINTS = ("model_best.pth", "model_last.pth")
TRAINING_SUFFIXES = (".pth", ".pt")


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`find_checkpoint` found: the config (if known), the tensors and where they came from.
    ``recorded``: the architecture facts a training checkpoint without a config does record."""

    config: ModelConfig | None
    tensors: dict[str, torch.Tensor]
    source: str
    kind: str  # "hub" or "training"
    meta: Mapping[str, Any]
    recorded: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- run folders
def find_run_checkpoint(run_dir: Path) -> Path:
    """``model_best.pth`` of a run folder, else ``model_last.pth`` (with a note)."""
    for name in RUN_CHECKPOINTS:
        if (run_dir / name).is_file():
            if name != RUN_CHECKPOINTS[0]:
                logger.warning("note: %s has no %s (the run was stopped early?); using %s",
                               run_dir, RUN_CHECKPOINTS[0], name)
            return run_dir / name
    raise FileNotFoundError(f"{run_dir} holds neither {RUN_CHECKPOINTS[0]} nor {RUN_CHECKPOINTS[1]}")


def is_run_dir(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in RUN_CHECKPOINTS)


def expand_run_pattern(pattern: str) -> Path | None:
    """The newest run folder (or checkpoint file) matching a glob, or None if nothing matches."""
    matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(pattern)))
    runs = [m for m in matches if is_run_dir(m) or (m.is_file() and m.suffix in TRAINING_SUFFIXES)]
    return runs[-1] if runs else None  # run folders are named by date: the last is the newest


def local_path(checkpoint: str | os.PathLike) -> Path:
    """The local file or folder a checkpoint names (a glob resolved to its newest run), which may not exist."""
    spec = str(checkpoint)
    p = Path(spec).expanduser()
    if not p.exists() and any(c in spec for c in "*?["):
        found = expand_run_pattern(spec)
        if found is None:
            raise FileNotFoundError(f"no training run matches {spec!r}")
        p = found
    return p


# ---------------------------------------------------------------------------- reading
def read_training_checkpoint(path: Path) -> Checkpoint:
    """A PanoSAMic training checkpoint (any layout :func:`~panosamic.hub.checkpoint.read_model_entries` reads)."""
    obj = safe_torch_load(path)
    entries = read_model_entries(obj, str(path))  # type: ignore[arg-type]
    if entries.architecture != "panosamic":
        raise ValueError(f"{path} is a checkpoint of a {entries.architecture!r} model, not of a PanoSAMic")
    assert isinstance(obj, Mapping)
    meta: dict[str, Any] = {k: obj.get(k) for k in ("epoch", "global_step", "miou", "macc", "date", "best_miou")}
    if isinstance(obj.get("config"), Mapping):
        from panosamic.hub.checkpoint import reference_config

        meta["training"] = reference_config(obj["config"], str(path)).training
    return Checkpoint(entries.config, entries.state, str(path), "training", meta, entries.recorded)


def find_checkpoint(checkpoint: str | os.PathLike, *, subfolder: str | None = None, **hub: Any) -> Checkpoint:
    """Locate and read a PanoSAMic checkpoint (see the module docstring); ``hub``: revision, cache_dir,
    local_files_only, token, force_download."""
    spec = str(checkpoint)
    p = local_path(checkpoint)
    if not p.exists() and p.suffix in (*TRAINING_SUFFIXES, ".safetensors"):
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_file() and p.suffix in TRAINING_SUFFIXES:
        return read_training_checkpoint(p)
    if is_run_dir(p) and subfolder is None:
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


# ---------------------------------------------------------------------------- the architecture
def _disagreements(given: ModelConfig, facts: Mapping[str, Any]) -> list[str]:
    def normal(k: str, v: Any) -> Any:
        return canonical_modalities(v) if k == "modalities" else int(v) if k == "num_classes" else v

    return [f"{k}: given {getattr(given, k)!r}, the checkpoint says {v!r}"
            for k, v in facts.items() if normal(k, v) != getattr(given, k)]


def settle_config(found: ModelConfig | None, given: ModelConfig | None, source: str,
                  recorded: Mapping[str, Any] | None = None) -> ModelConfig:
    """The checkpoint's config, checked against a given one (their architecture fields must agree);
    ``recorded``: the facts a checkpoint without a config does record (they must agree too)."""
    if found is None and given is None:
        what = ("is a training checkpoint that does not record its architecture (the reference's format)"
                if source.endswith(TRAINING_SUFFIXES) else
                f"has no {CONFIG_NAME} and is not a registered variant, so its architecture is unknown")
        raise ValueError(f"{source} {what}: pass config=ModelConfig(...) "
                         "(command line: --config FILE --vit VIT --modalities M --num-classes K)")
    if given is None:
        return found  # type: ignore[return-value]
    facts = (recorded or {}) if found is None else {k: getattr(found, k) for k in ARCHITECTURE_FIELDS}
    wrong = _disagreements(given, facts)
    if wrong:
        raise ValueError(f"the given architecture disagrees with {source}: " + "; ".join(wrong))
    return given if found is None else found


def reference_model_config(
    config_path: PanoSAMicConfig | Mapping[str, Any] | str | os.PathLike | None,
    vit_model: str | None,
    modalities: Sequence[str] | str | None,
    num_classes: int | None,
) -> ModelConfig | None:
    """The architecture the reference describes with ``--config_path --vit_model --modalities`` and the
    class count (all four, or none: None); used for checkpoints that do not record it."""
    given = {"config_path": config_path, "vit_model": vit_model, "modalities": modalities, "num_classes": num_classes}
    if all(v is None for v in given.values()):
        return None
    missing = [n for n, v in given.items() if v is None]
    if missing:
        raise ValueError(f"give all of config_path, vit_model, modalities, num_classes (missing {missing})")
    return PanoSAMicConfig.coerce(config_path).model_config(vit=vit_model, modalities=modalities,
                                                            num_classes=int(num_classes))  # type: ignore[arg-type]
