"""Checks before work: output locations (writable, a folder, free space) and finite weights."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from tmpfs import remount_readonly, tmpfs

from panosamic.io import is_temp_file
from panosamic.preflight import OutputLocationError, check_output_dir, check_output_file


def _raises(fn, *parts):
    with pytest.raises(OutputLocationError) as info:
        fn()
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    for part in parts:
        assert str(part) in msg, (part, msg)
    return msg


def test_dir_created_or_left_alone(tmp_path):
    out = tmp_path / "a" / "b"
    assert check_output_dir(out, create=False) == out and not (tmp_path / "a").exists()
    assert check_output_dir(out) == out and out.is_dir()
    assert check_output_dir(out) == out
    assert os.listdir(out) == []  # the probe file is gone


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_dir("runs") == tmp_path / "runs"


def test_dir_that_is_a_file(tmp_path):
    f = tmp_path / "predictions"
    f.write_text("x")
    _raises(lambda: check_output_dir(f), "--out", f"{f} is a file, expected a folder")
    msg = _raises(lambda: check_output_dir(f / "sub", what="--save-dir"), "--save-dir", f / "sub")
    assert f"{f} is a file, expected a folder (in {f / 'sub'})" in msg
    assert not (f / "sub").exists() and f.read_text() == "x"


def test_output_file_locations(tmp_path):
    assert check_output_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    assert not (tmp_path / "new").exists()  # nothing is created for a file
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json") == tmp_path / "old.json"
    _raises(lambda: check_output_file(tmp_path), "--output", tmp_path, "is a folder, expected a file name")
    _raises(
        lambda: check_output_file(tmp_path / "old.json" / "r.json", what="--plots"),
        "--plots",
        f"{tmp_path / 'old.json'} is a file, expected a folder",
    )


def test_not_enough_free_space(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_output_dir(tmp_path, need_bytes=1)
    _raises(
        lambda: check_output_dir(tmp_path, need_bytes=free * 10), "--out", "not enough free space", "needed"
    )
    _raises(
        lambda: check_output_file(tmp_path / "x.json", need_bytes=free * 10), "--output", "not enough free"
    )


def test_full_tmpfs(tmp_path):
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        check_output_dir(disk / "out", need_bytes=500_000)
        (disk / "fill").write_bytes(bytes(1 << 20)[: shutil.disk_usage(disk).free])
        assert shutil.disk_usage(disk).free == 0
        _raises(
            lambda: check_output_dir(disk / "out", need_bytes=1), "--out", "not enough free space (0 kB free"
        )
        assert sorted(os.listdir(disk)) == ["fill", "out"]


def test_read_only_tmpfs(tmp_path):
    with tmpfs(tmp_path / "ro", size="1m") as disk:
        (disk / "runs").mkdir()
        remount_readonly(disk)
        for fn in (
            lambda: check_output_dir(disk / "runs"),
            lambda: check_output_dir(disk / "new" / "x"),
            lambda: check_output_file(disk / "runs" / "r.json"),
        ):
            _raises(fn, "is on a read-only filesystem")
        _raises(lambda: check_output_dir(disk / "runs", what="--save-dir"), f"--save-dir {disk / 'runs'}: ")


def _as_nobody(fn) -> str:
    """Run ``fn`` in a child process with uid/gid 65534; return 'ok' or its error message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            fn()
            msg = "ok"
        except BaseException as e:  # noqa: BLE001
            msg = f"{type(e).__name__}: {e}"
        os.write(write, msg.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        msg = f.read()
    os.waitpid(pid, 0)
    return msg


def test_permission_denied():
    """chmod 0555 stops writes for a normal user; as root (where it does not), check as uid 65534."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        if os.geteuid() != 0:
            _raises(lambda: check_output_dir(locked), "--out", "is not writable (permission denied)")
            return
        if not hasattr(os, "fork"):
            pytest.skip("root without fork: cannot drop privileges to test permissions")
        msg = _as_nobody(lambda: check_output_dir(locked / "x"))
        assert (
            msg == f"OutputLocationError: --out {locked / 'x'}: {locked} is not writable (permission denied)"
        )
        assert _as_nobody(lambda: check_output_file(base / "y.json")).startswith(
            "OutputLocationError: --output"
        )
        assert check_output_dir(locked / "x") == locked / "x"  # root may write (the chmod does not stop it)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_probe_file_is_one_of_ours(tmp_path, monkeypatch):
    created = []
    real_open = os.open

    def spy(path, *a, **kw):
        created.append(Path(path).name)
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    check_output_dir(tmp_path)
    assert created and all(is_temp_file(n) for n in created)
