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


# ---------------------------------------------------------------------------- errors
class _Fails:
    """A stand-in subcommand module whose run raises ``exc``."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def run(self, args):
        raise self.exc


def _args(debug: bool = False):
    import argparse

    return argparse.Namespace(command="predict", debug=debug)


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(28, "No space left on device", "/data/out.png"), "disk full while writing /data/out.png"),
        (MemoryError(), "out of memory"),
        (KeyError("oops"), "KeyError: 'oops'"),
        (ValueError("pass config=ModelConfig(...) (command line: --config FILE --vit VIT --modalities M "
                    "--num-classes K)"), "give --config FILE --vit VIT --modalities M --num-classes K"),
        (FileNotFoundError("no SAM weights: pass the weights file as sam_weights_path"), "with --sam-weights"),
    ],
)  # fmt: skip
def test_any_error_is_one_line_naming_flags(capsys, exc, expected):
    from panosamic.cli import run_command

    assert run_command(_Fails(exc), _args()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("panosamic predict: error: ") and expected in err
    assert "Traceback" not in err and "sam_weights_path" not in err and "ModelConfig" not in err


def test_debug_reraises_and_interrupt_is_130(capsys):
    from panosamic.cli import run_command

    with pytest.raises(KeyError):
        run_command(_Fails(KeyError("x")), _args(debug=True))
    assert run_command(_Fails(KeyboardInterrupt()), _args()) == 130
    assert "panosamic predict: interrupted" in capsys.readouterr().err


# ---------------------------------------------------------------------------- checks before work
def test_predict_checks_out_before_loading_the_model(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # the checkpoint does not exist either: the --out problem must be found first (no model is built)
    code = main(["predict", str(tmp_path), "--checkpoint", str(tmp_path / "missing"), "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 1 and "--out" in err and "is a file, expected a folder" in err and "missing" not in err


@pytest.mark.parametrize("flag", ["--output", "--plots", "--save-dir"])
def test_evaluate_checks_outputs_before_work(tmp_path, capsys, flag):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = str(tmp_path) if flag == "--output" else str(blocker / "sub")  # a folder where a file goes, or v.v.
    code = main(["evaluate", "--dataset-path", str(tmp_path / "no-data"), "--dataset", "stanford2d3ds",
                 "--checkpoint", "x", flag, target])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and flag in err and "no-data" not in err


def test_train_checks_experiments_folder_and_num_classes(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["train", "--dataset-path", str(tmp_path), "--dataset", "stanford2d3ds", "--config", "c.json"]
    assert main([*base, "--experiments-path", str(blocker / "exp")]) == 1
    assert "--experiments-path" in capsys.readouterr().err
    assert main([*base, "--num-classes", "40"]) == 1
    assert "--num-classes 40: stanford2d3ds has 13 classes" in capsys.readouterr().err


def test_export_and_prepare_check_their_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", str(tmp_path / "run"), str(blocker / "hub")]) == 1
    assert "OUT" in capsys.readouterr().err
    assert main(["prepare", "stanford2d3ds", "--raw", str(tmp_path), "--out", str(blocker / "p")]) == 1
    assert "--out" in capsys.readouterr().err


# ---------------------------------------------------------------------------- progress
def test_progress_without_a_terminal_prints_periodic_lines():
    import io

    from panosamic.progress import Progress

    out = io.StringIO()  # not a terminal: no bar, plain lines
    with Progress(3, "predict", "pano", every_s=0.0, file=out) as p:
        p.update(1)
        p.write("skipped a.png: broken")
        p.set_postfix(loss="0.5")
        p.update(2)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("predict: 1/3 pano") and "left" in lines[0]
    assert lines.count("skipped a.png: broken") == 1
    assert lines[-1].startswith("predict: 3/3 pano") and lines[-1].endswith("loss 0.5")
    silent = io.StringIO()
    with Progress(3, "x", bar=False, silent=True, every_s=0.0, file=silent) as p:
        p.update(3)
        p.write("hidden")
    assert silent.getvalue() == ""


def test_plot_log_draws_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"step": s, "epoch": 1, "train/loss": 2.0 / s, "train/lr": 1e-3} for s in range(1, 6)]
    records.append({"step": 5, "epoch": 1, "val/miou": 0.1, "val/macc": 0.2, "val/loss": 1.0})
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["plot-log", str(run)]) == 0
    assert (run / "train_log.png").stat().st_size > 1000
    assert main(["plot-log", str(tmp_path / "none")]) == 1
    assert "RUN" in capsys.readouterr().err


def test_a_closed_pipe_is_not_an_error():
    """`panosamic info | head -1`: the reader goes away; no error line, no traceback."""
    import subprocess
    import sys

    done = subprocess.run(f"{sys.executable} -m panosamic.cli info | head -c 10", shell=True, capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.startswith("panosamic") and done.stderr == ""
