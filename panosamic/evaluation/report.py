"""Logging and reporting: the JSONL run log (+ TensorBoard), per-class tables, versions.

The figures live in :mod:`panosamic.evaluation.plots` (matplotlib, imported only when a plot is drawn).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from panosamic.evaluation.metrics import SegmentationMetrics
from panosamic.io import atomic_write_text

__all__ = [
    "RunLogger", "confusion_png", "format_class_table", "iou_bar_png", "log_path", "read_log", "versions",
]  # fmt: skip

LOG_NAME = "train_log.jsonl"


def versions() -> dict[str, str]:
    """Versions of python and the packages that change the numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("panosamic", "torch", "segment-anything", "pytorch-optimizer", "numpy", "huggingface-hub"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    import torch

    out["torch"] = str(torch.__version__)  # with the build tag (+cpu, +cu...)
    return out


class RunLogger:
    """Appends one JSON object per logged event to ``run_dir/train_log.jsonl`` (always) and writes
    the scalars to TensorBoard when ``tensorboard`` is installed. Only rank 0 should create one."""

    def __init__(self, run_dir: str | os.PathLike, truncate_after_step: int | None = None, tensorboard: bool = True):
        self.path = Path(run_dir) / LOG_NAME
        if truncate_after_step is not None and self.path.is_file():
            self._truncate(truncate_after_step)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(run_dir))
            except ImportError:  # tensorboard is optional
                self._tb = None

    def _truncate(self, step: int) -> None:
        """Drop records written after ``step`` (a resumed run logs them again)."""
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            if int(rec.get("step", 0)) <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(x + "\n" for x in keep))

    def log(self, step: int, epoch: int, values: Mapping[str, Any]) -> None:
        rec = {"step": int(step), "epoch": int(epoch), **{k: _plain(v) for k, v in values.items()}}
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def log_path(run_dir_or_jsonl: str | os.PathLike) -> Path:
    """``run_dir/train_log.jsonl``, or the given ``.jsonl`` file (FileNotFoundError when missing)."""
    path = Path(run_dir_or_jsonl)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}: expected a run folder holding {LOG_NAME} or a .jsonl file")
    return path


def read_log(run_dir_or_jsonl: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's log (a run folder or the ``.jsonl`` file); a line cut by a crash is skipped."""
    records = []
    for line in log_path(run_dir_or_jsonl).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _pct(x: float) -> str:
    return "    -" if not np.isfinite(x) else f"{100 * x:5.1f}"


def format_class_table(metrics: SegmentationMetrics, title: str = "") -> str:
    """Per-class IoU / accuracy / share of pixels, then the means (percent)."""
    names = metrics.class_names or tuple(str(i) for i in range(metrics.num_classes))
    width = max(8, *(len(n) for n in names))
    total = max(metrics.num_pixels, 1)
    share = metrics.confusion.sum(1) / total
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}   IoU %   Acc %  pixels %")
    for i, n in enumerate(names):
        lines.append(f"{n:<{width}}   {_pct(metrics.iou[i])}   {_pct(metrics.acc[i])}   {_pct(share[i])}")
    lines.append(f"{'mean':<{width}}   {_pct(metrics.miou)}   {_pct(metrics.macc)}   (pixel acc {_pct(metrics.pixel_acc).strip()} %)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figures (matplotlib, lazily)
def iou_bar_png(path: str | os.PathLike, metrics: SegmentationMetrics, palette: np.ndarray | None = None,
                title: str = "") -> Path:
    """Per-class IoU bars with the mIoU line: :func:`panosamic.evaluation.plots.plot_class_iou`."""
    from panosamic.evaluation.plots import plot_class_iou

    return plot_class_iou(metrics, path, palette=palette, title=title or None)


def confusion_png(path: str | os.PathLike, metrics: SegmentationMetrics, title: str = "") -> Path:
    """Row-normalised confusion matrix: :func:`panosamic.evaluation.plots.plot_confusion`."""
    from panosamic.evaluation.plots import plot_confusion

    return plot_confusion(metrics, path, title=title or None)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(_plain(data), indent=2) + "\n")


def summarise_folds(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean (and spread) of per-fold mIoU / mAcc: the papers' convention (mean of per-fold scores)."""
    mious = [f["miou"] for f in per_fold if f.get("miou") is not None]
    maccs = [f["macc"] for f in per_fold if f.get("macc") is not None]
    return {
        "folds": [f["fold"] for f in per_fold],
        "mean_miou": float(np.mean(mious)) if mious else None,
        "mean_macc": float(np.mean(maccs)) if maccs else None,
        "std_miou": float(np.std(mious)) if mious else None,
        "std_macc": float(np.std(maccs)) if maccs else None,
        "convention": "mean of per-fold mIoU / mAcc (each fold's scores from its own dataset-level confusion matrix)",
    }
