"""The run settings every job shares (LoopSettings) and the ranges declared beside the defaults."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from panosamic.adapt.settings import AdaptSettings
from panosamic.distill.settings import DistillLossConfig, DistillSettings
from panosamic.training.settings import LoopSettings, bounded, check_flags


def _parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_jobs_extend_the_loop_settings_with_their_own_defaults() -> None:
    assert issubclass(AdaptSettings, LoopSettings) and issubclass(DistillSettings, LoopSettings)
    loop = {f.name for f in dataclasses.fields(LoopSettings)}
    assert loop <= {f.name for f in dataclasses.fields(AdaptSettings)}
    a, d = AdaptSettings(), DistillSettings(panoramas=("x",))
    assert (a.epochs, a.batch_size, a.log_every) == (10, 2, 5)
    assert (d.epochs, d.batch_size, d.log_every) == (10, 4, 10)
    assert d.loss_config() == DistillLossConfig()  # the loss's defaults are DistillLossConfig's
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        DistillSettings(panoramas=("x",), seed=-1)


def test_cli_defaults_are_the_settings_defaults() -> None:
    import panosamic.adapt.cli as adapt_cli
    import panosamic.distill.cli as distill_cli

    args = _parse(adapt_cli, ["adapt", "p", "--checkpoint", "c", "--out", "o"])
    assert adapt_cli.settings_from_args(args) == AdaptSettings()
    args = _parse(distill_cli, ["distill", "--teacher", "t", "--panoramas", "p"])
    assert distill_cli.settings_from_args(args) == DistillSettings(teacher="t", panoramas=("p",))


def test_a_bounded_field_is_checked_in_the_settings_and_on_the_command_line() -> None:
    @dataclasses.dataclass(frozen=True)
    class Job(LoopSettings):
        epochs: int = 1
        batch_size: int = 1
        rate: float = bounded(0.5, above=0, maximum=1)

    assert Job.rate == 0.5 and Job().rate == 0.5
    with pytest.raises(ValueError, match=r"^rate 2: expected a finite number > 0 and <= 1$"):
        Job(rate=2)
    check_flags(argparse.Namespace(rate=1.0, epochs=3), Job)
    with pytest.raises(ValueError, match=r"^--rate 0: expected"):
        check_flags(argparse.Namespace(rate=0, epochs=3), Job)
    with pytest.raises(ValueError, match=r"^--epochs 0: expected an integer >= 1$"):
        check_flags(argparse.Namespace(epochs=0), Job)
    job = Job.from_args(argparse.Namespace(rate=0.25, epochs=2, other="ignored"), batch_size=3)
    assert (job.rate, job.epochs, job.batch_size) == (0.25, 2, 3)


def test_a_bounded_setting_is_none_only_where_its_default_is():
    from panosamic.adapt.settings import AdaptSettings
    from panosamic.distill.settings import DistillLossConfig, DistillSettings

    with pytest.raises(ValueError, match=r"^lr None: expected a finite number > 0$"):
        AdaptSettings(lr=None)
    with pytest.raises(ValueError, match=r"^cache_stride None: expected an integer >= 1$"):
        DistillSettings(panoramas=("x",), cache_stride=None)
    with pytest.raises(ValueError, match=r"^kd_weight None: expected a finite number >= 0$"):
        DistillLossConfig(kd_weight=None, ce_weight=1.0)
    assert AdaptSettings().refine_masks is None  # a default of None stays allowed


def test_a_wrong_upload_keyword_is_refused_before_anything_is_saved(monkeypatch):
    from conftest import make_tiny_model

    from panosamic.hub import mixin

    def no_save(*a, **k):
        raise AssertionError("saved before the keywords were checked")

    model = make_tiny_model()
    monkeypatch.setattr(mixin.PanoSAMicHubMixin, "save_pretrained", no_save)
    with pytest.raises(TypeError, match="comit_message"):
        model.push_to_hub("you/repo", comit_message="typo")
