"""The training engine on a toy job: exact mid-epoch resume, logs and curves, checkpoints, collapse warning,
and the progress line printed once. A new job plugs in the way :class:`ToyTask` does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from panosamic.training.checkpoint import load_checkpoint
from panosamic.training.engine import Engine, LoopSettings, StepOutput, Task, Validation, collapse_message
from panosamic.training.optim import build_adamw


class Points(Dataset):
    """8 fixed points of 2 classes (no augmentation: ``set_epoch`` only records the epoch)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class ToyTask(Task):
    """A linear classifier with dropout (so the RNG state matters for exact resume)."""

    validates = True
    class_names = ("left", "right")

    def __init__(self, bias_to: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(4, 2))
        if bias_to is not None:  # a collapsed model: one class wins everywhere
            with torch.no_grad():
                self.model[1].weight.zero_()
                self.model[1].bias.copy_(torch.tensor([0.0, 0.0]).index_fill_(0, torch.tensor(bias_to), 100.0))
        self.train_set = Points()
        self.optimizer, self.scheduler = build_adamw(self.model.parameters(), 0.1, 0.0, 2)
        self.finished = False

    def step(self, engine, batch, epoch, step_in_epoch):
        x, y = batch
        logits = self.model(x)
        return StepOutput(torch.nn.functional.cross_entropy(logits, y), {"acc": float((logits.argmax(1) == y).float().mean())},
                          predicted=torch.bincount(logits.argmax(1), minlength=2))

    def validate(self, engine, epoch):
        with torch.no_grad():
            pred = self.model.eval()(self.train_set.x).argmax(1)
        self.model.train()
        acc = float((pred == self.train_set.y).float().mean())
        return Validation(acc, {"miou": acc}, {"val/miou": acc}, predicted=torch.bincount(pred, minlength=2).numpy())

    def payload(self):
        return {"model": self.model.state_dict()}

    def load_payload(self, ck):
        self.model.load_state_dict(ck["model"])

    def finish(self, engine):
        self.finished = True


def _loop(**changes) -> LoopSettings:
    return LoopSettings(**{"epochs": 3, "batch_size": 2, "log_every": 1, "keep_last": True, "progress": False,
                           **changes})


def _losses(run: Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in lines if "train/loss" in r}


def test_resume_mid_epoch_repeats_the_uninterrupted_run(tmp_path: Path, capsys) -> None:
    full = ToyTask()
    result = Engine(full, _loop(), run_dir=tmp_path / "a").fit()
    assert result.finished and result.global_step == 12 and full.finished
    assert (tmp_path / "a" / "train_log.png").is_file() and (tmp_path / "a" / "model_best.pth").is_file()

    part = ToyTask()
    stopped = Engine(part, _loop(max_steps=6), run_dir=tmp_path / "b").fit()
    assert not stopped.finished and not part.finished
    last = load_checkpoint(tmp_path / "b" / "model_last.pth")
    assert (last["epoch"], last["epoch_complete"], last["step_in_epoch"], last["global_step"]) == (2, False, 2, 6)
    assert "stopped at step 6 (--max-steps)" in capsys.readouterr().out

    again = ToyTask()
    engine = Engine(again, _loop(), run_dir=tmp_path / "b")
    engine.resume(last)
    assert (engine.start_epoch, engine.skip_batches) == (1, 2)
    resumed = engine.fit()
    assert resumed.finished and resumed.global_step == 12
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    la, lb = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert sorted(la) == sorted(lb) == list(range(1, 13))
    assert [la[s] for s in la] == [lb[s] for s in la]
    assert resumed.best_score == result.best_score and resumed.best_epoch == result.best_epoch


def test_a_batch_larger_than_the_set_is_refused_before_any_model() -> None:
    with pytest.raises(ValueError, match="8 samples make no complete batch of 16 x 1 process: lower --batch-size"):
        Engine(ToyTask(), _loop(batch_size=16))
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        _loop(max_steps=0)


def test_a_collapsed_model_is_reported(tmp_path: Path, capsys) -> None:
    Engine(ToyTask(bias_to=1), _loop(epochs=1, max_steps=None), run_dir=tmp_path).fit()
    out = capsys.readouterr().out
    assert "warning: the model predicts 'right' for 100.0 % of the validation pixels of epoch 1" in out
    assert collapse_message([96, 4], None, "x") is not None and collapse_message([95, 5], None, "x") is None
    assert collapse_message([0, 0], ("a", "b"), "x") is None


def test_progress_prints_its_last_line_once() -> None:
    from panosamic.progress import Progress, count

    out = io.StringIO()
    with Progress(2, "epoch 1/1", "step", bar=False, every_s=0.0, file=out) as p:
        p.update(1)
        p.update(1)  # this line shows 2/2: closing must not repeat it
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["epoch 1/1: 1/2 step", "epoch 1/1: 2/2 step"]
    assert (count(1, "epoch"), count(2, "epoch"), count(1, "process", "processes")) == ("1 epoch", "2 epochs",
                                                                                           "1 process")
