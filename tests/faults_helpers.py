"""Helpers of the fault-injection suite (tests/test_faults.py): run the CLI as a user would, inject faults.

Starting ``python -m panosamic.cli`` imports torch, which costs seconds of CPU each time; forty of
them would not fit the suite's time budget. :class:`CliServer` imports panosamic (and torch) once
in a helper process that never runs a tensor operation, and forks one child per command. The
child is a fresh process in every way a user sees: its own stdout/stderr (captured to files), its
own umask, environment and working folder, the process-wide state of a new interpreter (nothing
ran before the fork), and it ends like ``python -m panosamic.cli`` does: ``sys.exit(main())``, an
escaping exception printed by ``sys.excepthook`` with exit status 1, a signal as a negative status.
An ``inject`` snippet (Python source) runs in the child before ``main``: it is how faults such as
``kill -9`` in the middle of a write are placed deterministically. :func:`run_fresh` runs a real
``python -m panosamic.cli`` where the module-level state of a real start matters (the Hub client
reads its endpoint at import time).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from panosamic.io import is_temp_file

TRACEBACK = "Traceback (most recent call last)"
#: What the fork server imports before forking (the heavy code behind the commands).
WARM = ("torch", "PIL.Image", "safetensors.torch", "huggingface_hub", "panosamic.cli", "panosamic.errors",
        "panosamic.preflight", "panosamic.model", "panosamic.inference.cli", "panosamic.data.prepare",
        "panosamic.synth", "panosamic.training.cli", "panosamic.training.trainer", "panosamic.training.export",
        "panosamic.evaluation.evaluate", "panosamic.hub.push", "pytorch_optimizer")
ROOT = Path(__file__).resolve().parent.parent

_SERVER = r"""
import json, os, sys, traceback
reply = os.fdopen(os.dup(1), "w", buffering=1)
requests = os.fdopen(os.dup(0), "r")
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
sys.path.insert(0, TESTS)
import importlib
for module in WARM:  # imported once, before any fork; nothing here runs a tensor operation
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 (the child imports it again and reports the error as a user would see it)
        pass
reply.write("ready\n")


def child(req):
    out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(req["cwd"])
    for k, v in req["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if req["umask"] is not None:
        os.umask(req["umask"])
    sys.argv = ["panosamic", *req["argv"]]
    code = 0
    try:
        if req["inject"]:
            exec(compile(req["inject"], "<fault injection>", "exec"), {"__name__": "__fault__"})
        from panosamic.cli import main

        code = main(req["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(int(code or 0) & 0xFF)


for line in requests:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(req)
    reply.write(json.dumps({"pid": pid}) + "\n")
    _, status, usage = os.wait4(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    reply.write(json.dumps({"rc": rc, "maxrss_kb": usage.ru_maxrss}) + "\n")
"""


@dataclass
class Result:
    """What a command left: exit status, stdout and stderr."""

    rc: int
    out: str
    err: str
    #: Peak resident memory of the command's process (MB; 0 where unknown).
    peak_mb: float = 0.0

    @property
    def text(self) -> str:
        return self.out + self.err


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _kill(pid: int, fired: threading.Event) -> None:
    fired.set()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Running:
    """A command started by :meth:`CliServer.start`: its pid, and :meth:`wait` for the result."""

    def __init__(self, server: CliServer, pid: int, out: Path, err: Path) -> None:
        self.server, self.pid, self._out, self._err = server, pid, out, err

    def wait(self, timeout: float = 900) -> Result:
        """The command's result; after ``timeout`` seconds it is killed and the wait fails."""
        fired = threading.Event()
        timer = threading.Timer(timeout, _kill, (self.pid, fired))
        timer.start()
        try:
            done = json.loads(self.server._read())
        finally:
            timer.cancel()
        self.server._busy = False
        if fired.is_set():
            raise TimeoutError(f"the command did not finish in {timeout:g} s (killed)")
        return Result(done["rc"], self._out.read_text(errors="replace"), self._err.read_text(errors="replace"),
                      done["maxrss_kb"] / 1024)


class CliServer:
    """Forks ``panosamic`` commands from one process that imported everything once (see the module doc)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)
        code = f"TESTS = {str(ROOT / 'tests')!r}\nWARM = {WARM!r}\n" + _SERVER
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=_base_env(), cwd=str(ROOT), text=True, bufsize=1)
        self._count = 0
        self._busy = False
        if self._read() != "ready":
            raise RuntimeError("the CLI fork server did not start")

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI fork server died (status {self.proc.poll()})")
        return line.strip()

    def start(self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str | None] | None = None,
              umask: int | None = None, inject: str = "") -> Running:
        """Start ``panosamic ARGV`` in a forked child; :meth:`Running.wait` for its result."""
        assert not self._busy, "one command at a time"
        self._count += 1
        out, err = self.scratch / f"{self._count}.out", self.scratch / f"{self._count}.err"
        req = {"argv": [str(a) for a in argv], "cwd": str(cwd or self.scratch), "env": env or {},
               "umask": umask, "inject": inject, "stdout": str(out), "stderr": str(err)}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        self._busy = True
        pid = json.loads(self._read())["pid"]
        return Running(self, pid, out, err)

    def run(self, argv: list[str], **kw) -> Result:
        """Run ``panosamic ARGV`` to the end (see :meth:`start`)."""
        return self.start(argv, **kw).wait()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_fresh(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 180) -> Result:
    """``python -m panosamic.cli ARGV`` in a new interpreter."""
    full_env = {**_base_env(), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "panosamic.cli", *map(str, argv)], capture_output=True, text=True,
                          env=full_env, cwd=str(cwd or ROOT), timeout=timeout, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------------------- assertions
def record(text: str) -> None:
    """Append ``test id<TAB>message`` to ``$PANOSAMIC_FAULTS_LOG`` if set (the fault -> message table)."""
    log = os.environ.get("PANOSAMIC_FAULTS_LOG")
    if log:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].rsplit(" ", 1)[0]
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{test}\t{' | '.join(ln for ln in text.splitlines() if ln.strip())}\n")


def assert_error(res: Result, command: str, *culprits: str, rc: int = 1) -> str:
    """The command failed with ``rc``, one ``panosamic COMMAND: error:`` line naming every culprit, no traceback."""
    assert TRACEBACK not in res.text, f"traceback printed:\n{res.err[-3000:]}"
    assert res.rc == rc, f"exit status {res.rc}, expected {rc}\nstdout: {res.out[-1500:]}\nstderr: {res.err[-1500:]}"
    prefix = f"panosamic {command}: error: "
    lines = [ln for ln in res.err.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, f"expected one {prefix!r} line, stderr:\n{res.err[-2000:]}"
    line = lines[0]
    for c in culprits:
        assert c.lower() in line.lower(), f"{c!r} not named in: {line}"
    record(line)
    return line


def temp_files(*roots: Path) -> list[Path]:
    """Our temp files (see :func:`panosamic.io.is_temp_file`) anywhere under ``roots``."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += [p for p in root.rglob("*") if is_temp_file(p.name)]
        elif is_temp_file(root.name) and root.exists():
            found.append(root)
    return found


def assert_no_temp(*roots: Path) -> None:
    left = temp_files(*roots)
    assert not left, f"temp files left behind: {left}"


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every file under ``root`` (relative name -> mode)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------------------- fault injections (child code)
def kill_at_replace(n: int, containing: str = "") -> str:
    """Child code: SIGKILL itself at the ``n``-th atomic rename (whose target contains ``containing``):
    the temp file is complete on disk, the target never appears."""
    return f"""
import os, signal
_orig, _count = os.replace, [0]
def _replace(src, dst, *a, **k):
    if {containing!r} in os.fspath(dst):
        _count[0] += 1
        if _count[0] == {n}:
            os.kill(os.getpid(), signal.SIGKILL)
    return _orig(src, dst, *a, **k)
os.replace = _replace
"""


def kill_in_torch_save(n: int, containing: str) -> str:
    """Child code: at the ``n``-th ``torch.save`` into a file whose name contains ``containing``, write half
    of the bytes, then SIGKILL itself (kill -9 in the middle of a checkpoint write)."""
    return f"""
import io, os, signal, torch
_orig, _count = torch.save, [0]
def _save(obj, f, *a, **k):
    name = getattr(f, "name", f)
    if {containing!r} in os.fspath(name):
        _count[0] += 1
        if _count[0] == {n}:
            buf = io.BytesIO()
            _orig(obj, buf, *a, **k)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    return _orig(obj, f, *a, **k)
torch.save = _save
"""


def raise_in(target: str, exc: str) -> str:
    """Child code: make ``module:attribute`` (a function) raise ``exc`` (Python source of an exception)."""
    module, attr = target.split(":")
    return f"""
import importlib
_m = importlib.import_module({module!r})
def _fail(*a, **k):
    raise {exc}
setattr(_m, {attr!r}, _fail)
"""
