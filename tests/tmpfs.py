"""Small tmpfs mounts for full-disk and read-only-filesystem tests (root only; else ``pytest.skip``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", readonly: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` (created) for the block; skip the test where one cannot be."""
    if os.name != "posix" or shutil.which("mount") is None:
        pytest.skip("no mount command on this platform")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if readonly else "")
    done = _run("mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


def remount_readonly(path: Path) -> None:
    """Make a tmpfs mounted with :func:`tmpfs` read-only (after filling it)."""
    done = _run("mount", "-o", "remount,ro", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
