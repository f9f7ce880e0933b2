"""One clear line for any error a user can meet: what went wrong, on which file, and what to do.

:func:`describe_error` recognises exceptions by class name and module (so this module imports
neither torch nor huggingface_hub): OSError by errno, MemoryError and out-of-memory errors, Hub HTTP
and offline errors, pytorch-optimizer's errors and JSON errors; anything else gives
``TypeName: message``. Hub tokens (``hf_...``) are never printed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

__all__ = ["PanosamicError", "describe_error"]

#: Longest third-party message kept (our own messages are never cut).
_MAX_FOREIGN_CHARS = 300
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_ENFORCE_RE = re.compile(r"^\[enforce fail at [^\]]*\][\s.]*")
_URL_RE = re.compile(r"https?://[^\s'\"]+[^\s'\".,):]")
_MEMORY_HINT = (
    "use a smaller input (or lower --max-pixels), a smaller --batch-size, or a machine with more memory"
)
_OFFLINE_HINT = (
    "check the connection; offline, use files already in the Hugging Face cache (HF_HUB_OFFLINE=1 / "
    "local_files_only=True) or a local folder or file"
)
_LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"
_OPTIMIZER_FIELDS = {
    "NegativeLRError": "lr_scheduler.max_lr, lr_scheduler.start_lr and lr_scheduler.intermediate_lr must be > 0",
    "NegativeStepError": "the number of iterations (epochs x batches per epoch) and warm-up/wind-down "
    "ratios must give positive step counts",
}


class PanosamicError(Exception):
    """Base of panosamic's own user-facing errors: the message is the whole story (no type name shown)."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_FOREIGN_CHARS else text[: _MAX_FOREIGN_CHARS - 1] + "…"


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _from(exc: BaseException, package: str) -> bool:
    return any((c.__module__ or "").split(".")[0] == package for c in type(exc).__mro__)


def _free_mb(path: str | None) -> str:
    """``" (N MB free)"`` for the filesystem holding ``path`` (its nearest existing folder)."""
    if not path:
        return ""
    p = Path(path).absolute()
    for folder in (p, *p.parents):
        try:
            if folder.is_dir():
                return f" ({shutil.disk_usage(folder).free / 1e6:.0f} MB free)"
        except OSError:
            continue
    return ""


def _file_component(path: str) -> str | None:
    """The first part of ``path`` that is a file where a folder is needed."""
    p = Path(path)
    for part in reversed(p.parents):
        if part.exists() and not part.is_dir():
            return str(part)
    return None


def _describe_os_error(exc: OSError, subject: str | None) -> str:
    code, what = exc.errno, subject or "the file"
    file = os.fsdecode(exc.filename) if exc.filename is not None else None  # a path, unlike a context
    if code == errno.ENOSPC:
        return f"disk full while writing {what}{_free_mb(file)}"
    if code == getattr(errno, "EDQUOT", None):
        return f"disk quota exceeded while writing {what}{_free_mb(file)}"
    if code == errno.EROFS:
        return f"cannot write {what}: the filesystem is read-only (choose another location)"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: {what} (check its owner and permissions, or choose another location)"
    if code == errno.EEXIST:
        return f"{what} already exists" + (" (as a file)" if subject and Path(subject).is_file() else "")
    if code == errno.ENOTDIR:
        culprit = _file_component(file) if file else None
        where = f" (in {file})" if culprit and culprit != file else ""
        return f"{culprit or what} is a file, expected a folder{where}"
    if code == errno.EISDIR:
        return f"{what} is a folder, expected a file"
    if code == errno.ENOENT:
        return f"no such file or folder: {what}"
    network = isinstance(exc, (ConnectionError, TimeoutError)) or "gaierror" in _names(exc)
    if network or code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"network error ({_cut(_one_line(exc.strerror or exc))}): {_OFFLINE_HINT}"
    reason = exc.strerror or _one_line(exc) or type(exc).__name__
    return f"{reason}: {what}" if subject else _cut(f"{type(exc).__name__}: {_one_line(exc)}")


def _hub_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _hub_url(exc: BaseException) -> str:
    m = _URL_RE.search(str(exc))
    url = m.group(0) if m else str(getattr(getattr(exc, "request", None), "url", "") or "")
    return f" ({url})" if url else ""


def _describe_hub_error(exc: BaseException) -> str:
    names, status, url = _names(exc), _hub_status(exc), _hub_url(exc)
    hub = "the Hugging Face Hub"
    if "OfflineModeIsEnabled" in names and "/api/" in url:  # an upload or a query, not a file download
        return f"offline mode is on (HF_HUB_OFFLINE=1), so the Hub cannot be reached{url}: unset HF_HUB_OFFLINE " \
               "to upload to or query the Hub"  # fmt: skip
    if "OfflineModeIsEnabled" in names:
        return f"offline mode is on (HF_HUB_OFFLINE=1) and the file is not in the local cache{url}: " \
               "unset HF_HUB_OFFLINE to download it, or pass a local folder or file"  # fmt: skip
    if "LocalEntryNotFoundError" in names:
        return f"the file is not in the local Hugging Face cache and {hub} was not reached (offline, or " \
               "local_files_only): run once online to cache it, or pass a local folder or file"  # fmt: skip
    if "GatedRepoError" in names:
        return f"the repository is gated{url}: accept its terms on its Hub page, then {_LOGIN_HINT}"
    if status == 401 and "RepositoryNotFoundError" in names:
        return f"repository not found on {hub}, or private and you are not logged in (401){url}: " \
               f"check the repo id; for a private repo {_LOGIN_HINT}"  # fmt: skip
    if status == 401:
        return f"{hub} refused the request (401: not logged in or invalid token){url}: {_LOGIN_HINT}"
    if status == 403:
        return f"{hub} refused the request (403: the token lacks this permission){url}: use a token with " \
               "access (write access to push) via `hf auth login` or HF_TOKEN"  # fmt: skip
    if "RevisionNotFoundError" in names:
        return f"revision not found on {hub}{url}: check --revision"
    if "RemoteEntryNotFoundError" in names or ("EntryNotFoundError" in names and status == 404):
        return f"file not found in the Hub repository{url}: check --subfolder and the file name"
    if "RepositoryNotFoundError" in names:
        return f"repository not found on {hub}{url}: check the repo id (a private repo answers 404 too " \
               f"without access: {_LOGIN_HINT})"  # fmt: skip
    if status == 404:
        return f"not found on {hub} (404){url}: check the repo id, --subfolder and --revision"
    if status is not None:
        return f"{hub} answered {status}{url}: {_cut(_one_line(exc))}"
    return f"Hugging Face Hub error: {_cut(_one_line(exc))}"


def _is_connection_error(exc: BaseException) -> bool:
    names = _names(exc)
    return bool(
        names
        & {
            "ConnectError",
            "ConnectTimeout",
            "NetworkError",
            "MaxRetryError",
            "NameResolutionError",
            "URLError",
        }
        or ("ConnectionError" in names and (_from(exc, "requests") or _from(exc, "urllib3")))
    )


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in _names(exc):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _describe_memory_error(exc: BaseException, context: str | None) -> str:
    where = (
        "GPU out of memory"
        if "cuda" in str(exc).lower() or "OutOfMemoryError" in _names(exc)
        else "out of memory"
    )
    detail = _cut(_ENFORCE_RE.sub("", _one_line(exc)))
    during = f" while {context}" if context else ""
    return f"{where}{during}" + (f" ({detail})" if detail else "") + f": {_MEMORY_HINT}"


def _describe(exc: BaseException, context: str | None) -> str:
    if _from(exc, "huggingface_hub"):
        return _describe_hub_error(exc)
    if _is_connection_error(exc):
        return f"network error ({_cut(_one_line(exc))}): {_OFFLINE_HINT}"
    if _is_out_of_memory(exc):
        return _describe_memory_error(exc, context)
    if _from(exc, "pytorch_optimizer"):
        hint = _OPTIMIZER_FIELDS.get(
            type(exc).__name__, "check the optimizer settings of the training config"
        )
        return f"the optimizer refused its settings ({_one_line(exc)}): {hint}"
    if isinstance(exc, json.JSONDecodeError):
        what = context or "the file"
        return f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, OSError) and exc.errno is not None:
        subject = exc.filename if exc.filename is not None else context
        return _describe_os_error(exc, os.fsdecode(subject) if subject is not None else None)
    if isinstance(exc, (PanosamicError, ValueError, FileNotFoundError)) and _one_line(exc):
        return _one_line(exc)  # our own messages: already a sentence
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    message = _cut(_one_line(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def describe_error(exc: BaseException, *, context: str | None = None) -> str:
    """One line saying what went wrong (no traceback, never a token).

    ``context`` names what was being done or written (e.g. ``"--output results.json"``); it stands in
    for the file name an OSError lacks and names the JSON file of a decoding error.
    """
    try:
        line = _describe(exc, context)
    except Exception:  # noqa: BLE001 (describing must never fail, whatever the exception's __str__ does)
        line = type(exc).__name__
    return _TOKEN_RE.sub("hf_***", line)
