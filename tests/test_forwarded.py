"""``Forwarded``: a model's config facts read as its attributes, read-only."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from panosamic.config import PanoSAMicConfig, TrainingConfig
from panosamic.config.forwarded import Forwarded


class _Model:
    num_classes = Forwarded[int]()
    loss = Forwarded[str]("training")

    def __init__(self, config: SimpleNamespace, training: SimpleNamespace) -> None:
        self.config, self.training = config, training


def test_reads_the_field_of_the_same_name_of_its_source():
    m = _Model(SimpleNamespace(num_classes=7), SimpleNamespace(loss="dice"))
    assert (m.num_classes, m.loss) == (7, "dice")
    m.config = SimpleNamespace(num_classes=3)  # follows the source, never a stale copy
    assert m.num_classes == 3
    assert isinstance(_Model.num_classes, Forwarded)


def test_refuses_to_be_set_naming_the_source():
    m = _Model(SimpleNamespace(num_classes=7), SimpleNamespace(loss="dice"))
    with pytest.raises(AttributeError, match=r"num_classes is read from config\.num_classes"):
        m.num_classes = 4
    assert m.num_classes == 7


def test_reference_config_training_keys_are_not_fields():
    training = TrainingConfig(optimizer="RAdam")
    cfg = PanoSAMicConfig(training=training)
    assert "loss" not in {f.name for f in dataclasses.fields(cfg)}
    assert (cfg.loss, cfg.optimizer, cfg.lr_scheduler) == (training.loss, "RAdam", training.lr_scheduler)
