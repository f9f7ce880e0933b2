"""The resume log of a scaled prediction run: one JSON line per finished panorama.

Each rank appends to its own ``progress/rank-NNNNN.jsonl`` under the output folder, flushing and
fsyncing every line after the panorama's outputs are on disk, so a ``kill -9`` loses at most the
panoramas in flight. A line records the input key, the fingerprint of its files (size + mtime, or
a content hash), the checkpoint id, the options id, the output files and the class fractions.
A rerun reads every rank's log (the world size may change between runs) and skips a panorama
only when all of these still match and its outputs exist.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

#: Sub-folder of the output folder holding the per-rank logs.
PROGRESS_DIR = "progress"
#: How input files are fingerprinted.
FINGERPRINTS: tuple[str, ...] = ("stat", "hash")
_CHUNK = 1 << 20


def log_path(out_dir: str | os.PathLike, rank: int) -> Path:
    """The log file rank ``rank`` appends to."""
    return Path(out_dir) / PROGRESS_DIR / f"rank-{rank:05d}.jsonl"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprint(files: Mapping[str, Path], mode: str = "stat") -> dict[str, Any]:
    """``{kind: [size, mtime_ns]}`` (``mode="stat"``) or ``{kind: sha256 of the content}`` (``"hash"``) of the files."""
    if mode not in FINGERPRINTS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {mode!r}")
    out: dict[str, Any] = {}
    for kind, path in sorted(files.items()):
        if mode == "hash":
            out[kind] = _sha256_file(path)
        else:
            st = os.stat(path)
            out[kind] = [st.st_size, st.st_mtime_ns]
    return out


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return memoryview(t.numpy()).cast("B")


def checkpoint_id(model: Any) -> str:
    """A stable id of a model: sha256 of its config and of every tensor of its state dict."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        h.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(_tensor_bytes(t))
    return "sha256:" + h.hexdigest()[:32]


def options_id(options: Mapping[str, Any]) -> str:
    """A short hash of the options that change what is written."""
    return hashlib.sha256(json.dumps(dict(options), sort_keys=True, default=str).encode()).hexdigest()[:16]


class ProgressLog:
    """Append-only JSONL log of one rank; every :meth:`append` is flushed and fsynced."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+b")  # noqa: SIM115 -- held open for the run, closed by close()
        self._f.seek(0, os.SEEK_END)
        if self._f.tell() > 0:  # a kill -9 may have left a torn last line: start a fresh one
            self._f.seek(-1, os.SEEK_END)
            if self._f.read(1) != b"\n":
                self._f.write(b"\n")
        self._f.seek(0, os.SEEK_END)

    def append(self, entry: Mapping[str, Any]) -> None:
        self._f.write((json.dumps(dict(entry)) + "\n").encode())
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ProgressLog:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:  # a torn line from a killed run
                continue
            if isinstance(entry, dict) and "key" in entry:
                yield entry


def read_progress(out_dir: str | os.PathLike, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """The latest entry per input key over every rank's log (only ``keys`` when given)."""
    folder = Path(out_dir) / PROGRESS_DIR
    latest: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return latest
    for path in sorted(folder.glob("rank-*.jsonl")):
        for entry in _read_lines(path):
            newer = entry.get("time", 0) >= latest.get(entry["key"], {}).get("time", 0)
            if (keys is None or entry["key"] in keys) and newer:
                latest[entry["key"]] = entry
    return latest


def is_finished(entry: Mapping[str, Any] | None, expected: Mapping[str, Any], out_dir: Path) -> bool:
    """Whether a log entry still holds: the same input ``fingerprint``, ``checkpoint``, ``options``
    and ``files`` as ``expected``, and every one of those files exists under ``out_dir``."""
    if not entry:
        return False
    want = json.loads(json.dumps(dict(expected)))  # tuples -> lists, as read back from JSON
    if any(entry.get(k) != want.get(k) for k in ("fingerprint", "checkpoint", "options", "files")):
        return False
    return all((out_dir / f).is_file() for f in entry["files"].values())
