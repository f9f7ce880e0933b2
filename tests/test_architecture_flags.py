"""``--config --vit --modalities --num-classes``: all or none (one builder: model.checkpoints.reference_model_config)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from panosamic.flags import flag_names
from panosamic.inference.cli import config_from_args

CONFIG = str(Path(__file__).resolve().parents[1] / "config" / "config_stanford2d3ds_dv.json")


def _args(**given):
    return argparse.Namespace(**{"config_path": None, "vit_model": None, "modalities": None, "num_classes": None,
                                 **given})  # fmt: skip


def test_none_given_is_none_and_all_given_is_the_architecture():
    assert config_from_args(_args()) is None
    cfg = config_from_args(_args(config_path=CONFIG, vit_model="vit_tiny", modalities="rgbd", num_classes=7))
    assert (cfg.vit, cfg.modalities, cfg.num_classes) == ("vit_tiny", ("image", "depth"), 7)


def test_some_given_names_the_missing_flags():
    with pytest.raises(ValueError) as e:
        config_from_args(_args(config_path=CONFIG, modalities="rgbd"))
    assert flag_names(str(e.value)) == (
        "give all of --config, --vit, --modalities, --num-classes (missing --vit, --num-classes)"
    )
