"""Before a published variant is loaded: are its files here, and if not, can they be downloaded?

Offline, ``huggingface_hub`` retries a Hub request five times (about 23 s) before it gives up on
the checkpoint, and the SAM weights would fail next. :func:`check_downloads` instead lists every
file a variant needs that is not on disk (the Hub weights, Meta's SAM checkpoint) and, when the
places they come from cannot be reached (``HF_HUB_OFFLINE``, ``--local-files-only``, or no
answer within a few seconds), raises one error naming all of them, before any model work.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from panosamic.hub.loading import HubOfflineError
from panosamic.hub.metadata import WEIGHTS_NAME
from panosamic.model.registry import find_variant
from panosamic.specs import PUBLISHED_REPO

#: Seconds to wait for a TCP connection to a download host.
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class MissingFile:
    """A file a model needs that is not on disk: what it is, where it comes from, how to get it."""

    what: str
    url: str
    hint: str


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE


def missing_downloads(
    checkpoint: Any,
    *,
    subfolder: str | None = None,
    sam_weights: Any = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[MissingFile]:
    """The files a published variant (a registered name, or ``dfki-av/PanoSAMic`` + subfolder) needs
    that are neither in the Hugging Face cache nor on disk; ``[]`` for any other checkpoint."""
    if not isinstance(checkpoint, (str, os.PathLike)) or Path(checkpoint).expanduser().exists():
        return []
    spec = str(checkpoint)
    if subfolder is None:
        variant = find_variant(spec) if "/" not in spec else None
        repo, sub = (variant.repo, variant.subfolder) if variant is not None else (None, None)
    else:
        variant = find_variant(subfolder)
        repo, sub = (spec, subfolder) if spec == PUBLISHED_REPO or variant is not None else (None, None)
    if repo is None:
        return []
    from huggingface_hub import constants, try_to_load_from_cache

    missing = []
    filename = f"{sub}/{WEIGHTS_NAME}" if sub else WEIGHTS_NAME
    if not isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir, revision=revision), str):
        missing.append(MissingFile(
            f"the checkpoint {repo}/{filename}",
            constants.ENDPOINT,
            f"not in the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE}; `hf download {repo} {filename}` "
            "on a machine with network, or pass a local folder laid out like the repo",
        ))  # fmt: skip
    vit = variant.config.vit if variant is not None else None
    if vit is not None and (sam_weights is None or isinstance(sam_weights, (str, os.PathLike))):
        from panosamic.weights.sam import (
            SAM_CHECKPOINTS,
            SamWeightsUnavailableError,
            resolve_sam_weights,
            sam_cache_dir,
        )

        entry = SAM_CHECKPOINTS.get(vit)
        if entry is not None:
            try:
                resolve_sam_weights(sam_weights, vit, download=False)
            except SamWeightsUnavailableError:
                folder = sam_cache_dir() if sam_weights is None else Path(sam_weights).expanduser()
                missing.append(MissingFile(
                    f"Meta's SAM weights {entry.filename} ({vit})",
                    entry.url,
                    f"not in {folder}; download {entry.url} (MD5 {entry.md5}) and place it there or pass "
                    "--sam-weights FILE_OR_FOLDER",
                ))  # fmt: skip
            except (FileNotFoundError, ValueError):
                pass  # a wrong --sam-weights path: the loader names it
    return missing


def host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (a proxy in the
    environment counts as reachable: the download will go through it)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def offline_reason(missing: list[MissingFile], *, local_files_only: bool = False) -> str | None:
    """Why the missing files cannot be downloaded now, or None when their hosts answer."""
    if not missing:
        return None
    if local_files_only:
        return "--local-files-only is set"
    if _env_true("HF_HUB_OFFLINE") or _env_true("PANOSAMIC_OFFLINE"):
        return "HF_HUB_OFFLINE is set"
    for host in dict.fromkeys(urlsplit(m.url).hostname or m.url for m in missing):
        url = next(m.url for m in missing if (urlsplit(m.url).hostname or m.url) == host)
        if not host_reachable(url):
            return f"{host} cannot be reached (no network?)"
    return None


def check_downloads(checkpoint: Any, *, local_files_only: bool = False, **where: Any) -> None:
    """Raise :class:`~panosamic.hub.loading.HubOfflineError` naming every missing file of a
    published variant when they cannot be downloaded now; return when nothing is missing or the
    download hosts answer. ``where``: :func:`missing_downloads`'s keywords (``subfolder``, ...)."""
    missing = missing_downloads(checkpoint, **where)
    reason = offline_reason(missing, local_files_only=local_files_only)
    if reason is None:
        return
    subfolder = where.get("subfolder")
    name = f"{checkpoint}" + (f" --subfolder {subfolder}" if subfolder else "")
    listed = "; ".join(f"{m.what}: {m.hint}" for m in missing)
    raise HubOfflineError(
        f"{name} needs {len(missing)} file{'s' if len(missing) > 1 else ''} that {'are' if len(missing) > 1 else 'is'} "
        f"not on this machine and {reason}: {listed}. Run once with network access (offline use: sam_weights/README.md)"
    )
