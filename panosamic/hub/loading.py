"""Where the files of a Hub variant are: a local file or folder, or a (cached) Hub download.

:func:`resolve_checkpoint` finds ``model.safetensors`` (and our ``config.json`` if the folder has
one); Hub errors become messages that say what is missing and how to get it offline.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from panosamic.hub.metadata import CONFIG_NAME, WEIGHTS_NAME


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Where the weights (and our config.json, if any) of one variant are on disk."""

    weights: Path
    config: Path | None
    source: str  # for messages: "repo/subfolder" or a local path
    local: bool


@dataclass(frozen=True)
class HubOptions:
    """How Hub files are fetched: ``huggingface_hub.hf_hub_download``'s options of the same names."""

    revision: str | None = None
    cache_dir: str | os.PathLike | None = None
    local_files_only: bool = False
    token: str | bool | None = None
    force_download: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names (``revision``, ``cache_dir``, ...): the keywords that mean the Hub."""
        return tuple(f.name for f in fields(cls))


class HubOfflineError(FileNotFoundError):
    """A Hub file is not in the local cache and the Hub cannot be asked (offline / no network)."""


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def is_repo_id(s: str) -> bool:
    """``namespace/name`` (or ``name``) as the Hub spells repo ids, not a weights or config file name."""
    return bool(_REPO_ID.fullmatch(s)) and not s.endswith((".safetensors", ".pth", ".pt", ".json"))


def _hub_file(
    repo_id: str, filename: str, subfolder: str | None, hub: HubOptions, optional: bool
) -> Path | None:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    revision = hub.revision
    where = f"{repo_id}/{subfolder + '/' if subfolder else ''}{filename}" + (f" (revision {revision})" if revision else "")
    try:
        options = {name: getattr(hub, name) for name in HubOptions.names()}
        return Path(hf_hub_download(repo_id, filename, subfolder=subfolder or None, **options))
    except LocalEntryNotFoundError as e:
        if optional:
            return None
        offline = constants.HF_HUB_OFFLINE or hub.local_files_only
        cache = hub.cache_dir or constants.HF_HUB_CACHE
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
    repo_or_path: str | os.PathLike, *, subfolder: str | None = None, **hub: Any
) -> ResolvedCheckpoint:
    """Find the weights and optional config.json of a variant (local file / folder / Hub repo);
    ``hub``: :class:`HubOptions` (``revision``, ``cache_dir``, ``local_files_only``, ``token``,
    ``force_download``)."""
    options = HubOptions(**hub)
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
    if not is_repo_id(repo_id):
        raise FileNotFoundError(f"{repo_or_path} is neither an existing file or folder nor a Hub repo id (namespace/name)")
    weights = _hub_file(repo_id, WEIGHTS_NAME, subfolder, options, optional=False)
    cfg = _hub_file(repo_id, CONFIG_NAME, subfolder, options, optional=True)
    assert weights is not None
    source = f"{repo_id}/{subfolder}" if subfolder else repo_id
    return ResolvedCheckpoint(weights, cfg, source, False)


def hub_config_file(repo_id: str, *, subfolder: str | None = None, **hub: Any) -> Path | None:
    """The (cached) ``config.json`` of a Hub repo (+ subfolder), or None where it has none; ``hub``:
    :class:`HubOptions`."""
    return _hub_file(repo_id, CONFIG_NAME, subfolder, HubOptions(**hub), optional=True)
