"""Durable atomic file writing: a temp file in the target folder, fsync, ``os.replace``, fsync the folder.

Nothing is ever half-written: a crash or power cut leaves either the old file or the new one. The
temp file gets the mode the process umask gives (like ``open``), and is named
``.NAME.panosamic-tmp-HOST-PID-RANDOM.EXT`` so that temp files left behind by a killed process are
recognised and removed by the next write into the same folder (:func:`remove_stale_temp_files`).
A failed write removes its temp file and re-raises; a disk-full failure that a library reports as
something else (torch's "unexpected pos") is re-raised as ``OSError(ENOSPC)`` naming the target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "TEMP_MARKER",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temp_file",
    "remove_stale_temp_files",
    "safe_torch_load",
    "temp_path_for",
]

#: What every temp file name of ours contains.
TEMP_MARKER = ".panosamic-tmp-"
#: A temp file whose writer cannot be checked (other host, pid unknown) is stale after this long.
STALE_AGE_S = 24 * 3600
#: Below this much free space, a writer's non-OSError failure is taken for a full disk.
_DISK_FULL_FREE_BYTES = 1 << 20
_NO_SPACE_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_MAX_NAME_BYTES = 255

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.panosamic-tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}")
# Names written by earlier versions (tempfile.mkstemp): ".NAME.XXXXXXXX.tmp[.EXT]"; removed after STALE_AGE_S.
_LEGACY_TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?$")

_cleaned_dirs: set[str] = set()
_cleaned_lock = threading.Lock()


def _host_tag() -> str:
    return hashlib.blake2s(socket.gethostname().encode(), digest_size=3).hexdigest()


_HOST = _host_tag()


# ---------------------------------------------------------------------------------------- temp files


def is_temp_file(name: str) -> bool:
    """Whether a file name is one of our temp files (current or legacy naming)."""
    return bool(_TEMP_RE.match(name) or _LEGACY_TEMP_RE.match(name))


def _temp_name(target: Path, ext: str) -> str:
    tail = f"{TEMP_MARKER}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{ext}"
    name = target.name
    while len(f".{name}{tail}".encode()) > _MAX_NAME_BYTES and len(name) > 1:
        name = name[: len(name) // 2]  # very long target names: keep the temp name legal
    return f".{name}{tail}"


def temp_path_for(target: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temp path of our naming pattern beside ``target`` (not created)."""
    target = Path(target)
    return target.parent / _temp_name(target, suffix)


def _create_temp(target: Path, ext: str) -> Path:
    """Create an empty temp file beside ``target`` with mode ``0o666 & ~umask``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = temp_path_for(target, ext)
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a unique temp file", str(target))


def _process_start_time(pid: int) -> float | None:
    """Epoch seconds at which ``pid`` started (Linux ``/proc``), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(
            int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime")
        )
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_gone(pid: int, mtime: float) -> bool:
    """Whether process ``pid`` of this host can no longer be writing a file last modified at ``mtime``."""
    if pid == os.getpid():
        return False
    if os.name != "posix" or not 0 < pid < 1 << 31:  # Windows' os.kill(pid, 0) would terminate the process
        return time.time() - mtime > STALE_AGE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # alive (another user's process), or unknown: check whether the pid was reused
    start = _process_start_time(pid)
    return start is not None and mtime < start - 2.0  # the live process started after the file's last write


def _is_stale(name: str, mtime: float, now: float) -> bool:
    m = _TEMP_RE.match(name)
    if m is None:
        return bool(_LEGACY_TEMP_RE.match(name)) and now - mtime > STALE_AGE_S
    if m["host"] != _HOST:
        return now - mtime > STALE_AGE_S
    return _writer_gone(int(m["pid"]), mtime)


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove our temp files in ``directory`` whose writing process is gone; return what was removed.

    Only names of our pattern are touched, never those of a live process (this one included); files
    from another host (shared filesystems) only after :data:`STALE_AGE_S`. Errors are ignored.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        with os.scandir(directory) as it:
            entries = [e for e in it if e.name.startswith(".") and is_temp_file(e.name)]
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and _is_stale(entry.name, entry.stat().st_mtime, now):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _clean_once(directory: Path) -> None:
    """:func:`remove_stale_temp_files` once per folder per process."""
    key = os.path.realpath(directory)
    with _cleaned_lock:
        if key in _cleaned_dirs:
            return
        _cleaned_dirs.add(key)
    remove_stale_temp_files(directory)


# ---------------------------------------------------------------------------------------- durability


def _fsync_file(path: Path, mode: int) -> None:
    """fsync ``path``, restoring ``mode`` if the writer replaced the file (safetensors makes it 0600)."""
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        if os.name == "posix" and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; filesystems that cannot are skipped)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _looks_disk_full(exc: BaseException, directory: Path) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the chain: torch hides OSError(ENOSPC) in __context__
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        if any(t in str(e).lower() for t in _NO_SPACE_TEXT):
            return True
        e = e.__cause__ or e.__context__
    try:
        return shutil.disk_usage(directory).free < _DISK_FULL_FREE_BYTES
    except OSError:
        return False


def _failure(exc: BaseException, target: Path, tmp: Path) -> BaseException | None:
    """A clearer exception to raise for a failed write of ``target``, or None to re-raise ``exc``."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.filename in (None, str(tmp)):
            exc.filename = str(target)  # name the file the user asked for, not our hidden temp file
        return None
    if (
        isinstance(exc, Exception)
        and not isinstance(exc, MemoryError)
        and _looks_disk_full(exc, target.parent)
    ):
        code = errno.ENOSPC
        return OSError(code, os.strerror(code), str(target))
    return None


# ---------------------------------------------------------------------------------------- public API


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path``; if the block succeeds, fsync it and rename it onto ``path``.

    ``suffix`` defaults to the target's suffix (libraries such as PIL pick the format from it). The
    block may write the temp path in any way (reopening it with ``"wb"`` keeps its mode).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:  # the folder to write into is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), e.filename) from e
    _clean_once(path.parent)
    tmp = _create_temp(path, path.suffix if suffix is None else suffix)
    mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 & ~umask
    try:
        yield tmp
        _fsync_file(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        clearer = _failure(e, path, tmp)  # before the unlink: a full disk is still full
        tmp.unlink(missing_ok=True)
        if clearer is not None:
            raise clearer from e
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 (whatever the locale) atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (through a file object, so that a full disk is reported as ENOSPC)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def safe_torch_load(path: str | os.PathLike, map_location: str | object = "cpu", *, mmap: bool = False) -> object:
    """``torch.load(weights_only=True)`` with errors that name the file and say what is wrong.

    A file that would need pickled code to load is refused (never executed); a truncated or
    otherwise unreadable file gives a ``ValueError`` too. ``mmap``: map the tensors instead of
    reading them (only files saved in torch's zip format; others give a ``ValueError``).
    """
    import pickle

    import torch

    try:
        if mmap:
            return torch.load(os.fspath(path), map_location=map_location, weights_only=True, mmap=True)
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor checkpoint (it would run pickled code, "
            f"which weights_only=True forbids): {str(e).splitlines()[0]}"
        ) from e
    except OSError as e:
        if e.errno is not None:
            raise  # missing, unreadable (permissions), I/O error: not a content problem
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {e}") from e
    except (RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {e}") from e


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, on the CPU: the one reader of weight files.

    A missing or unreadable file raises its ``OSError`` (``permission denied`` is not "truncated");
    a file whose content does not parse gives a ``ValueError`` that names it as truncated or corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    with open(path, "rb"):  # FileNotFoundError / PermissionError / IsADirectoryError, with the path
        pass
    try:
        return dict(load_file(os.fspath(path), device="cpu"))
    except (SafetensorError, ValueError, OSError) as e:
        raise ValueError(f"{path} is truncated or corrupt (not a readable safetensors file: {_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
