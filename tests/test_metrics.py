"""Metrics against an independent numpy computation (per-class loops, no bincount trick)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from panosamic.evaluation.metrics import ConfusionMatrix, metrics_from_confusion


def _reference_scores(preds: list[np.ndarray], targets: list[np.ndarray], k: int):
    """Per-class intersection / union / target area by boolean masks, summed over samples."""
    inter = np.zeros(k, np.int64)
    area_p = np.zeros(k, np.int64)
    area_t = np.zeros(k, np.int64)
    correct = total = 0
    for p, t in zip(preds, targets):
        keep = t != -1
        p, t = p[keep], t[keep]
        correct += int((p == t).sum())
        total += t.size
        for c in range(k):
            inter[c] += int(((p == c) & (t == c)).sum())
            area_p[c] += int((p == c).sum())
            area_t[c] += int((t == c).sum())
    union = area_p + area_t - inter
    iou = [inter[c] / union[c] for c in range(k) if union[c] > 0]
    acc = [inter[c] / area_t[c] for c in range(k) if area_t[c] > 0]
    return float(np.mean(iou)), float(np.mean(acc)), correct / total, inter, union, area_t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matches_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 7
    absent_label = 5  # never in the ground truth (but predicted): IoU 0 counts, recall undefined
    absent_both = 6  # neither labelled nor predicted: excluded from both means
    cm = ConfusionMatrix(k)
    preds, targets = [], []
    for shape in [(13, 27), (1, 5), (31, 62), (7, 3)]:  # odd sizes
        t = rng.integers(-1, k - 2, size=shape)  # includes -1 (ignore), classes 0..4
        t[rng.random(shape) < 0.2] = -1
        p = rng.integers(0, k - 1, size=shape)  # classes 0..5
        p[p == absent_both] = 0
        # make the prediction partly right so the scores are not trivial
        right = rng.random(shape) < 0.5
        p[right & (t >= 0)] = t[right & (t >= 0)]
        preds.append(p)
        targets.append(t)
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    m = cm.compute()
    miou, macc, pacc, inter, _union, area_t = _reference_scores(preds, targets, k)
    assert m.confusion.dtype == np.int64
    assert m.num_pixels == int(sum((t != -1).sum() for t in targets))
    assert m.miou == pytest.approx(miou, abs=1e-12)
    assert m.macc == pytest.approx(macc, abs=1e-12)
    assert m.pixel_acc == pytest.approx(pacc, abs=1e-12)
    assert np.array_equal(np.diag(m.confusion), inter)
    assert np.isnan(m.iou[absent_both]) and np.isnan(m.acc[absent_both])
    assert m.iou[absent_label] == 0.0 and np.isnan(m.acc[absent_label])
    assert np.array_equal(m.confusion.sum(1), area_t)


def test_batched_logits_and_merge_equal_sequential() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 9, 17, generator=g)
    labels = torch.randint(-1, 4, (3, 9, 17), generator=g)
    a = ConfusionMatrix(4)
    a.update(logits, labels)
    b, c = ConfusionMatrix(4), ConfusionMatrix(4)
    b.update(logits[:1].argmax(1), labels[:1])
    for i in (1, 2):
        c.update(logits[i], labels[i])  # (K, H, W) logits with (H, W) labels
    assert torch.equal(a.matrix, b.merge(c).matrix)
    assert int(a.matrix.sum()) == int((labels != -1).sum())


def test_bad_inputs_are_refused() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="labels must be in"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 3))
    with pytest.raises(ValueError, match="predictions must be in"):
        cm.update(torch.full((2, 2), 5), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        ConfusionMatrix(0)
    assert int(cm.matrix.sum()) == 0  # nothing counted by the refused updates


def test_all_ignored_and_empty_matrix() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.zeros(4, 4, dtype=torch.long), torch.full((4, 4), -1))
    m = cm.compute(("a", "b"))
    assert m.num_pixels == 0 and np.isnan(m.miou) and np.isnan(m.pixel_acc)
    d = m.to_dict()
    assert d["miou"] is None and d["iou_per_class"] == {"a": None, "b": None}


def test_metrics_from_confusion_by_hand() -> None:
    # rows = truth, cols = prediction
    conf = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    m = metrics_from_confusion(conf, ("x", "y", "z"))
    assert m.iou[0] == pytest.approx(3 / (4 + 5 - 3))
    assert m.iou[1] == pytest.approx(4 / (6 + 5 - 4))
    assert np.isnan(m.iou[2])
    assert m.miou == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert m.macc == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m.pixel_acc == pytest.approx(7 / 10)
