"""A disk cache of teacher outputs, so many student epochs never rerun the teacher.

One compressed ``.npz`` per panorama under ``root/<teacher id>/``, keyed by the digests of the
panorama's input files and the teacher's identity (its weights, architecture and revision): a new
teacher or a changed file is a new key. Logits are stored in float16 at 1/``stride`` of the
input resolution (the teacher's own decoder grid for stride 4), the SAM mask boundaries (when
the teacher made masks) as bits. Each file is written atomically; an unreadable one is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from panosamic.student.padding import circular_resize

__all__ = ["CachedTeacher", "TeacherCache", "file_digest", "teacher_fingerprint"]

CACHE_FORMAT = 1


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b (128 bit) of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def teacher_fingerprint(teacher: torch.nn.Module, revision: str | None = None) -> str:
    """Identity of a teacher: class, config, revision and every tensor of its state dict."""
    h = hashlib.blake2b(digest_size=16)
    config = getattr(teacher, "config", None)
    desc = {"class": type(teacher).__name__, "revision": revision,
            "config": config.to_dict() if hasattr(config, "to_dict") else repr(config),
            "modalities": list(getattr(teacher, "modalities", ())),
            "semantic_only": bool(getattr(teacher, "semantic_only", True))}
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    for name, t in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        # reshape(-1): 0-dim tensors (a student's BatchNorm counters) have no byte view; same bytes otherwise
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class CachedTeacher:
    logits: torch.Tensor  # (K, H, W) float32 at the panorama's resolution
    boundaries: torch.Tensor | None  # (H, W) bool, or None when the teacher made no masks


class TeacherCache:
    """``get(digests, size)`` / ``put(digests, logits, boundaries)`` for one teacher."""

    def __init__(self, root: str | os.PathLike, teacher_id: str, stride: int = 4) -> None:
        if stride < 1:
            raise ValueError(f"cache stride must be >= 1, got {stride}")
        self.teacher_id = teacher_id
        self.stride = int(stride)
        self.dir = Path(root) / teacher_id

    def key(self, digests: Mapping[str, str]) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps({"teacher": self.teacher_id, "stride": self.stride, "files": dict(sorted(digests.items())),
                             "format": CACHE_FORMAT}, sort_keys=True).encode())
        return h.hexdigest()

    def path(self, digests: Mapping[str, str]) -> Path:
        return self.dir / f"{self.key(digests)}.npz"

    def __contains__(self, digests: Mapping[str, str]) -> bool:
        return self.path(digests).is_file()

    def put(self, digests: Mapping[str, str], logits: torch.Tensor, boundaries: torch.Tensor | None = None) -> Path:
        """Store (K, H, W) logits (and (H, W) boundaries) for the panorama with these file digests."""
        from panosamic.io import atomic_path

        h, w = logits.shape[-2:]
        small = F.interpolate(logits.detach().float().cpu()[None], size=(-(-h // self.stride), -(-w // self.stride)),
                              mode="area")[0] if self.stride > 1 else logits.detach().float().cpu()
        arrays = {"logits": small.numpy().astype(np.float16), "size": np.array([h, w], dtype=np.int64),
                  "teacher": np.array(self.teacher_id)}
        if boundaries is not None:
            arrays["boundaries"] = np.packbits(boundaries.cpu().numpy().astype(bool).ravel())
        path = self.path(digests)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    def get(self, digests: Mapping[str, str]) -> CachedTeacher | None:
        """The stored outputs at the panorama's full resolution, or None (missing or unreadable)."""
        path = self.path(digests)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                if str(z["teacher"]) != self.teacher_id:
                    return None
                h, w = (int(v) for v in z["size"])
                small = torch.from_numpy(z["logits"].astype(np.float32))
                bits = z["boundaries"] if "boundaries" in z.files else None
        except (OSError, ValueError, KeyError, EOFError) as e:
            warnings.warn(f"teacher cache file {path} is unreadable ({e}); the teacher runs again", stacklevel=2)
            return None
        logits = circular_resize(small[None], (h, w))[0]
        boundaries = None if bits is None else torch.from_numpy(np.unpackbits(bits)[: h * w].reshape(h, w).astype(bool))
        return CachedTeacher(logits, boundaries)
