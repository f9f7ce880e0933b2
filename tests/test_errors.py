"""describe_error: one line per error, naming the culprit and what to do; never a token."""

from __future__ import annotations

import errno
import json
import os

import httpx2
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status

from panosamic.errors import PanosamicError, describe_error

URL = "https://huggingface.co/me/repo/resolve/main/config.json"


def _raised(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return e
    raise AssertionError("no exception")


def _hub_error(status, code=None, body=b"", url=URL):
    headers = {"X-Error-Code": code} if code else {}
    response = httpx2.Response(status, headers=headers, content=body, request=httpx2.Request("GET", url))
    return _raised(lambda: hf_raise_for_status(response))


def _line(exc, **kw):
    line = describe_error(exc, **kw)
    assert "\n" not in line and line.strip() == line and line
    assert "Traceback" not in line
    return line


def test_disk_full_names_file_and_free_space(tmp_path):
    target = tmp_path / "ckpt" / "model_last.pth"
    line = _line(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)))
    assert line.startswith(f"disk full while writing {target} (") and line.endswith(" MB free)")
    assert (
        _line(OSError(errno.ENOSPC, "No space"), context="--out runs/x")
        == "disk full while writing --out runs/x"
    )


def test_real_os_errors(tmp_path):
    afile = tmp_path / "results.json"
    afile.write_text("{}")
    e = _raised(lambda: (afile / "sub" / "x.png").write_text("x"))
    assert _line(e) == f"{afile} is a file, expected a folder (in {afile / 'sub' / 'x.png'})"
    e = _raised(lambda: tmp_path.write_text("x"))
    assert _line(e) == f"{tmp_path} is a folder, expected a file"
    e = _raised(lambda: (tmp_path / "missing" / "x").read_text())
    assert _line(e) == f"no such file or folder: {tmp_path / 'missing' / 'x'}"
    e = _raised(lambda: os.mkdir(afile))
    assert _line(e) == f"{afile} already exists (as a file)"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EROFS, "cannot write /mnt/x: the filesystem is read-only"),
        (errno.EACCES, "permission denied: /mnt/x"),
        (errno.EPERM, "permission denied: /mnt/x"),
        (errno.EEXIST, "/mnt/x already exists"),
        (errno.EDQUOT, "disk quota exceeded while writing /mnt/x"),
        (errno.EIO, "Input/output error: /mnt/x"),
    ],
)
def test_os_errors_by_errno(code, expected):
    assert _line(OSError(code, os.strerror(code), "/mnt/x")).startswith(expected)


def test_memory_errors_suggest_smaller_input():
    line = _line(MemoryError(), context="predicting pano.jpg (8192x16384)")
    assert line.startswith("out of memory while predicting pano.jpg (8192x16384): ")
    assert "--max-pixels" in line and "--batch-size" in line
    real = _raised(lambda: torch.empty(1 << 60, dtype=torch.uint8))
    line = _line(real)
    assert (
        line.startswith("out of memory (") and "can't allocate memory" in line and "enforce fail" not in line
    )
    gpu = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert _line(gpu).startswith("GPU out of memory (CUDA out of memory. Tried to allocate 2.00 GiB): ")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, None, "the Hugging Face Hub refused the request (401: not logged in or invalid token)"),
        (
            401,
            "RepoNotFound",
            "repository not found on the Hugging Face Hub, or private and you are not logged in",
        ),
        (403, None, "the Hugging Face Hub refused the request (403: the token lacks this permission)"),
        (403, "GatedRepo", "the repository is gated"),
        (404, "RepoNotFound", "repository not found on the Hugging Face Hub"),
        (404, "EntryNotFound", "file not found in the Hub repository"),
        (404, "RevisionNotFound", "revision not found"),
        (404, None, "not found on the Hugging Face Hub (404)"),
        (503, None, "the Hugging Face Hub answered 503"),
    ],
)
def test_hub_http_errors(status, code, expected):
    url = (
        URL if code or status != 401 else "https://huggingface.co/api/whoami-v2"
    )  # a 401 on a file means "no repo"
    line = _line(_hub_error(status, code, url=url))
    assert line.startswith(expected) and url in line
    if status in (401, 403):
        assert "hf auth login" in line and "HF_TOKEN" in line


def test_hub_tokens_never_printed():
    token = "hf_" + "aB3" * 10
    e = _hub_error(500, body=json.dumps({"error": f"bad token {token}"}).encode())
    assert token in str(e)
    assert token not in _line(e) and "hf_***" in _line(e)
    assert token not in _line(ValueError(f"token {token} refused"))


def test_offline_errors():
    line = _line(OfflineModeIsEnabled(f"Cannot reach {URL}: offline mode is enabled."))
    assert line.startswith("offline mode is on (HF_HUB_OFFLINE=1)") and URL in line
    assert "not in the local Hugging Face cache" in _line(LocalEntryNotFoundError("cannot find the file"))
    for e in (
        _raised(lambda: httpx2.get("http://127.0.0.1:9/x", timeout=5)),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    ):
        line = _line(e)
        assert line.startswith("network error (") and "HF_HUB_OFFLINE=1" in line


def test_optimizer_errors_name_config_field():
    from pytorch_optimizer import Ranger21

    params = [torch.nn.Parameter(torch.ones(2))]
    e = _raised(lambda: Ranger21(params, num_iterations=10, lr=-1e-3))
    assert type(e).__name__ == "NegativeLRError"
    line = _line(e)
    assert line.startswith("the optimizer refused its settings (") and "lr_scheduler.max_lr" in line


def test_json_errors_name_file_and_position():
    e = _raised(lambda: json.loads('{"a": 1,\n "b": }'))
    assert (
        _line(e, context="config/x.json")
        == "config/x.json is not valid JSON: Expecting value at line 2, column 7"
    )


def test_own_errors_and_fallback():
    class Bad(PanosamicError):
        pass

    assert _line(Bad("checkpoint is\nbroken")) == "checkpoint is broken"
    assert _line(ValueError("depth_threshold must be a number, got 'abc'")) == (
        "depth_threshold must be a number, got 'abc'"
    )
    assert _line(FileNotFoundError("checkpoint not found: x.pth")) == "checkpoint not found: x.pth"
    assert _line(KeyError("model")) == "KeyError: 'model'"
    assert _line(RuntimeError("boom\n  more")) == "RuntimeError: boom more"
    assert _line(RuntimeError()) == "RuntimeError"
    assert len(_line(RuntimeError("x" * 5000))) < 400


def test_never_raises():
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    assert describe_error(Weird()) == "Weird"


def test_no_heavy_imports():
    import subprocess
    import sys

    code = "import sys, panosamic.errors; print(sorted(m for m in ('torch', 'huggingface_hub') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
