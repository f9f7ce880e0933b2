"""Figures of evaluations and runs, drawn with matplotlib (Agg canvas, no pyplot, no global state).

* :func:`plot_class_iou`    - per-class IoU bars with the mIoU line;
* :func:`plot_confusion`    - the row-normalised confusion matrix with class names;
* :func:`plot_fold_summary` - per-fold mIoU / mAcc, their mean, optionally a reported number;
* :func:`plot_latitude_bands` - mIoU by latitude band beside each band's share of the pixels and of the sphere;
* :func:`plot_training_log` - loss, learning rate and validation scores of a run's ``train_log.jsonl``.

Every function writes its PNG atomically and returns the path. This is the only module that
imports matplotlib; importing :mod:`panosamic` does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from panosamic.evaluation.report import read_log
from panosamic.io import atomic_path

__all__ = ["plot_class_iou", "plot_confusion", "plot_fold_summary", "plot_latitude_bands", "plot_training_log"]

#: Resolution of every figure (dots per inch).
DPI = 150
#: Confusion matrices with more classes than this show colours only (no numbers in the cells).
MAX_ANNOTATED_CLASSES = 40
_STYLE = {"font.size": 10, "axes.titlesize": 12, "axes.labelsize": 10, "axes.spines.top": False,
          "axes.spines.right": False, "legend.frameon": False}
_MEAN_COLOR = "#c0392b"


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: figures are written as PNG, expected a path ending in .png")
    FigureCanvasAgg(fig)  # the non-interactive Agg canvas, without touching pyplot's backend
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return path


def _names(names: Sequence[str] | None, k: int) -> list[str]:
    if not names:
        return [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"got {len(names)} class names for {k} classes")
    return [str(n) for n in names]


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def plot_class_iou(
    metrics: Any, out_png: str | os.PathLike, *, palette=None, title: str | None = None,
) -> Path:
    """Horizontal per-class IoU bars (values at the bar ends) and a labelled mIoU line.

    ``metrics``: a :class:`~panosamic.evaluation.metrics.SegmentationMetrics` (or anything with
    ``iou``, ``miou`` and ``class_names``). Bars take the class colours of ``palette`` when given.
    """
    iou = np.asarray(metrics.iou, dtype=np.float64)
    names = _names(getattr(metrics, "class_names", None), len(iou))
    if palette is not None:
        colors = np.asarray(palette, dtype=np.float64)[: len(iou)] / 255.0
        if colors.shape != (len(iou), 3):
            raise ValueError(f"palette must have {len(iou)} RGB rows, got shape {np.shape(palette)}")
    else:
        colors = ["#4a78b5"] * len(iou)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(8.0, 1.2 + 0.34 * len(iou)), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(len(iou))
        ax.barh(y, np.nan_to_num(100 * iou), color=colors, edgecolor="#333333", linewidth=0.6, height=0.72)
        for yi, v in zip(y, iou):
            ax.text((100 * v if np.isfinite(v) else 0) + 1, yi, _pct(v), va="center", fontsize=9,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        ax.set_yticks(y, names)
        ax.set_ylim(len(iou) - 0.4, -1.3)  # top to bottom, a free row above the first bar for the mIoU label
        ax.set_xlim(0, 108)
        ax.set_xticks(np.arange(0, 101, 20))
        ax.set_xlabel("IoU (%)")
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        miou = float(metrics.miou)
        if np.isfinite(miou):
            ax.axvline(100 * miou, color=_MEAN_COLOR, linestyle="--", linewidth=1.4, zorder=1)
            right = miou < 0.8
            ax.text(100 * miou + (1 if right else -1), -0.95, f"mIoU {_pct(miou)} %", color=_MEAN_COLOR,
                    ha="left" if right else "right", va="center", fontsize=10, fontweight="bold")
        ax.set_title(title or f"Per-class IoU (mIoU {_pct(miou)} %)", loc="left")
        return _save(fig, out_png)


def plot_confusion(
    confusion, out_png: str | os.PathLike, *, class_names: Sequence[str] | None = None, title: str | None = None,
) -> Path:
    """The confusion matrix normalised per ground-truth row (%), with class names and a colour bar.

    ``confusion``: a ``K x K`` array (rows: ground truth, columns: prediction) or a metrics object
    with ``confusion`` (and ``class_names``). Cells show their % when ``K <= 40``; rows without
    pixels are grey.
    """
    if hasattr(confusion, "confusion"):
        class_names = class_names or getattr(confusion, "class_names", None)
        confusion = confusion.confusion
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] < 1:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {conf.shape}")
    k = conf.shape[0]
    names = _names(class_names, k)
    rows = conf.sum(1, keepdims=True)
    norm = np.where(rows > 0, 100 * conf / np.maximum(rows, 1), np.nan)
    side = float(np.clip(0.42 * k + 2.4, 4.5, 18.0))
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(side + 1.2, side), layout="constrained")
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#d9d9d9")
        im = ax.imshow(norm, cmap=cmap, vmin=0, vmax=100, interpolation="nearest")
        ax.set_xticks(np.arange(k), names, rotation=45 if k <= 20 else 90, ha="right" if k <= 20 else "center",
                      rotation_mode="anchor" if k <= 20 else "default")
        ax.set_yticks(np.arange(k), names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("ground-truth class")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k <= MAX_ANNOTATED_CLASSES:
            size = 9 if k <= 14 else 8 if k <= 25 else 6.5
            for (i, j), v in np.ndenumerate(norm):
                if np.isfinite(v) and v >= 0.5:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=size,
                            color="white" if v > 55 else "#1a1a1a")
        bar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("% of the ground-truth class's pixels")
        ax.set_title(title or "Confusion matrix (rows normalised)", loc="left")
        return _save(fig, out_png)


def _fold_values(per_fold: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if f.get(key) is None else float(f[key]) for f in per_fold], dtype=np.float64)


def _check_reported(reported: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for key, value in (reported or {}).items():
        if key not in ("miou", "macc"):
            raise ValueError(f"reported: unknown key {key!r}; expected 'miou' and/or 'macc'")
        if value is not None:
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"reported[{key!r}] = {value!r}: expected a ratio in 0..1 (e.g. 0.52 for 52 %)")
            out[key] = float(value)
    return out


def _bar_label(ax, x: float, top: float, value: float) -> None:
    ax.text(x, (top if np.isfinite(top) else 0) + 1.2, "n/a" if not np.isfinite(value) else f"{value:.1f}",
            ha="center", va="bottom", fontsize=9)


def plot_fold_summary(
    per_fold: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, *,
    reported: Mapping[str, float] | None = None, reported_label: str = "reported", title: str | None = None,
) -> Path:
    """Grouped bars of each fold's mIoU and mAcc, their mean over several folds (with the std across
    folds as an error bar) and, beside them, a reported number (hatched bars).

    ``per_fold``: dicts with ``fold``, ``miou`` and ``macc`` (ratios 0..1, as ``panosamic evaluate``
    writes them). ``reported={"miou": 0.52, "macc": 0.64}``: e.g. the published scores of a variant.
    """
    if not per_fold:
        raise ValueError("per_fold is empty: expected one dict (fold, miou, macc) per evaluated fold")
    ref = _check_reported(reported)
    n_folds, width = len(per_fold), 0.38
    with_mean = n_folds > 1
    labels = [f"fold {f.get('fold', i + 1)}" for i, f in enumerate(per_fold)]
    labels += (["mean"] if with_mean else []) + ([reported_label] if ref else [])
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(max(4.5, 1.3 * len(labels) + 2.0), 4.4), layout="constrained")
        ax = fig.add_subplot()
        for n, (key, name, color) in enumerate((("miou", "mIoU", "#3b6fb6"), ("macc", "mAcc", "#8fb8e8"))):
            v = 100 * _fold_values(per_fold, key)
            mean = np.nanmean(v) if np.isfinite(v).any() else np.nan
            std = np.nanstd(v) if np.isfinite(v).sum() > 1 else 0.0
            heights = np.append(v, mean) if with_mean else v
            xs = np.arange(len(heights)) + (n - 0.5) * width
            ax.bar(xs, np.nan_to_num(heights), width, color=color, edgecolor="#333333", linewidth=0.6, label=name)
            if with_mean and std > 0:
                ax.errorbar(xs[-1], mean, yerr=std, color="#222222", capsize=4, linewidth=1.2)
            for i, (xi, h) in enumerate(zip(xs, heights)):
                _bar_label(ax, xi, h + (std if i == n_folds else 0), h)
            if key in ref:
                xr = len(heights) + (n - 0.5) * width
                ax.bar(xr, 100 * ref[key], width, color=color, edgecolor="#333333", linewidth=0.6, hatch="//")
                _bar_label(ax, xr, 100 * ref[key], 100 * ref[key])
        if with_mean or ref:
            ax.axvline(n_folds - 0.5, color="#999999", linewidth=0.8)
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_xlim(-0.7, len(labels) - 0.3)
        ax.set_ylim(0, 112)
        ax.set_yticks(np.arange(0, 101, 20))
        ax.set_ylabel("score (%)")
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", ncols=2, fontsize=9)
        default = f"{n_folds}-fold evaluation: mean of the per-fold scores (error bar: std)" if with_mean else labels[0]
        ax.set_title(title or default, loc="left")
        return _save(fig, out_png)


def plot_latitude_bands(
    bands: Sequence[Mapping[str, Any]], out_png: str | os.PathLike, *,
    planar_miou: float | None = None, sphere_miou: float | None = None, title: str | None = None,
) -> Path:
    """mIoU of each latitude band (left, +90 at the top as in the panorama) beside the band's share of the
    labelled pixels and of the labelled solid angle (right), with the planar and spherical mIoU as lines.

    ``bands``: dicts with ``band``, ``lat_max``, ``lat_min``, ``miou``, ``pixel_share`` and ``area_share``
    (ratios 0..1), as ``panosamic evaluate`` writes them (``latitude_bands``).
    """
    if not bands:
        raise ValueError("bands is empty: expected one dict (band, miou, pixel_share, area_share) per latitude band")
    centres = np.array([(float(b["lat_max"]) + float(b["lat_min"])) / 2 for b in bands])
    height = np.array([abs(float(b["lat_max"]) - float(b["lat_min"])) for b in bands])
    miou = 100 * _fold_values(bands, "miou")
    pixel = 100 * _fold_values(bands, "pixel_share")
    area = 100 * _fold_values(bands, "area_share")
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(8.6, 1.6 + 0.42 * len(bands)), layout="constrained")
        left, right = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
        left.barh(centres, np.nan_to_num(miou), height=0.8 * height, color="#3b6fb6", edgecolor="#333333",
                  linewidth=0.6)
        for c, v in zip(centres, miou):
            left.text((v if np.isfinite(v) else 0) + 1, c, "n/a" if not np.isfinite(v) else f"{v:.1f}",
                      va="center", fontsize=9, zorder=5,
                      bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
        for value, name, style in ((planar_miou, "planar", "--"), (sphere_miou, "sphere", ":")):
            if value is not None and np.isfinite(value):
                left.axvline(100 * value, color=_MEAN_COLOR, linestyle=style, linewidth=1.4,
                             label=f"{name} mIoU {_pct(value)} %")
        left.set_xlim(0, 108)
        left.set_xticks(np.arange(0, 101, 20))
        left.set_xlabel("mIoU of the band (%)")
        left.set_ylabel("latitude (deg)")
        left.set_ylim(-90, 90)
        edges = sorted({float(b["lat_max"]) for b in bands} | {float(b["lat_min"]) for b in bands})
        left.set_yticks(edges if len(edges) <= 13 else np.arange(-90, 91, 30))
        left.grid(axis="x", color="#dddddd", linewidth=0.6)
        left.set_axisbelow(True)
        if planar_miou is not None or sphere_miou is not None:
            left.legend(loc="lower right", fontsize=8, framealpha=0.9, frameon=True)
        h = 0.38 * height
        right.barh(centres + h / 2, np.nan_to_num(pixel), height=h, color="#8fb8e8", edgecolor="#333333",
                   linewidth=0.6, label="pixels (plane)")
        right.barh(centres - h / 2, np.nan_to_num(area), height=h, color="#e8b04a", edgecolor="#333333",
                   linewidth=0.6, label="area (sphere)")
        top = np.nanmax(np.concatenate([pixel, area, [1.0]]))
        right.set_xlim(0, top * 1.25)
        right.set_xlabel("share of the labelled pixels / area (%)")
        right.grid(axis="x", color="#dddddd", linewidth=0.6)
        right.set_axisbelow(True)
        right.legend(loc="lower right", fontsize=8, framealpha=0.9, frameon=True)
        fig.suptitle(title or "mIoU by latitude", x=0.01, ha="left", fontsize=12)
        return _save(fig, out_png)


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records holding a finite ``key``; the last record wins per step."""
    by_step: dict[int, float] = {}
    for rec in records:
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            by_step[int(rec.get("step", 0))] = float(v)
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")
    ax.set_yticks([])


def _epoch_ticks(ax, records: Sequence[Mapping[str, Any]]) -> None:
    """A secondary x axis on top naming the epochs at the step where each one ends."""
    ends: dict[int, int] = {}
    for rec in records:
        if "epoch" in rec:
            ends[int(rec["epoch"])] = max(ends.get(int(rec["epoch"]), 0), int(rec.get("step", 0)))
    if 1 < len(ends) <= 40:
        top = ax.secondary_xaxis("top")
        every = max(1, len(ends) // 10)
        epochs = sorted(ends)[::every]
        top.set_xticks([ends[e] for e in epochs], [str(e) for e in epochs])
        top.set_xlabel("epoch (tick at its last logged step)")


def _few_points(series: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Markers for a short series, so that a run of one or two logged steps still shows its points."""
    return {"marker": "o", "markersize": 4} if len(series[0]) < 20 else {}


def plot_training_log(run_dir_or_jsonl: str | os.PathLike, out_png: str | os.PathLike, *,
                      title: str | None = None) -> Path:
    """Training loss (and validation loss), learning rate and validation mIoU / mAcc over steps.

    ``run_dir_or_jsonl``: a run folder holding ``train_log.jsonl`` or the ``.jsonl`` file itself.
    A log without validation entries gets a note in the validation panel instead of curves.
    """
    records = read_log(run_dir_or_jsonl)
    if not records:
        raise ValueError(f"{run_dir_or_jsonl}: the training log has no records (has the run logged a step yet?)")
    loss, val_loss, lr = _series(records, "train/loss"), _series(records, "val/loss"), _series(records, "train/lr")
    val = {key: _series(records, f"val/{key}") for key in ("miou", "macc")}
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(8.0, 8.0), layout="constrained")
        ax_loss, ax_lr, ax_val = fig.subplots(3, 1, sharex=True)
        if len(loss[0]):
            ax_loss.plot(*loss, color="#3b6fb6", linewidth=1.2, label="train loss", **_few_points(loss))
        if len(val_loss[0]):
            ax_loss.plot(*val_loss, "o-", color="#e67e22", markersize=4, linewidth=1.0, label="val loss")
        if len(loss[0]) or len(val_loss[0]):
            ax_loss.legend(loc="best")
        else:
            _no_data(ax_loss, "no loss entries in the log")
        ax_loss.set_ylabel("loss")
        if len(lr[0]):
            ax_lr.plot(*lr, color="#27ae60", linewidth=1.2, **_few_points(lr))
            ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        else:
            _no_data(ax_lr, "no learning-rate entries in the log")
        ax_lr.set_ylabel("learning rate")
        if len(val["miou"][0]) or len(val["macc"][0]):
            for key, color, name in (("miou", _MEAN_COLOR, "val mIoU"), ("macc", "#8e44ad", "val mAcc")):
                steps, v = val[key]
                if len(steps):
                    best = int(np.argmax(v))
                    label = f"{name} (best {100 * v[best]:.1f} % at step {steps[best]})"
                    ax_val.plot(steps, 100 * v, "o-", color=color, markersize=4, linewidth=1.2, label=label)
                    ax_val.plot(steps[best], 100 * v[best], "*", color=color, markersize=12)
            top = max(100 * np.nanmax(np.concatenate([val["miou"][1], val["macc"][1]])), 1.0)
            ax_val.set_ylim(0, min(100.0, 10 * np.ceil(1.25 * top / 10)))  # room above the curves for the legend
            ax_val.legend(loc="upper left")
        else:
            _no_data(ax_val, "no validation entries in the log")
        ax_val.set_ylabel("validation score (%)")
        ax_val.set_xlabel("step")
        for ax in (ax_loss, ax_lr, ax_val):
            ax.grid(color="#e5e5e5", linewidth=0.6)
        _epoch_ticks(ax_loss, records)
        name = Path(run_dir_or_jsonl)
        name = name.parent.name if name.suffix == ".jsonl" else name.name
        ax_loss.set_title(title or f"Training log: {name}", loc="left")
        return _save(fig, out_png)
