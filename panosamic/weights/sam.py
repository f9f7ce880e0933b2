"""Meta's SAM checkpoints: registry, lookup, verified download and safe loading.

The frozen SAM image encoder (and, for the instance branch, the prompt encoder and mask
decoder) come from one of Meta's three published ``.pth`` files. This module finds such a file
(given directly, or in a folder), or downloads it into a cache with a progress bar, to a
``.part`` file that is renamed only after its MD5 checksum matches. Files are read with
``torch.load(weights_only=True)``: a checkpoint that needs pickled code is refused.

Command line: ``panosamic download-sam {vit_b,vit_l,vit_h}``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from panosamic.io import read_safetensors, safe_torch_load
from panosamic.progress import Progress
from panosamic.specs import SAM_BASE_URL, SAM_FILES

#: Environment variable naming the root of panosamic's cache (SAM files go to ``<root>/sam``).
CACHE_ENV = "PANOSAMIC_CACHE"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SamCheckpoint:
    """One of Meta's SAM checkpoints: file name, URL and MD5 checksum."""

    vit_model: str
    filename: str
    md5: str
    url: str = ""

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"{SAM_BASE_URL}/{self.filename}")
        if not re.fullmatch(r"[0-9a-f]{32}", self.md5):
            raise ValueError(f"{self.filename}: MD5 must be 32 lowercase hex digits, got {self.md5!r}")


#: The registry: ViT size -> checkpoint. (The test architecture has no Meta checkpoint.)
SAM_CHECKPOINTS: dict[str, SamCheckpoint] = {vit: SamCheckpoint(vit, name, md5) for vit, (name, md5) in SAM_FILES.items()}


class SamWeightsUnavailableError(FileNotFoundError):
    """The SAM checkpoint is not on disk and cannot be downloaded (offline, no network)."""


# ---------------------------------------------------------------------------- registry
def get_sam_checkpoint(vit_model: str) -> SamCheckpoint:
    """The registry entry of a ViT size (ValueError for a size Meta did not publish)."""
    if vit_model not in SAM_CHECKPOINTS:
        raise ValueError(
            f"no Meta SAM checkpoint for vit_model={vit_model!r}; Meta published {sorted(SAM_CHECKPOINTS)}. "
            "For other encoders pass the weights file (or a state dict) yourself."
        )
    return SAM_CHECKPOINTS[vit_model]


def sam_cache_dir() -> Path:
    """``$PANOSAMIC_CACHE/sam``, default ``~/.cache/panosamic/sam`` (``$XDG_CACHE_HOME`` honoured)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "sam"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "panosamic" / "sam"


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("PANOSAMIC_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def md5sum(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sam_checkpoint(path: str | os.PathLike, vit_model: str) -> None:
    """Raise ValueError unless ``path`` has the registry's MD5 for ``vit_model``."""
    entry = get_sam_checkpoint(vit_model)
    got = md5sum(path)
    if got != entry.md5:
        raise ValueError(f"checksum mismatch for {path}: MD5 {got}, expected {entry.md5} ({entry.filename})")


# ---------------------------------------------------------------------------- download
def _place_hint(entry: SamCheckpoint, folder: Path) -> str:
    return (
        f"download {entry.url} (MD5 {entry.md5}) on a machine with network access and place it at "
        f"{folder / entry.filename}, or pass sam_weights_path=<that file or its folder>"
    )


def download_sam_checkpoint(
    vit_model: str,
    folder: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download (or reuse) Meta's checkpoint for ``vit_model`` into ``folder`` (default: the cache).

    The file is streamed to ``<name>.part`` and renamed only after its MD5 matches the
    registry; a mismatch deletes it and raises ValueError. Offline (``HF_HUB_OFFLINE=1``) or
    without network: :class:`SamWeightsUnavailableError` saying which file to place where.
    """
    entry = get_sam_checkpoint(vit_model)
    folder = Path(folder) if folder is not None else sam_cache_dir()
    dest = folder / entry.filename
    if dest.is_file() and not force:
        return dest
    if _offline():
        raise SamWeightsUnavailableError(
            f"SAM weights for {vit_model} are not available offline (HF_HUB_OFFLINE is set): "
            + _place_hint(entry, folder)
        )
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        try:
            response = urllib.request.urlopen(entry.url, timeout=_TIMEOUT_S)  # noqa: S310 (fixed https URL)
        except (urllib.error.URLError, OSError) as e:
            raise SamWeightsUnavailableError(
                f"could not download the SAM weights for {vit_model} from {entry.url} ({e}): "
                + _place_hint(entry, folder)
            ) from e
        with response:
            total = int(response.headers.get("Content-Length") or 0) or None
            h = hashlib.md5(usedforsecurity=False)
            received = 0
            mb = None if total is None else total / 1e6  # a bar on a terminal, else a line every 10 s
            with open(part, "wb") as f, Progress(mb, entry.filename, "MB", silent=not progress) as bar:
                try:
                    while chunk := response.read(_CHUNK):
                        f.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk) / 1e6)
                except (http.client.HTTPException, OSError) as e:
                    raise SamWeightsUnavailableError(
                        f"the download of {entry.url} was interrupted ({e!r}); nothing was kept: "
                        + _place_hint(entry, folder)
                    ) from e
                f.flush()
                os.fsync(f.fileno())
        got = h.hexdigest()
        if total is not None and received != total:
            raise SamWeightsUnavailableError(
                f"the download of {entry.url} stopped after {received} of {total} bytes: " + _place_hint(entry, folder)
            )
        if got != entry.md5:
            raise ValueError(
                f"checksum mismatch for {entry.url}: MD5 {got}, expected {entry.md5}; "
                "the download was deleted, try again"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def resolve_sam_weights(
    sam_weights_path: str | os.PathLike | None,
    vit_model: str,
    *,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Find the SAM ``.pth`` for ``vit_model``.

    * a file: used as it is;
    * a folder: the registry's file name if present, else the first ``*{vit_model}*.pth``
      (sorted); if none, the checkpoint is downloaded into that folder;
    * ``None``: the cache folder (``$PANOSAMIC_CACHE/sam``), searched and filled the same way.
    A path that does not exist is created as a folder unless it names a file (has a suffix).
    """
    p = sam_cache_dir() if sam_weights_path is None else Path(sam_weights_path).expanduser()
    if p.is_file():
        return p
    if not p.exists() and p.suffix:
        raise FileNotFoundError(f"SAM weights file not found: {p}")
    folder = p
    if p.is_dir():  # the given folder or the cache
        exact = SAM_CHECKPOINTS.get(vit_model)
        if exact is not None and (p / exact.filename).is_file():
            return p / exact.filename
        matches = sorted(q for q in p.glob(f"*{vit_model}*.pth") if q.is_file())
        if matches:
            return matches[0]
    if vit_model not in SAM_CHECKPOINTS:
        raise FileNotFoundError(
            f"no SAM weights for {vit_model} in {folder} and Meta published none to download "
            f"(only {sorted(SAM_CHECKPOINTS)}): pass the weights file as sam_weights_path"
        )
    entry = SAM_CHECKPOINTS[vit_model]
    if (folder / entry.filename).is_file():
        return folder / entry.filename
    if not download:
        raise SamWeightsUnavailableError(f"SAM weights for {vit_model} not found: " + _place_hint(entry, folder))
    return download_sam_checkpoint(vit_model, folder, progress=progress)


# ---------------------------------------------------------------------------- loading
def load_sam_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM checkpoint (``.pth`` with ``weights_only=True``, or ``.safetensors``) on CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM weights file not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return _as_state_dict(safe_torch_load(path), path)


def _as_state_dict(obj: Any, where: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{where}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"{where}: not a state dict, {len(bad)} entries are not name -> tensor, e.g. {bad[:3]}")
    return dict(obj)


# ---------------------------------------------------------------------------- script
if __name__ == "__main__":  # pragma: no cover
    from panosamic.cli import main

    sys.exit(main(["download-sam", *sys.argv[1:]]))
