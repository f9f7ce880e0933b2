"""Check output locations before any work, so that a bad ``--out`` never costs a whole run.

:func:`check_output_dir` and :func:`check_output_file` verify that the location is (or can be
created as) a writable folder / file location with enough free space, by creating and removing a
probe file named like our temp files (so a probe left by a killed process is cleaned up later).
Problems raise :class:`OutputLocationError` (a ``ValueError``) with one line naming the flag, the
path and the problem.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from panosamic.errors import PanosamicError, describe_error
from panosamic.io import temp_path_for

__all__ = ["OutputLocationError", "check_output_dir", "check_output_file"]


class OutputLocationError(PanosamicError, ValueError):
    """An output location that cannot be written (the message names the flag and the path)."""


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(path.anchor)


def _probe_problem(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (None when it can): a real create, not ``os.access``."""
    probe = temp_path_for(folder / "preflight")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        if e.errno == errno.EROFS:
            return "is on a read-only filesystem"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "is not writable (permission denied)"
        if e.errno == errno.ENOSPC:
            return f"is on a full disk ({_mb(shutil.disk_usage(folder).free)} free)"
        return f"cannot be written: {describe_error(e)}"
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None


def _check_folder(folder: Path, need_bytes: int, label: str, create: bool) -> None:
    """Check that ``folder`` is (or can become) a writable folder with ``need_bytes`` free."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        where = "" if existing == folder else f" (in {folder})"
        raise OutputLocationError(f"{label}: {existing} is a file, expected a folder{where}")
    problem = _probe_problem(existing)
    if problem is not None:
        raise OutputLocationError(f"{label}: {existing} {problem}")
    if create and existing != folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputLocationError(f"{label}: cannot create the folder: {describe_error(e)}") from e
    free = shutil.disk_usage(existing).free
    if need_bytes > 0 and free < need_bytes:
        raise OutputLocationError(
            f"{label}: not enough free space ({_mb(free)} free, about {_mb(need_bytes)} needed)"
        )


def check_output_dir(
    path: str | os.PathLike, *, need_bytes: int = 0, create: bool = True, what: str = "--out"
) -> Path:
    """Make sure ``path`` is (``create``: becomes) a writable folder with ``need_bytes`` free; return it.

    Without ``create``, the nearest existing parent must be a writable folder (the folder itself is
    made later by whoever writes into it).
    """
    folder = Path(path).expanduser().absolute()
    label = f"{what} {path}"
    try:
        _check_folder(folder, need_bytes, label, create)
    except OutputLocationError:
        raise
    except OSError as e:
        raise OutputLocationError(f"{label}: {describe_error(e)}") from e
    return folder


def check_output_file(path: str | os.PathLike, *, need_bytes: int = 0, what: str = "--output") -> Path:
    """Make sure a file can be written (atomically) at ``path``, its folder made if missing; return it.

    An existing file is fine (it is replaced); a folder at ``path`` is not. Nothing is created.
    """
    file = Path(path).expanduser().absolute()
    label = f"{what} {path}"
    try:
        if file.is_dir():
            raise OutputLocationError(f"{label} is a folder, expected a file name")
        _check_folder(file.parent, need_bytes, label, create=False)
    except OutputLocationError:
        raise
    except OSError as e:
        raise OutputLocationError(f"{label}: {describe_error(e)}") from e
    return file
