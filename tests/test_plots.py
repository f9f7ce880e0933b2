"""Figures of evaluations and runs (panosamic.evaluation.plots): written, valid PNGs, the right content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panosamic.data.registry import get_dataset_info
from panosamic.evaluation import plots, report
from panosamic.evaluation.metrics import metrics_from_confusion

INFO = get_dataset_info("stanford2d3ds")
MEAN_RGB = (0xC0, 0x39, 0x2B)  # plots._MEAN_COLOR: the mIoU line / validation mIoU curve


def _metrics(k: int = 13, seed: int = 0):
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, 30, (k, k)) * (rng.random((k, k)) < 0.3) + np.diag(rng.integers(200, 900, k))
    return metrics_from_confusion(conf, INFO.class_names if k == 13 else ())


def _png(path: Path, min_side: int = 400, max_side: int = 4000) -> np.ndarray:
    """Open ``path`` as a PNG of sensible size (and not blank); return its RGB pixels."""
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    img = Image.open(path).convert("RGB")
    assert min_side <= min(img.size) and max(img.size) <= max_side, img.size
    arr = np.asarray(img)
    assert arr.std() > 10  # something is drawn
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temp file left (atomic write)
    return arr


def _count(arr: np.ndarray, rgb) -> int:
    return int((arr == np.asarray(rgb, np.uint8)).all(-1).sum())


def test_class_iou_bars_are_written_in_the_class_colours(tmp_path):
    m = _metrics()
    arr = _png(plots.plot_class_iou(m, tmp_path / "iou.png", palette=INFO.palette))
    for i, color in enumerate(INFO.palette):
        if m.iou[i] > 0.05:  # a visible bar: hundreds of pixels exactly in its class colour
            assert _count(arr, color) > 300, INFO.class_names[i]
    assert _count(arr, MEAN_RGB) > 100  # the mIoU line
    plain = _png(plots.plot_class_iou(m, tmp_path / "plain.png"))
    assert _count(plain, INFO.palette[11]) == 0  # without a palette no class colour appears
    with pytest.raises(ValueError, match="palette"):
        plots.plot_class_iou(m, tmp_path / "bad.png", palette=INFO.palette[:5])
    with pytest.raises(ValueError, match="PNG"):
        plots.plot_class_iou(m, tmp_path / "iou.jpg")


def test_class_iou_handles_absent_classes(tmp_path):
    conf = np.diag(np.arange(5) * 10)  # class 0 has no pixels at all: IoU nan ("n/a")
    m = metrics_from_confusion(conf)
    assert np.isnan(m.iou[0])
    _png(plots.plot_class_iou(m, tmp_path / "iou.png"), min_side=300)


def test_confusion_matrix_from_metrics_or_array(tmp_path):
    m = _metrics()
    a = _png(plots.plot_confusion(m, tmp_path / "from_metrics.png"))
    b = _png(plots.plot_confusion(m.confusion, tmp_path / "from_array.png", class_names=INFO.class_names))
    assert a.shape == b.shape
    empty_row = m.confusion.copy()
    empty_row[3] = 0
    _png(plots.plot_confusion(empty_row, tmp_path / "empty_row.png"))
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion(np.zeros((3, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion(np.eye(3), tmp_path / "x.png", class_names=("a", "b"))


@pytest.mark.slow
def test_confusion_matrix_of_many_classes(tmp_path):
    big = _metrics(k=plots.MAX_ANNOTATED_CLASSES + 1)  # colours only, no numbers in the cells
    _png(plots.plot_confusion(big, tmp_path / "big.png"), max_side=6000)


def test_fold_summary_with_and_without_a_reported_number(tmp_path):
    folds = [{"fold": f, "miou": v, "macc": v + 0.1} for f, v in ((1, 0.48), (2, 0.43), (3, 0.51))]
    with_ref = _png(plots.plot_fold_summary(folds, tmp_path / "ref.png", reported={"miou": 0.52}))
    without = _png(plots.plot_fold_summary(folds, tmp_path / "plain.png"))
    assert with_ref.shape[1] > without.shape[1]  # one more group of bars
    _png(plots.plot_fold_summary(folds[:1] + [{"fold": 2, "miou": None, "macc": None}], tmp_path / "partial.png"))
    with pytest.raises(ValueError, match="ratio"):
        plots.plot_fold_summary(folds, tmp_path / "x.png", reported={"miou": 52.0})
    with pytest.raises(ValueError, match="unknown key"):
        plots.plot_fold_summary(folds, tmp_path / "x.png", reported={"pixel_acc": 0.8})
    with pytest.raises(ValueError, match="empty"):
        plots.plot_fold_summary([], tmp_path / "x.png")


def _write_log(run: Path, steps: int, with_val: bool, cut_last_line: bool = False) -> Path:
    """A train_log.jsonl with the trainer's keys (train/loss, train/lr, val/miou, val/macc, val/loss)."""
    run.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(1, steps + 1):
        epoch = (step - 1) // 10 + 1
        lines.append({"step": step, "epoch": epoch, "train/loss": 2.0 / step ** 0.3, "train/lr": 1e-4 * (1 - step / 40)})
        if with_val and step % 10 == 0:
            lines.append({"step": step, "epoch": epoch, "val/miou": 0.1 * epoch, "val/macc": 0.1 * epoch + 0.05,
                          "val/loss": 1.5 / epoch, "val/pixel_acc": None})
    text = "".join(json.dumps(x) + "\n" for x in lines)
    path = run / report.LOG_NAME
    path.write_text(text + ('{"step": 99, "tra' if cut_last_line else ""))
    return path


def test_training_log_with_and_without_validation(tmp_path):
    log = _write_log(tmp_path / "run_a", 30, with_val=True, cut_last_line=True)
    with_val = _png(plots.plot_training_log(log.parent, tmp_path / "a.png"))  # a run folder
    no_val = _png(plots.plot_training_log(_write_log(tmp_path / "run_b", 8, with_val=False), tmp_path / "b.png"))
    assert _count(with_val, MEAN_RGB) > 50  # the validation mIoU curve is drawn ...
    assert _count(no_val, MEAN_RGB) == 0  # ... and absent when the log has no validation entries
    with pytest.raises(FileNotFoundError, match=r"train_log.jsonl"):
        plots.plot_training_log(tmp_path / "missing", tmp_path / "c.png")
    (tmp_path / "run_c").mkdir()
    (tmp_path / "run_c" / report.LOG_NAME).write_text("")
    with pytest.raises(ValueError, match="no records"):
        plots.plot_training_log(tmp_path / "run_c", tmp_path / "c.png")


def test_evaluate_s_figures_draw_with_matplotlib(tmp_path):  # as ``panosamic evaluate --plots`` calls them
    m = _metrics()
    _png(plots.plot_class_iou(m, tmp_path / "iou.png", palette=INFO.palette, title="fold 1"))
    _png(plots.plot_confusion(m, tmp_path / "conf.png"))


@pytest.mark.slow
def test_importing_panosamic_does_not_load_matplotlib():
    code = ("import sys, panosamic, panosamic.viz, panosamic.evaluation.report; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=300).returncode == 0
