"""``from_pretrained_panosamic``: a Hub repo (or a local copy of one) -> a ready model.

Steps: find ``model.safetensors`` (and our ``config.json`` if the folder has one) in a local
file / folder or through ``hf_hub_download``; settle the architecture from config.json and the
caller's arguments; read and check the trainable tensors; build the model; fill the frozen SAM
parts from Meta's checkpoint (found or downloaded by :mod:`panosamic.weights.sam`); load the
trainable tensors (cast to the model's dtype); return the model in ``eval()`` mode. Every
check runs before anything is loaded, so a refused checkpoint never leaves a half-loaded model.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from panosamic.config import PanoSAMicConfig
from panosamic.constants import canonical_modalities
from panosamic.hub.files import FROZEN_PREFIXES, TRAINABLE_PREFIXES, read_weights
from panosamic.hub.metadata import ARCHITECTURE_FIELDS, CONFIG_NAME, WEIGHTS_NAME, HubModelInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Where the weights (and our config.json, if any) of one variant are on disk."""

    weights: Path
    config: Path | None
    source: str  # for messages: "repo/subfolder" or a local path
    local: bool


class HubOfflineError(FileNotFoundError):
    """A Hub file is not in the local cache and the Hub cannot be asked (offline / no network)."""


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _is_repo_id(s: str) -> bool:
    return bool(_REPO_ID.fullmatch(s)) and not s.endswith((".safetensors", ".pth", ".pt", ".json"))


def _hub_file(
    repo_id: str,
    filename: str,
    *,
    subfolder: str | None,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    token: str | bool | None,
    force_download: bool,
    optional: bool,
) -> Path | None:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}/{subfolder + '/' if subfolder else ''}{filename}" + (f" (revision {revision})" if revision else "")
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                subfolder=subfolder or None,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                force_download=force_download,
            )
        )
    except LocalEntryNotFoundError as e:
        if optional:
            return None
        offline = constants.HF_HUB_OFFLINE or local_files_only
        cache = cache_dir or constants.HF_HUB_CACHE
        reason = (
            "HF_HUB_OFFLINE=1 / local_files_only is set"
            if offline
            else "the Hub could not be reached (no network?)"
        )
        raise HubOfflineError(
            f"{where} is not in the Hugging Face cache ({cache}) and {reason}. Run once with network access "
            f"(or `hf download {repo_id} {(subfolder + '/') if subfolder else ''}{filename}`), or pass a local "
            "folder laid out like the repo (or the .safetensors file) instead of the repo id."
        ) from e
    except EntryNotFoundError as e:  # includes the remote 404 and a cached "does not exist"
        if optional:
            return None
        raise FileNotFoundError(f"{where} does not exist on the Hub (wrong subfolder?)") from e
    except RevisionNotFoundError as e:
        raise FileNotFoundError(f"revision {revision!r} not found in the Hub repo {repo_id}") from e
    except RepositoryNotFoundError as e:
        raise FileNotFoundError(
            f"Hub repo {repo_id!r} not found (or private without a valid token); "
            "if you meant a local path, it does not exist"
        ) from e


def resolve_checkpoint(
    repo_or_path: str | os.PathLike,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> ResolvedCheckpoint:
    """Find the weights and optional config.json of a variant (local file / folder / Hub repo)."""
    if not isinstance(repo_or_path, (str, os.PathLike)):
        raise TypeError(f"repo_or_path must be a repo id or a path, got {type(repo_or_path).__name__}")
    p = Path(repo_or_path).expanduser()
    if p.is_file():
        if subfolder:
            raise ValueError(f"subfolder={subfolder!r} given with a weights file ({p}); give the folder instead")
        cfg = p.parent / CONFIG_NAME
        return ResolvedCheckpoint(p, cfg if cfg.is_file() else None, str(p), True)
    if p.is_dir():
        base = p / subfolder if subfolder else p
        weights = base / WEIGHTS_NAME
        if not weights.is_file():
            found = sorted(q.name for q in base.iterdir()) if base.is_dir() else None
            raise FileNotFoundError(
                f"no {WEIGHTS_NAME} in {base}" + (f" (it holds {found[:10]})" if found is not None else " (no such folder)")
            )
        cfg = base / CONFIG_NAME
        return ResolvedCheckpoint(weights, cfg if cfg.is_file() else None, str(base), True)
    repo_id = str(repo_or_path)
    if not _is_repo_id(repo_id):
        raise FileNotFoundError(f"{repo_or_path} is neither an existing file or folder nor a Hub repo id (namespace/name)")
    kw = dict(
        subfolder=subfolder,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )
    weights = _hub_file(repo_id, WEIGHTS_NAME, optional=False, **kw)
    cfg = _hub_file(repo_id, CONFIG_NAME, optional=True, **kw)
    assert weights is not None
    source = f"{repo_id}/{subfolder}" if subfolder else repo_id
    return ResolvedCheckpoint(weights, cfg, source, False)


def _architecture_of(config: PanoSAMicConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in ARCHITECTURE_FIELDS}


def settle_architecture(
    stored: HubModelInfo | None,
    *,
    config_path: Any,
    vit_model: str | None,
    modalities: Sequence[str] | str | None,
    num_classes: int | None,
    source: str,
) -> HubModelInfo:
    """Combine the folder's config.json (if any) with the caller's arguments; refuse disagreements."""
    given_config = None if config_path is None else PanoSAMicConfig.coerce(config_path)
    given_mods = None if modalities is None else canonical_modalities(modalities)
    if stored is None:
        missing = [
            name
            for name, value in (
                ("config_path", given_config),
                ("vit_model", vit_model),
                ("modalities", given_mods),
                ("num_classes", num_classes),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                f"{source} has no {CONFIG_NAME} (published checkpoints do not), so the architecture must be given: "
                f"missing {', '.join(missing)} (e.g. config_path='config/config_stanford2d3ds_dv.json', "
                "vit_model='vit_h', modalities=('image', 'depth', 'normals'), num_classes=13)"
            )
        assert given_config is not None and vit_model is not None and given_mods is not None
        return HubModelInfo(vit_model=vit_model, modalities=given_mods, num_classes=int(num_classes), config=given_config)
    disagreements = []
    if vit_model is not None and vit_model != stored.vit_model:
        disagreements.append(f"vit_model: given {vit_model!r}, {CONFIG_NAME} says {stored.vit_model!r}")
    if given_mods is not None and given_mods != stored.modalities:
        disagreements.append(f"modalities: given {given_mods}, {CONFIG_NAME} says {stored.modalities}")
    if num_classes is not None and num_classes != stored.num_classes:
        disagreements.append(f"num_classes: given {num_classes}, {CONFIG_NAME} says {stored.num_classes}")
    if given_config is not None:
        a, b = _architecture_of(given_config), _architecture_of(stored.config)
        for field in ARCHITECTURE_FIELDS:
            if a[field] != b[field]:
                disagreements.append(f"config {field}: given {a[field]!r}, {CONFIG_NAME} says {b[field]!r}")
    if disagreements:
        raise ValueError(f"the arguments disagree with {source}/{CONFIG_NAME}: " + "; ".join(disagreements))
    return stored


def check_trainable(model: torch.nn.Module, tensors: dict[str, torch.Tensor], *, strict: bool, source: str) -> dict[str, torch.Tensor]:
    """The trainable tensors of ``tensors`` that fit ``model``; ValueError naming what does not."""
    from panosamic.model.state_dict import check_state_dict

    frozen = sorted(k for k in tensors if k.startswith(FROZEN_PREFIXES))
    if frozen:
        logger.warning("%s holds %d frozen SAM tensor(s); they are ignored (SAM comes from Meta's file)", source, len(frozen))
    trainable = {k: v for k, v in tensors.items() if not k.startswith(FROZEN_PREFIXES)}
    return check_state_dict(model, trainable, strict=strict, only_prefixes=TRAINABLE_PREFIXES, source=source)


def load_panosamic(
    cls: type,
    repo_or_path: str | os.PathLike,
    *,
    subfolder: str | None = None,
    config_path: Any = None,
    vit_model: str | None = None,
    modalities: Sequence[str] | str | None = None,
    num_classes: int | None = None,
    sam_weights_path: Any = None,
    semantic_only: bool = False,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
    force_download: bool = False,
) -> Any:
    """The implementation behind ``PanoSAMic.from_pretrained_panosamic`` (see there)."""
    from panosamic.weights.sam import resolve_sam_weights

    resolved = resolve_checkpoint(
        repo_or_path,
        subfolder=subfolder,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )
    stored = HubModelInfo.from_json(resolved.config) if resolved.config is not None else None
    info = settle_architecture(
        stored,
        config_path=config_path,
        vit_model=vit_model,
        modalities=modalities,
        num_classes=num_classes,
        source=resolved.source,
    )
    tensors = read_weights(resolved.weights, local=resolved.local)
    # Find the SAM file before building anything big (fails fast when offline).
    sam_path: Any = sam_weights_path
    if not isinstance(sam_weights_path, dict):
        sam_path = resolve_sam_weights(sam_weights_path, info.vit_model)
    model = cls(semantic_only=semantic_only, **info.model_kwargs())
    trainable = check_trainable(model, tensors, strict=strict, source=str(resolved.weights))
    model.load_sam_weights(sam_path)
    model.load_state_dict(trainable, strict=False)  # checked above; cast to the model's dtype
    logger.info("loaded %d trainable tensors from %s", len(trainable), resolved.source)
    return model.to(map_location).eval()
