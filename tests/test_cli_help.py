"""``--help`` of every subcommand answers without torch; one flag spelling per concept; help texts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from panosamic.cli import COMMANDS, build_parser, parse_args
from panosamic.flags import HelpFormatter

#: Heavy packages a --help must not import.
HEAVY = ("torch", "pytorch_optimizer", "huggingface_hub", "gradio", "matplotlib", "segment_anything", "timm")
#: Subcommands left out of the per-concept checks (none: every subcommand follows them).
FOREIGN: set[str] = set()

_PROBE = """
import json, sys, time
from panosamic.cli import COMMANDS, main
report = {}
for command in [None, *COMMANDS]:
    start = time.perf_counter()
    try:
        main([command, "--help"] if command else ["--help"])
    except SystemExit:
        pass
    report[command or ""] = {"seconds": time.perf_counter() - start,
                             "heavy": [m for m in HEAVY if m in sys.modules]}
sys.stdout = sys.__stdout__
print("REPORT " + json.dumps(report))
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(build_parser())


def test_no_help_imports_torch():
    code = f"HEAVY = {HEAVY!r}\n" + _PROBE
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert set(report) == {"", *COMMANDS}
    first = next(
        (c for c, r in report.items() if r["heavy"]), None
    )  # modules stay loaded: the first is the culprit
    assert first is None, f"`panosamic {first} --help` imported {report[first]['heavy']}"


def _visible(action: argparse.Action) -> list[str]:
    hidden = getattr(action, "hidden_aliases", ())
    return [s for s in action.option_strings if s not in hidden]


def test_flags_are_hyphenated_everywhere(parsers):
    bad = [
        f"{name} {flag}"
        for name, p in parsers.items()
        for a in p._actions
        for flag in _visible(a)
        if "_" in flag
    ]
    assert not bad, "flags spelled with underscores: " + ", ".join(bad)


#: concept (the flag) -> the destinations other spellings of it would use
CONCEPTS: dict[str, set[str]] = {
    "--config": {"config_path", "config"}, "--vit": {"vit_model", "vit"},
    "--sam-weights": {"sam_weights_path", "sam_weights"}, "--num-classes": {"num_classes"},
    "--device": {"device"}, "--no-progress": {"progress", "quiet", "no_progress"},
    "--checkpoint": {"checkpoint"}, "--subfolder": {"subfolder"}, "--revision": {"revision"},
    "--debug": {"debug"}, "--batch-size": {"batch_size"}, "--workers": {"workers", "workers_per_gpu"},
}  # fmt: skip


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_one_spelling_per_concept(parsers, concept):
    spellings = {f"{name} {'/'.join(_visible(a))}" for name, p in parsers.items() if name not in FOREIGN
                 for a in p._actions if a.option_strings and a.dest in CONCEPTS[concept]}  # fmt: skip
    assert spellings, f"no subcommand takes {concept}"
    assert {s.split()[1] for s in spellings} == {concept}, sorted(spellings)


def test_every_command_takes_debug(parsers):
    assert [name for name, p in parsers.items() if "--debug" not in p._option_string_actions] == []


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - FOREIGN))
def test_every_flag_has_help_and_device_is_auto(parsers, name):
    p = parsers[name]
    assert p.formatter_class is HelpFormatter
    missing = [a.dest for a in p._actions if not a.help]
    assert not missing, f"{name}: flags without help: {missing}"
    if "--device" in p._option_string_actions:
        assert p._option_string_actions["--device"].default == "auto"


def test_help_shows_defaults_and_no_backticks(capsys):
    with pytest.raises(SystemExit):
        parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert (
        "(default: experiments)" in text and "(default: vit_h)" in text and "random seed (default: 0)" in text
    )
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "--config_path" not in text.split("options:")[1]  # aliases are accepted, not listed
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "``" not in capsys.readouterr().out


REFERENCE = ["--dataset_path", "d", "--config_path", "c.json", "--experiments_path", "e", "--sam_weights_path", "s",
             "--vit_model", "vit_b", "--num_classes", "13", "--batch_size", "2", "--workers_per_gpu", "0",
             "--num_gpus", "1", "--dataset", "stanford2d3ds"]  # fmt: skip
HYPHENATED = ["--dataset-path", "d", "--config", "c.json", "--experiments-path", "e", "--sam-weights", "s",
              "--vit", "vit_b", "--num-classes", "13", "--batch-size", "2", "--workers", "0",
              "--num-gpus", "1", "--dataset", "stanford2d3ds"]  # fmt: skip


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_reference_flags_are_aliases(command):
    ref, new = parse_args([command, *REFERENCE]), parse_args([command, *HYPHENATED])
    assert {k: v for k, v in vars(ref).items() if k != "_module"} == {
        k: v for k, v in vars(new).items() if k != "_module"
    }
    assert (ref.config_path, ref.vit_model, ref.batch_size, ref.workers_per_gpu) == ("c.json", "vit_b", 2, 0)


def test_a_flag_of_another_command_gives_this_commands_usage(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["predict", "x.png", "--checkpoint", "c", "--dataset_path", "d"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: panosamic predict")
    assert "panosamic predict: error: unrecognized arguments: --dataset_path d" in err
    assert "--dataset_path is a flag of train, evaluate" in err


@pytest.mark.parametrize("script, command", [("train", "train"), ("evaluate", "evaluate")])
def test_reference_script_paths_take_the_reference_flags(script, command):
    """``python panosamic/evaluation/train.py --dataset_path ...`` reaches the same parser (and its checks)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, f"panosamic/evaluation/{script}.py", *REFERENCE, "--num_classes", "40"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr.strip() == f"panosamic {command}: error: --num-classes 40: stanford2d3ds has 13 classes"
    )


def test_the_package_is_a_light_tab_completable_api():
    code = """
import sys, panosamic
names = dir(panosamic)
print("HEAVY", [m for m in ("torch", "segment_anything", "torchvision") if m in sys.modules])
print("DIR", sorted(set(panosamic.__all__) - set(names)), [n for n in names if n in ("Any", "annotations")])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "DIR [] []" in out, out
    import panosamic

    assert {"load_model", "create_model", "list_models", "predict", "PredictionResult"} <= set(panosamic.__all__)
    assert panosamic.predict is __import__("panosamic.inference", fromlist=["predict"]).predict
