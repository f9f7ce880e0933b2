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
    "RunLogger",
    "compare_with_reported",
    "format_band_table",
    "format_class_table",
    "format_reported",
    "format_seam",
    "log_path",
    "read_log",
    "versions",
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
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open until close()
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


def format_class_table(metrics: SegmentationMetrics, title: str = "", sphere: SegmentationMetrics | None = None) -> str:
    """Per-class IoU / accuracy / share of pixels, then the means (percent); with ``sphere`` (the
    area-weighted scores of :mod:`panosamic.evaluation.sphere`) two more columns beside the planar ones."""
    names = metrics.class_names or tuple(str(i) for i in range(metrics.num_classes))
    width = max(8, *(len(n) for n in names))
    total = max(metrics.num_pixels, 1)
    share = metrics.confusion.sum(1) / total
    lines = [title] if title else []
    extra = "  sphere IoU %  sphere Acc %" if sphere is not None else ""
    lines.append(f"{'class':<{width}}   IoU %   Acc %  pixels %{extra}")
    for i, n in enumerate(names):
        cols = f"         {_pct(sphere.iou[i])}         {_pct(sphere.acc[i])}" if sphere is not None else ""
        lines.append(f"{n:<{width}}   {_pct(metrics.iou[i])}   {_pct(metrics.acc[i])}   {_pct(share[i])}{cols}")
    if sphere is None:
        lines.append(f"{'mean':<{width}}   {_pct(metrics.miou)}   {_pct(metrics.macc)}   (pixel acc {_pct(metrics.pixel_acc).strip()} %)")
    else:
        lines.append(f"{'mean':<{width}}   {_pct(metrics.miou)}   {_pct(metrics.macc)}   {'':5}"
                     f"         {_pct(sphere.miou)}         {_pct(sphere.macc)}")
        lines.append(f"pixel accuracy {_pct(metrics.pixel_acc).strip()} % (on the sphere {_pct(sphere.pixel_acc).strip()} %)")
    return "\n".join(lines)


def format_band_table(bands: Sequence[Any]) -> str:
    """mIoU / mAcc per latitude band with the band's share of the labelled pixels and of the area."""
    lines = ["latitude (deg)   mIoU %   mAcc %  pixels %    area %"]
    for b in bands:
        m = b.metrics
        lines.append(f"{b.label:<14}   {_pct(m.miou)}    {_pct(m.macc)}     {_pct(b.pixel_share)}     {_pct(b.area_share)}")
    return "\n".join(lines)


def format_seam(seam: Any) -> str:
    """The seam-consistency lines of ``--seam-check``."""
    return (f"seam check (panorama rolled by 180 deg, prediction rolled back): agreement {_pct(seam.agreement).strip()} % "
            f"of all pixels, {_pct(seam.band_agreement).strip()} % within {seam.band_deg:g} deg of the seam; "
            f"rolled run mIoU {_pct(seam.rolled.miou).strip()} %  mAcc {_pct(seam.rolled.macc).strip()} %")


# ---------------------------------------------------------------------------- fold summaries
def write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(_plain(data), indent=2) + "\n")


def _mean_of(values: Sequence[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _sphere_means(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold means of the spherical, per-band and seam scores (those present in every fold entry)."""
    out: dict[str, Any] = {}
    if all("sphere" in f for f in per_fold):
        out["mean_sphere_miou"] = _mean_of([f["sphere"]["miou"] for f in per_fold])
        out["mean_sphere_macc"] = _mean_of([f["sphere"]["macc"] for f in per_fold])
    if all("latitude_bands" in f for f in per_fold) and len({len(f["latitude_bands"]) for f in per_fold}) == 1:
        out["mean_latitude_bands"] = [
            {"band": bands[0]["band"], "lat_max": bands[0]["lat_max"], "lat_min": bands[0]["lat_min"],
             "miou": _mean_of([b["miou"] for b in bands]), "macc": _mean_of([b["macc"] for b in bands]),
             "pixel_share": _mean_of([b["pixel_share"] for b in bands]),
             "area_share": _mean_of([b["area_share"] for b in bands])}
            for bands in zip(*(f["latitude_bands"] for f in per_fold))
        ]  # fmt: skip
    if all("seam" in f for f in per_fold):
        for key, name in (("agreement", "mean_seam_agreement"), ("seam_band_agreement", "mean_seam_band_agreement"),
                          ("rolled_miou", "mean_rolled_miou"), ("rolled_macc", "mean_rolled_macc")):
            out[name] = _mean_of([f["seam"][key] for f in per_fold])
    return out


def summarise_folds(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean (and spread) of per-fold mIoU / mAcc: the papers' convention (mean of per-fold scores);
    the means of the spherical, band and seam scores where the folds have them."""
    mious = [f["miou"] for f in per_fold if f.get("miou") is not None]
    maccs = [f["macc"] for f in per_fold if f.get("macc") is not None]
    return {
        "folds": [f["fold"] for f in per_fold],
        "mean_miou": float(np.mean(mious)) if mious else None,
        "mean_macc": float(np.mean(maccs)) if maccs else None,
        "std_miou": float(np.std(mious)) if mious else None,
        "std_macc": float(np.std(maccs)) if maccs else None,
        "convention": "mean of per-fold mIoU / mAcc (each fold's scores from its own dataset-level confusion matrix)",
        **_sphere_means(per_fold),
        "reported": compare_with_reported(per_fold),
    }


#: Folds whose mean the published Stanford2D3DS numbers are.
REPORTED_FOLDS = (1, 2, 3)


def compare_with_reported(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The published numbers of the evaluated variant beside ours, with the difference (ours - published),
    where they are comparable: a "3-fold mean" only for folds 1, 2 and 3 of one variant, other published
    numbers (one evaluation) for one fold. ``None`` otherwise."""
    entries = [f.get("checkpoint", {}) for f in per_fold]
    reported = [e.get("reported") for e in entries]
    if not per_fold or any(r is None for r in reported):
        return None
    variants = {e.get("variant", "").rsplit("-fold", 1)[0] for e in entries}
    published = reported[0]
    if len(variants) != 1:
        return None
    if published.get("over") == "3-fold mean":
        if sorted(f["fold"] for f in per_fold) != list(REPORTED_FOLDS):
            return None
    elif len(per_fold) != 1:
        return None
    out: dict[str, Any] = {"variant": variants.pop(), "over": published.get("over"), "source": "model card of dfki-av/PanoSAMic"}
    for key in ("miou", "macc"):
        if published.get(key) is None:
            continue
        ours = _mean_of([f.get(key) for f in per_fold])
        out[f"published_{key}"] = published[key]
        out[f"ours_{key}"] = ours
        out[f"delta_{key}"] = None if ours is None else ours - published[key]
    return out


def format_reported(comparison: Mapping[str, Any]) -> str:
    """``published (model card, 3-fold mean) ... ours ... difference ...`` in percent / points."""
    parts = []
    for key, name in (("miou", "mIoU"), ("macc", "mAcc")):
        if f"published_{key}" in comparison:
            delta = comparison[f"delta_{key}"]
            ours = comparison[f"ours_{key}"]
            parts.append(f"{name} ours " + ("n/a" if ours is None else f"{100 * ours:.2f}") + " % vs published "
                         f"{100 * comparison[f'published_{key}']:.2f} % ("
                         + ("n/a" if delta is None else f"{100 * delta:+.2f} points") + ")")
    return f"{comparison['variant']} against the model card ({comparison['over']}): " + "; ".join(parts)
