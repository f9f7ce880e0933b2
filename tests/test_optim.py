"""Optimiser construction, LR scaling and schedules, silence and exact resume."""

from __future__ import annotations

import copy

import pytest
import torch
from pytorch_optimizer import Ranger21

from panosamic.config import LRSchedulerConfig, TrainingConfig
from panosamic.training.optim import build_optimizer, current_lr, lr_plan, scaled_max_lr


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))


def _step(model, opt, sched, i: int) -> float:
    g = torch.Generator().manual_seed(100 + i)
    x = torch.randn(2, 3, 6, 6, generator=g)
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return float(loss.detach())


def test_lr_scaling_matches_reference_examples() -> None:
    assert scaled_max_lr(5e-4, 1, 1) == pytest.approx(1.25e-4)  # Stanford, 1 GPU x batch 1
    assert scaled_max_lr(1e-3, 1, 1) == pytest.approx(2.5e-4)  # Matterport
    assert scaled_max_lr(1e-3, 2, 4) == pytest.approx(2e-3)
    with pytest.raises(ValueError):
        scaled_max_lr(1e-3, 0, 1)


def test_ranger21_plan_and_schedule(capsys) -> None:
    cfg = TrainingConfig(lr_scheduler=LRSchedulerConfig(max_lr=4e-3, start_lr=1e-5, warm_up_ratio=0.5,
                                                         wind_down_ratio=2.0))
    plan = lr_plan(cfg, iters_per_epoch=10, epochs=4, num_gpus=1, batch_size=1)
    assert (plan.max_lr, plan.warm_up, plan.warm_down, plan.num_iterations) == (1e-3, 5, 20, 40)
    assert plan.warm_down_min_lr == pytest.approx(1e-7)
    model = _model()
    opt, sched = build_optimizer(model.parameters(), cfg, plan)
    assert isinstance(opt, Ranger21) and sched is None
    lrs = []
    for i in range(40):
        _step(model, opt, sched, i)
        lrs.append(current_lr(opt))
    assert lrs[0] == pytest.approx(1e-3 / 5)  # linear warm-up over 5 steps
    assert lrs[4] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3)  # flat
    assert lrs[25] < lrs[21] < 1e-3  # warm-down over the last 20 steps
    assert lrs[-2] == pytest.approx(1e-3 - (1e-3 - 1e-7) * 20 / 21, rel=1e-6)
    assert lrs[-1] == pytest.approx(plan.warm_down_min_lr)  # ends at max_lr x 1e-4
    assert capsys.readouterr().out == ""  # Ranger21 is silent


@pytest.mark.parametrize("name", ["Ranger21", "RAdam"])
def test_resume_is_exact(name: str) -> None:
    cfg = TrainingConfig(optimizer=name, lr_scheduler=LRSchedulerConfig(warm_up_ratio=0.3, wind_down_ratio=1.0))
    plan = lr_plan(cfg, iters_per_epoch=5, epochs=3, num_gpus=1, batch_size=4)
    m1 = _model()
    o1, s1 = build_optimizer(m1.parameters(), cfg, plan)
    for i in range(15):
        _step(m1, o1, s1, i)

    m2 = _model()
    o2, s2 = build_optimizer(m2.parameters(), cfg, plan)
    for i in range(7):  # lookahead (every 5 steps) falls inside the first segment
        _step(m2, o2, s2, i)
    saved = copy.deepcopy({"model": m2.state_dict(), "opt": o2.state_dict(),
                           "sched": None if s2 is None else s2.state_dict()})
    m3 = _model()
    o3, s3 = build_optimizer(m3.parameters(), cfg, plan)
    m3.load_state_dict(saved["model"])
    o3.load_state_dict(saved["opt"])
    if s3 is not None:
        s3.load_state_dict(saved["sched"])
    for i in range(7, 15):
        _step(m3, o3, s3, i)
    for a, b in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(a, b)
    assert current_lr(o1) == current_lr(o3)


def test_radam_lambda_schedule() -> None:
    cfg = TrainingConfig(optimizer="RAdam", lr_scheduler=LRSchedulerConfig(
        start_lr=1e-4, max_lr=4e-3, intermediate_lr=5e-4, warm_up_ratio=1.0, wind_down_ratio=1.0))
    plan = lr_plan(cfg, iters_per_epoch=4, epochs=4, num_gpus=1, batch_size=1)  # max 1e-3
    model = _model()
    opt, sched = build_optimizer(model.parameters(), cfg, plan)
    assert isinstance(opt, torch.optim.RAdam)
    lrs = []
    for i in range(16):
        lrs.append(current_lr(opt))
        _step(model, opt, sched, i)
    assert lrs[0] == pytest.approx(1e-4)  # start_lr
    assert lrs[2] == pytest.approx(1e-4 + (1e-3 - 1e-4) / 2)  # linear warm-up over 4 steps
    assert lrs[4] == pytest.approx(1e-3)  # max after warm-up
    assert lrs[8] == pytest.approx(1e-3 + (5e-4 - 1e-3) * 4 / 8)  # towards intermediate_lr
    assert lrs[12] == pytest.approx(5e-4)  # wind-down start
    assert lrs[15] == pytest.approx(5e-4 / 4)  # linear to 0 at the end
    assert current_lr(opt) == pytest.approx(0.0)


def test_bad_plan() -> None:
    with pytest.raises(ValueError, match="iteration"):
        lr_plan(TrainingConfig(), 0, 1, 1, 1)
    with pytest.raises(ValueError, match="trainable"):
        build_optimizer([torch.nn.Parameter(torch.ones(1), requires_grad=False)], TrainingConfig(),
                        lr_plan(TrainingConfig(), 1, 1, 1, 1))


def test_adamw_warm_up_then_flat() -> None:
    from panosamic.training.optim import build_adamw

    model = _model()
    opt, sched = build_adamw(model.parameters(), lr=1e-2, weight_decay=1e-4, warmup_steps=4)
    lrs = []
    for i in range(6):
        lrs.append(current_lr(opt))
        _step(model, opt, sched, i)
    assert lrs == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2])
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_adamw(frozen.parameters(), lr=1e-2, weight_decay=0.0, warmup_steps=0)
