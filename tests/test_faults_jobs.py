"""Fault cases of the training jobs ``distill`` and ``adapt`` (issue 28): bad flags refused up front.

In the style of ``test_faults.py``: each case is a fresh ``panosamic`` process (the fork server of
:mod:`faults_helpers`), asserting the exit status, one error line naming the flag and its value, no
traceback, no temp file and no output folder. "Up front" is bounded by construction: every refusal
case runs with model loading replaced by an exit that prints ``MODEL LOADED`` (so a check that comes
after a model load fails the case), and the output folder must not exist afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults_helpers import TRACEBACK, assert_error, assert_no_temp

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the CLI fork server needs os.fork (POSIX)"),
]

SIZE = (64, 128)

#: Replaces every way a job loads a model with an exit naming the fault (injected before the command runs).
NO_MODEL = """
import sys
import panosamic.model as _m
import panosamic.student.model as _s

def _loaded(*a, **k):
    print("MODEL LOADED before the flag checks", file=sys.stderr)
    sys.exit(3)

_m.load_model = _m.find_checkpoint = _loaded
_s.PanoStudent.__init__ = _loaded
"""


def distill_argv(teacher: Path, panos: Path, out: Path, *extra: str) -> list:
    return ["distill", "--teacher", teacher, "--panoramas", panos, "--out", out, "--backbone", "mobilenetv3_small_100",
            "--native-size", "64x128", "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--no-progress",
            *extra]


def adapt_argv(model: Path, panos: Path, out: Path, *extra: str) -> list:
    return ["adapt", panos, "--checkpoint", model, "--out", out, "--epochs", "1", "--batch-size", "1",
            "--device", "cpu", "--quiet", *extra]


def refused_up_front(cli, argv: list, command: str, out: Path, *culprits: str) -> str:
    res = cli.run(argv, inject=NO_MODEL)
    assert "MODEL LOADED" not in res.text, f"a model was loaded before the refusal:\n{res.err[-2000:]}"
    line = assert_error(res, command, *culprits)
    assert not out.exists() or out.is_file(), f"{out} was created"
    assert_no_temp(out.parent)
    return line


# ============================================================================ distill
@pytest.mark.parametrize(("flag", "value"), [
    ("--temperature", "nan"), ("--temperature", "0"), ("--cache-stride", "0"), ("--backbone", "not_a_timm_model"),
    ("--native-size", "0x0"), ("--native-size", "100x200"), ("--max-steps", "0"), ("--kd-weight", "inf"),
    ("--max-lr", "-1"),
])  # fmt: skip
def test_distill_bad_flag_refused_up_front(cli, model_dir, panos, tmp_path, flag, value):
    out = tmp_path / "out"
    refused_up_front(cli, distill_argv(model_dir, panos, out, flag, value), "distill", out, flag, value)


def test_distill_without_inputs(cli, model_dir, tmp_path):
    out = tmp_path / "out"
    argv = ["distill", "--teacher", model_dir, "--out", out, "--device", "cpu"]
    refused_up_front(cli, argv, "distill", out, "nothing to distil on", "--panoramas")


def test_distill_out_is_a_file(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder")
    refused_up_front(cli, distill_argv(model_dir, panos, out), "distill", out, "--out", str(out), "is a file")
    assert out.read_text() == "not a folder"


def test_distill_pretrained_backbone_offline(cli, model_dir, panos, tmp_path):
    # the fork server runs with HF_HUB_OFFLINE=1 and the test machine's Hugging Face cache holds no timm weights
    out = tmp_path / "out"
    refused_up_front(cli, distill_argv(model_dir, panos, out, "--pretrained-backbone"), "distill", out,
                     "--pretrained-backbone", "mobilenetv3_small_100", "not in the local Hugging Face cache")


def test_distill_resume_without_a_run(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    refused_up_front(cli, distill_argv(model_dir, panos, out, "--resume", "last"), "distill", out, "no previous run")


def test_a_student_teaches_a_smaller_student(cli, panos, tmp_path):
    from panosamic.hub.student import save_student
    from panosamic.student import PanoStudent, StudentConfig

    teacher = save_student(PanoStudent(StudentConfig(backbone="mobilenetv3_small_100", num_classes=13,
                                                     native_size=SIZE, decoder_channels=16)), tmp_path / "teacher")
    out = tmp_path / "out"
    res = cli.run(distill_argv(teacher, panos, out, "--decoder-channels", "8"))
    assert res.rc == 0 and TRACEBACK not in res.text, res.err[-3000:]
    (run,) = (out / "panoramas").iterdir()
    assert (run / "student" / "config.json").is_file() and (run / "train_log.png").is_file()
    assert "distill 1/1" in res.err and "loss" in res.err  # the engine's progress line, with the loss
    assert_no_temp(out)


# ============================================================================ adapt
@pytest.mark.parametrize("with_source", [False, True])
def test_adapt_source_weight_nan_refused_up_front(cli, model_dir, panos, tmp_path, with_source):
    out = tmp_path / "out"
    source = ["--source-dataset", "stanford2d3ds", "--source-path", str(panos)] if with_source else []
    refused_up_front(cli, adapt_argv(model_dir, panos, out, "--source-weight", "nan", *source), "adapt", out,
                     "--source-weight", "nan")


@pytest.mark.parametrize(("flag", "value"), [("--lr", "nan"), ("--ema-decay", "1.5"), ("--max-steps", "0"),
                                             ("--keep-fraction", "0")])
def test_adapt_bad_flag_refused_up_front(cli, model_dir, panos, tmp_path, flag, value):
    out = tmp_path / "out"
    refused_up_front(cli, adapt_argv(model_dir, panos, out, flag, value), "adapt", out, flag, value)


def test_adapt_out_is_a_file(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder")
    refused_up_front(cli, adapt_argv(model_dir, panos, out), "adapt", out, "--out", str(out), "is a file")
    assert out.read_text() == "not a folder"


def test_adapt_unknown_source_dataset(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    argv = adapt_argv(model_dir, panos, out, "--source-dataset", "bogus", "--source-path", str(panos))
    refused_up_front(cli, argv, "adapt", out, "--source-dataset", "bogus", "stanford2d3ds")


def test_adapt_resume_without_a_run(cli, model_dir, panos, tmp_path):
    out = tmp_path / "out"
    refused_up_front(cli, adapt_argv(model_dir, panos, out, "--resume"), "adapt", out, "nothing to resume")
