"""Losses: hand-computed Jaccard, class weights, the CE <-> Jaccard schedule, the fixed-order sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from panosamic.config import LossConfig, ScheduledLossConfig
from panosamic.training.losses import (
    LossSchedule,
    MultilabelJaccardLoss,
    PanoSAMicLoss,
    class_weights_from_counts,
)


def _hand_jaccard(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Spec §7.2 written out with python loops over classes."""
    b, k, h, w = logits.shape
    losses = []
    for c in range(k):
        inter = pmass = tmass = 0.0
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    lab = int(labels[i, y, x])
                    p = 0.5 if lab == -1 else 1.0 / (1.0 + math.exp(-float(logits[i, c, y, x])))
                    t = 1.0 if lab == c else 0.0
                    inter += p * t
                    pmass += p
                    tmass += t
        iou = inter / max(pmass + tmass - inter, 1e-6)
        losses.append((1.0 - iou) if tmass > 0 else 0.0)
    return sum(losses) / k


def test_jaccard_matches_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(-1, 3, (2, 3, 5), generator=g)  # class 3 absent, some ignored pixels
    labels[0, 0, 0] = -1
    got = MultilabelJaccardLoss()(logits, labels)
    assert float(got) == pytest.approx(_hand_jaccard(logits, labels), abs=1e-9)


def test_jaccard_ignored_pixels_add_half_mass() -> None:
    # quirk kept from the reference: ignored pixels' logits become 0 -> sigmoid 0.5 in the denominator
    logits = torch.full((1, 1, 1, 2), 20.0)
    labels = torch.tensor([[[0, -1]]])
    loss = MultilabelJaccardLoss()(logits, labels)
    p = 1.0 / (1.0 + math.exp(-20.0))
    assert float(loss) == pytest.approx(1.0 - p / (p + 0.5 + 1.0 - p), abs=1e-6)


def test_jaccard_is_differentiable_and_lower_for_better_logits() -> None:
    labels = torch.tensor([[[0, 1], [1, 0]]])
    good = F.one_hot(labels, 2).permute(0, 3, 1, 2).float() * 8 - 4
    bad = -good
    loss = MultilabelJaccardLoss()
    assert float(loss(good, labels)) < 0.05
    assert float(loss(bad, labels)) > 0.9
    x = bad.clone().requires_grad_(True)
    loss(x, labels).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_class_weights_inverse_frequency_and_zero_for_absent() -> None:
    with pytest.warns(UserWarning, match=r"\['c'\]"):
        w = class_weights_from_counts(np.array([10, 30, 0, 60]), ("a", "b", "c", "d"))
    assert torch.allclose(w, torch.tensor([10.0, 100 / 30, 0.0, 100 / 60]))
    with pytest.raises(ValueError, match="no labelled pixel"):
        class_weights_from_counts(np.zeros(3, np.int64))
    with pytest.raises(ValueError):
        class_weights_from_counts(np.array([1, -1]))


def test_schedule_shape() -> None:
    T = 1000
    s = LossSchedule(T, ScheduledLossConfig(0.5, 0.9))
    w1 = np.array([s.weights(t)[0] for t in range(1, T + 1)])
    assert w1[0] == pytest.approx(1.0 - 1 / (0.4 * T), abs=1e-6)  # pure CE at the start
    assert w1[int(0.2 * T) - 1] == pytest.approx(0.5, abs=2e-3)  # linear hand-over
    assert np.all(w1[int(0.41 * T) : int(0.5 * T)] < 1e-5)  # pure Jaccard from ~0.4T to 0.5T
    assert w1[int(0.45 * T) - 1] < 1e-5
    assert w1[int(0.7 * T) - 1] == pytest.approx(1 - math.cos(math.pi / 4), abs=1e-2)  # cosine hand-back
    assert np.all(w1[int(0.9 * T) :] == 1.0)  # CE only after 0.9T
    assert np.all(np.diff(w1[: int(0.45 * T)]) <= 1e-12)  # monotone down, then up
    assert np.all(np.diff(w1[int(0.45 * T) :]) >= -1e-12)


def test_fixed_order_combination_and_schedule_weights() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 6, generator=g)
    labels = torch.randint(-1, 3, (2, 4, 6), generator=g)
    cw = torch.tensor([1.0, 2.0, 0.5])
    ce = F.cross_entropy(logits, labels, weight=cw, ignore_index=-1)
    jac = MultilabelJaccardLoss()(logits, labels)

    plain = PanoSAMicLoss(LossConfig(cross_entropy=2.0, jaccard=3.0), 3, class_weights=cw)
    out = plain(logits, labels, step=1)
    assert float(out.total) == pytest.approx(float(2 * ce + 3 * jac), rel=1e-6)
    assert list(out.terms) == ["cross_entropy", "jaccard"]

    sched_cfg = LossConfig(cross_entropy=1.0, jaccard=1.0, scheduled=ScheduledLossConfig(0.5, 0.9))
    sched = PanoSAMicLoss(sched_cfg, 3, class_weights=cw, total_steps=100)
    w1, w2 = LossSchedule(100, sched_cfg.scheduled).weights(20)
    out = sched(logits, labels, step=20)
    assert 0.0 < w1 < 1.0 and (out.w1, out.w2) == (w1, w2)
    assert float(out.total) == pytest.approx(float(w1 * ce + w2 * jac), rel=1e-6)
    # validation (no step) reuses the last weights
    assert sched(logits, labels).w1 == w1

    jac_only = PanoSAMicLoss(LossConfig(), 3)  # default config: Jaccard x1, no class weights needed
    assert float(jac_only(logits, labels).total) == pytest.approx(float(jac), rel=1e-6)


def test_loss_bad_input() -> None:
    with pytest.raises(ValueError, match="class weights"):
        PanoSAMicLoss(LossConfig(cross_entropy=1.0, jaccard=None), 3)
    with pytest.raises(ValueError, match="total_steps"):
        PanoSAMicLoss(
            LossConfig(cross_entropy=1.0, jaccard=1.0, scheduled=ScheduledLossConfig()), 3, torch.ones(3)
        )
    loss = PanoSAMicLoss(LossConfig(), 3)
    with pytest.raises(ValueError, match="classes"):
        loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
