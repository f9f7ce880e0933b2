"""The ``panosamic`` program: every subcommand is registered and ``info`` reports real figures."""

from __future__ import annotations

import json

import pytest

from panosamic.cli import COMMANDS, build_parser, main


def test_every_subcommand_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


def test_info_reports_parameter_counts(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["models"]["stanford2d3ds-vith-rgbdn-fold1"]["trainable"] == 367_808_522
    assert info["models"]["stanford2d3ds-vitb-rgbdn-fold1"]["encoder"] == 89_670_912
    assert set(info["sam_weights"]) == {"vit_b", "vit_l", "vit_h"}


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_an_argparse_error():
    with pytest.raises(SystemExit):
        main(["frobnicate"])
