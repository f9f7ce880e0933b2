"""Durable atomic writes: modes from the umask, fsync, temp-file cleanup, failures that leave nothing."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from tmpfs import remount_readonly, tmpfs

import panosamic.io as pio
from panosamic.errors import describe_error
from panosamic.io import (
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    is_temp_file,
    remove_stale_temp_files,
    safe_torch_load,
    temp_path_for,
)

HOST = pio._HOST


def _write_png(path):
    with atomic_path(path) as tmp:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp)


def _write_safetensors(path):
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({"w": torch.ones(3)}, str(tmp))


WRITERS = {
    "bytes": lambda p: atomic_write_bytes(p, b"abc"),
    "text": lambda p: atomic_write_text(p, "é\n"),
    "torch": lambda p: atomic_torch_save({"w": torch.ones(2)}, p),
    "png": _write_png,
    "safetensors": _write_safetensors,
}


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_umask(tmp_path, umask, kind, mask, mode):
    umask(mask)
    target = tmp_path / f"out.{kind}"
    WRITERS[kind](target)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert _listing(tmp_path) == [target.name]


def test_contents_utf8_and_replace(tmp_path):
    target = tmp_path / "a" / "b.txt"
    assert atomic_write_text(target, "naïve\n") == target
    assert target.read_bytes() == "naïve\n".encode()
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _listing(target.parent) == ["b.txt"]


def test_temp_file_pattern_beside_target(tmp_path):
    with atomic_path(tmp_path / "model.pth") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".pth" and tmp.exists()
        assert (
            is_temp_file(tmp.name) and f"-{os.getpid()}-" in tmp.name and tmp.name.startswith(".model.pth.")
        )
        tmp.write_bytes(b"x")
    assert not tmp.exists()


def test_long_target_name_gets_legal_temp_name(tmp_path):
    target = tmp_path / ("n" * 250 + ".png")
    _write_png(target)
    assert _listing(tmp_path) == [target.name]


def test_fsync_file_before_rename_then_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", None))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]


def test_failed_writer_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep.json"
    atomic_write_text(target, "old")

    def boom(p):
        p.write_text("half")
        raise KeyError("writer failed")

    with pytest.raises(KeyError, match="writer failed"):
        pio.atomic_write(target, boom)
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["keep.json"]


def test_interrupt_is_reraised_and_cleaned(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"1")
        raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_oserror_names_target_not_temp(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        raise OSError(errno.EIO, "Input/output error", str(tmp))
    assert info.value.filename == str(target) and info.value.errno == errno.EIO
    assert _listing(tmp_path) == []


def test_folder_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    for target in (tmp_path / "out" / "a.json", tmp_path / "out" / "sub" / "a.json"):
        with pytest.raises(NotADirectoryError) as info:
            atomic_write_text(target, "{}")
        assert describe_error(info.value).startswith(f"{tmp_path / 'out'} is a file, expected a folder")
    assert _listing(tmp_path) == ["out"]


def _make(folder, name, mtime=None):
    p = folder / name
    p.write_bytes(b"partial")
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_stale_temp_files_only_ours_and_only_dead(tmp_path):
    old = time.time() - 2 * pio.STALE_AGE_S
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.1)
        dead = _make(tmp_path, f".m.pth.panosamic-tmp-{HOST}-{_dead_pid()}-0123abcd.pth")
        mine = _make(tmp_path, f".m.pth.panosamic-tmp-{HOST}-{os.getpid()}-0123abcd.pth", old)
        live = _make(tmp_path, f".m.pth.panosamic-tmp-{HOST}-{sleeper.pid}-0123abcd.pth")
        reused = _make(
            tmp_path, f".r.pth.panosamic-tmp-{HOST}-{sleeper.pid}-0123abcd.pth", time.time() - 3600
        )
        other_host_old = _make(tmp_path, ".a.panosamic-tmp-ffffff-1-0123abcd", old)
        other_host_new = _make(tmp_path, ".b.panosamic-tmp-ffffff-1-0123abcd")
        huge_pid_new = _make(tmp_path, f".h.panosamic-tmp-{HOST}-99999999999999999999-0123abcd")
        huge_pid_old = _make(tmp_path, f".i.panosamic-tmp-{HOST}-99999999999999999999-0123abcd", old)
        legacy_old = _make(tmp_path, ".m.pth.abc_def1.tmp.pth", old)
        legacy_new = _make(tmp_path, ".m.pth.abc_def2.tmp.pth")
        foreign = [_make(tmp_path, n, old) for n in (".m.pth.bak", "notes.tmp", "m.panosamic-tmp-x", ".cfg")]
        removed = set(remove_stale_temp_files(tmp_path))
    finally:
        sleeper.kill()
        sleeper.wait()
    expected = {dead, other_host_old, legacy_old, huge_pid_old}
    if pio._process_start_time(os.getpid()) is not None:  # pid-reuse detection needs /proc
        expected.add(reused)
    assert removed == expected
    for kept in (mine, live, other_host_new, huge_pid_new, legacy_new, *foreign):
        assert kept.exists(), kept.name


def test_writers_clean_their_folder_once_per_process(tmp_path, monkeypatch):
    stale = _make(tmp_path, f".x.panosamic-tmp-{HOST}-{_dead_pid()}-0123abcd")
    atomic_write_text(tmp_path / "x", "1")
    assert not stale.exists()
    calls = []
    monkeypatch.setattr(pio, "remove_stale_temp_files", lambda d: calls.append(d))
    atomic_write_text(tmp_path / "y", "2")
    atomic_write_text(tmp_path / "sub" / "z", "3")
    assert calls == [tmp_path / "sub"]


def test_kill_9_mid_write_then_rerun_leaves_no_temp(tmp_path):
    target = tmp_path / "ckpt" / "model_last.pth"
    code = (
        "import os, signal, sys\n"
        "from panosamic.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(bytes(100_000))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], check=False, timeout=120)
    assert done.returncode == -signal.SIGKILL
    left = _listing(target.parent)
    assert len(left) == 1 and is_temp_file(left[0])  # the killed write left its temp file, not the target
    atomic_torch_save({"w": torch.zeros(3)}, target)
    assert _listing(target.parent) == [target.name]
    assert torch.equal(safe_torch_load(target)["w"], torch.zeros(3))


@pytest.mark.parametrize("kind", ["bytes", "torch", "torch_path", "png", "safetensors"])
def test_full_disk_removes_partial_and_says_disk_full(tmp_path, kind):
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        target = disk / "out.bin"
        atomic_write_bytes(target, b"old")
        big = torch.rand(600_000)
        writers = {
            "bytes": lambda: atomic_write_bytes(target, bytes(2_000_000)),
            "torch": lambda: atomic_torch_save({"w": big}, target),
            "torch_path": lambda: pio.atomic_write(target, lambda p: torch.save({"w": big}, p)),
            "png": lambda: _write_big_png(target),
            "safetensors": lambda: _write_big_safetensors(target, big),
        }
        with pytest.raises(OSError) as info:
            writers[kind]()
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
        line = describe_error(info.value)
        assert line.startswith(f"disk full while writing {target} (") and line.endswith("MB free)")
        assert _listing(disk) == ["out.bin"] and target.read_bytes() == b"old"


def _write_big_png(target):
    noise = np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8)
    with atomic_path(target, suffix=".png") as tmp:
        Image.fromarray(noise).save(tmp)


def _write_big_safetensors(target, tensor):
    from safetensors.torch import save_file

    with atomic_path(target) as tmp:
        save_file({"w": tensor}, str(tmp))


def test_read_only_filesystem(tmp_path):
    with tmpfs(tmp_path / "ro", size="1m") as disk:
        atomic_write_text(disk / "old.txt", "old")
        remount_readonly(disk)
        for target in (disk / "new.txt", disk / "old.txt", disk / "sub" / "new.txt"):
            with pytest.raises(OSError) as info:
                atomic_write_text(target, "new")
            assert info.value.errno == errno.EROFS
            assert "read-only" in describe_error(info.value)
        assert _listing(disk) == ["old.txt"] and (disk / "old.txt").read_text() == "old"


def test_safe_torch_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        safe_torch_load(tmp_path / "missing.pth")
    atomic_torch_save({"w": torch.ones(100)}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        safe_torch_load(tmp_path / "cut.pth")


def test_temp_path_for_is_recognised(tmp_path):
    p = temp_path_for(tmp_path / "x.json", ".json")
    assert is_temp_file(p.name) and not p.exists() and p.suffix == ".json"
