"""Fault cases of issue 28's miscellaneous rows: plot-log, info and demo flags refused in ``check()``.

Each case runs ``python -m panosamic.cli`` in a fresh interpreter (:func:`faults_helpers.run_fresh`; the
commands fail in their checks, before any model or Gradio is imported, so no fork server is needed)
and asserts the exit status, one ``panosamic COMMAND: error:`` line naming the culprit, no traceback
and nothing written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults_helpers import assert_error, files_under, run_fresh

pytestmark = pytest.mark.faults


@pytest.mark.parametrize(("content", "give_folder"), [(os.urandom(2048), True), (b"\x00" * 512, False),
                                                     (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), False)],
                         ids=["random-bytes-run-folder", "zeros-file", "png-file"])
def test_plot_log_of_a_binary_log_names_the_file_as_unreadable(tmp_path, content, give_folder):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_bytes(content)
    res = run_fresh(["plot-log", run if give_folder else run / "train_log.jsonl"])
    line = assert_error(res, "plot-log", str(run / "train_log.jsonl"), "unreadable")
    assert "no records" not in line and "codec" not in line
    assert files_under(run) == ["train_log.jsonl"]  # no figure written


def test_plot_log_of_a_text_log_without_records_still_says_so(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("not json\n")
    res = run_fresh(["plot-log", log])
    assert_error(res, "plot-log", "no records")


def test_info_sam_dir_a_regular_file_is_named_as_a_file(tmp_path):
    file = tmp_path / "sam_vit_b_01ec64.pth"
    file.write_bytes(b"x")
    res = run_fresh(["info", "--sam-dir", file])
    line = assert_error(res, "info", "--sam-dir", str(file), "is a file, not a folder")
    assert "not found" not in line
    assert not res.out  # no report printed


def test_demo_unresolvable_host_is_named_before_anything_starts(tmp_path):
    res = run_fresh(["demo", "--checkpoint", tmp_path / "absent", "--host", "no such host!", "--port", "7994"],
                    cwd=tmp_path)
    line = assert_error(res, "demo", "--host", "no such host!")
    assert "port" not in line.lower().replace("--host", "")  # the port is not blamed
    assert "Errno" not in res.err and "Cannot find empty port" not in res.err
    assert files_under(Path(tmp_path)) == []
