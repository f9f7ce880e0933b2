"""Output files of a scaled prediction run, each written atomically.

Per panorama ``NAME`` (relative to the output folder): the :data:`~panosamic.inference.result.OUTPUT_KINDS`
asked for, written all or none by :meth:`PredictionResult.write` (``NAME_probs.npz``: float16 (K, H, W)
softmax at the input's size, at the model's native size above ``FULL_LOGITS_MAX_PIXELS``). Per run:
``summary.jsonl`` (one line per finished panorama in input order: name, input, size, class
fractions), merged by rank 0 from the ranks' parts.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from panosamic.inference.manifest import PROGRESS_DIR
from panosamic.inference.result import OUTPUT_KINDS, PredictionResult
from panosamic.io import atomic_path

#: The merged per-image summary.
SUMMARY_JSONL = "summary.jsonl"
#: Failed inputs of the last run (absent when none failed).
FAILED_JSONL = "failed.jsonl"


def parse_outputs(outputs: str | Sequence[str]) -> tuple[str, ...]:
    """``"labels,probs"`` or a sequence -> the kinds, in :data:`OUTPUT_KINDS` order."""
    kinds = [k.strip() for k in (outputs.split(",") if isinstance(outputs, str) else outputs) if k.strip()]
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad or not kinds:
        raise ValueError(f"outputs must be a comma-separated subset of {','.join(OUTPUT_KINDS)}, got {outputs!r}")
    return tuple(k for k in OUTPUT_KINDS if k in kinds)


def write_outputs(out_dir: Path, files: Mapping[str, str], result: PredictionResult, *,
                  overlay_alpha: float = 0.5) -> dict[str, Any]:  # fmt: skip
    """Write one panorama's files (all or none); returns its summary facts (size, class fractions)."""
    result.write(out_dir, files, overlay_alpha=overlay_alpha)
    return {"size": list(result.size), "class_fractions": dict(result.class_fractions)}


def summary_part(out_dir: str | os.PathLike, rank: int) -> Path:
    return Path(out_dir) / PROGRESS_DIR / f"summary-rank-{rank:05d}.jsonl"


def write_summary_part(out_dir: str | os.PathLike, rank: int, rows: Sequence[Mapping[str, Any]]) -> Path:
    """This rank's summary rows (each with its global ``pos``, ascending), atomically."""
    text = "".join(json.dumps(dict(r)) + "\n" for r in rows)
    path = summary_part(out_dir, rank)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def merge_summaries(out_dir: str | os.PathLike, world_size: int) -> Path:
    """Merge the parts of ranks ``0..world_size-1`` into ``summary.jsonl`` in input order (streaming)."""
    out = Path(out_dir)
    parts = [summary_part(out, r) for r in range(world_size)]
    merged = heapq.merge(*(_rows(p) for p in parts), key=lambda r: r["pos"])
    with atomic_path(out / SUMMARY_JSONL) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in merged:
            row.pop("pos", None)
            f.write(json.dumps(row) + "\n")
    for p in parts:
        p.unlink(missing_ok=True)
    return out / SUMMARY_JSONL


def write_failed(out_dir: str | os.PathLike, failed: Sequence[Mapping[str, Any]]) -> Path | None:
    """``failed.jsonl`` listing the inputs that could not be predicted (removed when none failed)."""
    path = Path(out_dir) / FAILED_JSONL
    if not failed:
        path.unlink(missing_ok=True)
        return None
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in failed), encoding="utf-8")
    return path
