"""Output files of a scaled prediction run, each written atomically.

Per panorama ``NAME`` (relative to the output folder): ``NAME_labels.png`` (class index per pixel),
``NAME_color.png``, ``NAME_overlay.jpg|png`` and ``NAME_probs.npz`` (``probs``: float16
(K, H, W) softmax at the input's size, ``class_names``; ``np.savez_compressed``). Per run:
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

import numpy as np
import torch

from panosamic.inference.manifest import PROGRESS_DIR
from panosamic.inference.result import PredictionResult, _save_image
from panosamic.io import atomic_path
from panosamic.viz import label_image

#: What ``--outputs`` may list.
OUTPUT_KINDS: tuple[str, ...] = ("labels", "color", "overlay", "probs")
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


def output_files(name: str, kinds: Sequence[str], overlay_format: str = "jpg") -> dict[str, str]:
    """Output file of each kind, relative to the output folder."""
    suffix = {"labels": "_labels.png", "color": "_color.png", "overlay": f"_overlay.{overlay_format}",
              "probs": "_probs.npz"}  # fmt: skip
    return {k: f"{name}{suffix[k]}" for k in kinds}


def _save_probs(probs: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, probs=probs.astype(np.float16, copy=False), class_names=np.array(class_names))


def write_outputs(
    out_dir: Path,
    files: Mapping[str, str],
    labels: np.ndarray,
    *,
    class_names: Sequence[str],
    palette: np.ndarray,
    probs: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
    overlay_alpha: float = 0.5,
) -> dict[str, Any]:
    """Write the requested files of one panorama; returns its summary facts (size, class fractions)."""
    result = PredictionResult(
        logits=torch.empty(0), labels=labels, class_names=tuple(class_names), palette=palette,
        image=rgb if rgb is not None else np.zeros((0, 0, 3), np.uint8),
    )  # fmt: skip
    for kind, rel in files.items():
        path = out_dir / rel
        if kind == "labels":
            _save_image(label_image(labels), path)
        elif kind == "color":
            _save_image(result.colorize(), path)
        elif kind == "overlay":
            if rgb is None:
                raise ValueError("the overlay needs the input image (keep_rgb)")
            _save_image(result.overlay(overlay_alpha), path, quality=92)
        elif kind == "probs":
            if probs is None:
                raise ValueError("the probs output needs the probabilities")
            _save_probs(probs, class_names, path)
    return {"size": list(result.size), "class_fractions": result.class_fractions()}


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
