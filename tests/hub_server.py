"""A loopback Hugging Face Hub for offline tests.

A small threaded ``http.server`` on 127.0.0.1 (random port, in-memory storage) that speaks
enough of the Hub's HTTP API for ``huggingface_hub`` 2.x:

* ``create_repo``            POST /api/repos/create
* ``create_branch``          POST /api/models/{repo}/branch/{branch}
* README validation          POST /api/validate-yaml
* ``upload_folder`` / ``create_commit`` (regular uploads only)
                             POST /api/models/{repo}/preupload/{rev}, POST .../commit/{rev} (NDJSON)
* ``model_info`` / ``repo_info``   GET /api/models/{repo}[/revision/{rev}]
* ``list_repo_tree``         GET /api/models/{repo}/tree/{rev}[/{path}]
* ``hf_hub_download``        HEAD/GET /{repo}/resolve/{rev}/{path} with X-Repo-Commit, ETag,
                             X-Linked-Size and the X-Error-Code of a missing repo / revision / file.

Revisions are branch names, commit hashes or ``refs/pr/N``. LFS/Xet uploads are refused (the
preupload answer is always "regular"). The server is bounded: request bodies are capped and it
shuts itself down after ``lifetime_s`` seconds. Every request is recorded (method, path and
whether an ``Authorization`` header came; the token itself is never stored) for assertions.

Use :func:`hub_environment` to point ``huggingface_hub`` at it (``HF_ENDPOINT`` plus the
module constants the library read at import time).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY_BYTES = 256 * 1024 * 1024
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    repo_id: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch / refs/pr/N -> sha
    num_prs: int = 0

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        if revision in self.commits:
            return revision
        return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    authorized: bool


class LoopbackHub:
    """The server; start with ``with LoopbackHub() as hub: ... hub.url ...``."""

    def __init__(
        self,
        *,
        lifetime_s: float = 300.0,
        required_token: str | None = None,
        user: str = "tester",
    ) -> None:
        self.lifetime_s = lifetime_s
        self.user = user
        self._token_hash = None if required_token is None else hashlib.sha256(required_token.encode()).hexdigest()
        self.repos: dict[str, _Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            assert sha is not None, f"no revision {revision} in {repo_id}"
            return dict(repo.commits[sha])

    def check_token(self, header: str | None) -> bool:
        if self._token_hash is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hashlib.sha256(header[len("Bearer ") :].encode()).hexdigest() == self._token_hash

    def new_commit(self, repo: _Repo, ref: str, files: dict[str, bytes]) -> str:
        sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        repo.commits[sha] = files
        repo.refs[ref] = sha
        return sha


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def _reply(
        self,
        status: int,
        body: bytes | dict | list = b"",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
        content_length: int | None = None,
    ) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, *, head: bool = False, extra: dict | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._reply(status, {"error": message}, headers, head=head)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(n) if n else b""

    def _segments(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        segs = [unquote(s) for s in parts.path.split("/") if s]
        return segs, parse_qs(parts.query)

    def _record(self) -> None:
        with self.hub.lock:
            self.hub.requests.append(
                RecordedRequest(self.command, urlsplit(self.path).path, "Authorization" in self.headers)
            )

    def _authorized(self) -> bool:
        return self.hub.check_token(self.headers.get("Authorization"))

    def _repo(self, repo_id: str, *, head: bool = False) -> _Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, "RepoNotFound", f"Repository not found: {repo_id}", head=head)
            return None
        return repo

    # ------------------------------------------------------------------ verbs
    def do_HEAD(self) -> None:
        self._record()
        self._resolve(head=True)

    def do_GET(self) -> None:
        self._record()
        segs, query = self._segments()
        if segs[:2] == ["api", "models"] and len(segs) >= 4:
            with self.hub.lock:
                self._api_get(segs, query)
        else:
            self._resolve(head=False)

    def do_POST(self) -> None:
        self._record()
        try:
            body = self._body()
        except ValueError as e:
            self._error(413, None, str(e))
            return
        segs, query = self._segments()
        with self.hub.lock:
            if segs == ["api", "validate-yaml"]:
                self._validate_yaml(body)
            elif segs == ["api", "repos", "create"]:
                self._create_repo(body)
            elif segs[:2] == ["api", "models"] and len(segs) >= 6:
                repo_id, action, rest = f"{segs[2]}/{segs[3]}", segs[4], "/".join(segs[5:])
                if not self._authorized():
                    self._error(401, None, "Invalid credentials in Authorization header")
                    return
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if action == "preupload":
                    self._preupload(repo, rest, body)
                elif action == "commit":
                    self._commit(repo, rest, body, create_pr="create_pr" in query)
                elif action == "branch":
                    self._create_branch(repo, rest, body)
                else:
                    self._error(404, None, f"unsupported endpoint {self.path}")
            else:
                self._error(404, None, f"unsupported endpoint {self.path}")

    # ------------------------------------------------------------------ endpoints
    def _validate_yaml(self, body: bytes) -> None:
        import yaml

        content = json.loads(body or b"{}").get("content", "")
        errors = []
        if content.startswith("---"):
            end = content.find("\n---", 3)
            if end < 0:
                errors.append({"message": "front matter is not closed"})
            else:
                try:
                    meta = yaml.safe_load(content[3:end])
                    if meta is not None and not isinstance(meta, dict):
                        errors.append({"message": "front matter is not a mapping"})
                except yaml.YAMLError as e:
                    errors.append({"message": f"invalid YAML: {e}"})
        if errors:
            self._reply(400, {"errors": errors, "warnings": []})
        else:
            self._reply(200, {"errors": [], "warnings": []})

    def _create_repo(self, body: bytes) -> None:
        if not self._authorized():
            self._error(401, None, "Invalid credentials in Authorization header")
            return
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") != "model":
            self._error(400, None, "only model repos are supported")
            return
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            self._reply(409, {"error": "You already created this model repo", "url": url})
            return
        repo = _Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        self.hub.new_commit(repo, "main", {".gitattributes": GITATTRIBUTES})
        self.hub.repos[repo_id] = repo
        self._reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, repo: _Repo, branch: str, body: bytes) -> None:
        payload = json.loads(body or b"{}")
        if branch in repo.refs:
            self._error(409, None, f"Reference already exists: {branch}")
            return
        start = repo.resolve(payload.get("startingPoint") or "main")
        if start is None:
            self._error(404, "RevisionNotFound", "starting point not found")
            return
        repo.refs[branch] = start
        self._reply(200, {})

    def _preupload(self, repo: _Repo, revision: str, body: bytes) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        files = repo.commits[sha]
        out = []
        for f in json.loads(body)["files"]:
            existing = files.get(f["path"])
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": None if existing is None else git_blob_oid(existing),
                }
            )
        self._reply(200, {"files": out, "commitOid": sha})

    def _commit(self, repo: _Repo, revision: str, body: bytes, *, create_pr: bool) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        files = dict(repo.commits[sha])
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                parent = value.get("parentCommit")
                if parent is not None and parent != sha:
                    self._error(412, None, "parent commit is not the head of the revision")
                    return
            elif key == "file":
                if value.get("encoding") != "base64":
                    self._error(400, None, "only base64 file content is supported")
                    return
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    self._error(404, "EntryNotFound", "A file with this name doesn't exist")
                    return
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for p in [p for p in files if p.startswith(prefix)]:
                    del files[p]
            else:
                self._error(400, None, f"unsupported commit operation {key!r} (LFS is not supported)")
                return
        pr_url = None
        ref = revision if revision in repo.refs else None
        if create_pr:
            repo.num_prs += 1
            ref = f"refs/pr/{repo.num_prs}"
            pr_url = f"{self.hub.url}/{repo.repo_id}/discussions/{repo.num_prs}"
        if ref is None:
            self._error(400, None, "cannot commit on a detached commit")
            return
        new = self.hub.new_commit(repo, ref, files)
        self._reply(
            200,
            {
                "success": True,
                "commitOid": new,
                "commitUrl": f"{self.hub.url}/{repo.repo_id}/commit/{new}",
                "pullRequestUrl": pr_url,
            },
        )

    def _api_get(self, segs: list[str], query: dict[str, list[str]]) -> None:
        repo_id = f"{segs[2]}/{segs[3]}"
        repo = self._repo(repo_id)
        if repo is None:
            return
        action = segs[4] if len(segs) > 4 else None
        if action in (None, "revision"):
            revision = "/".join(segs[5:]) if action == "revision" else "main"
            sha = repo.resolve(revision)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            files = repo.commits[sha]
            self._reply(
                200,
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "private": repo.private,
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                    "tags": [],
                },
            )
        elif action == "tree":
            # /api/models/ns/name/tree/{rev}[/path]; the client quotes the revision and the path
            revision = segs[5] if len(segs) > 5 else "main"
            path = "/".join(segs[6:]).strip("/")
            sha = repo.resolve(revision)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            self._reply(200, _tree(repo.commits[sha], path, recursive))
        else:
            self._error(404, None, f"unsupported endpoint {self.path}")

    def _resolve(self, *, head: bool) -> None:
        segs, _ = self._segments()
        raw = [s for s in urlsplit(self.path).path.split("/") if s]
        if len(raw) < 5 or raw[2] != "resolve":
            self._error(404, None, f"unsupported endpoint {self.path}", head=head)
            return
        repo_id = f"{segs[0]}/{segs[1]}"
        revision = unquote(raw[3])
        path = unquote("/".join(raw[4:]))
        with self.hub.lock:
            repo = self._repo(repo_id, head=head)
            if repo is None:
                return
            sha = repo.resolve(revision)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
                return
            data = repo.commits[sha].get(path)
        if data is None:
            self._error(404, "EntryNotFound", f"{path} does not exist", head=head, extra={"X-Repo-Commit": sha})
            return
        oid = git_blob_oid(data)
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{oid}"',
            "X-Linked-Size": str(len(data)),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._reply(206, data[start:], headers, head=head)
        else:
            self._reply(200, data, headers, head=head)


def _tree(files: dict[str, bytes], path: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{path}/" if path else ""
    entries: dict[str, dict[str, Any]] = {}
    for p, data in sorted(files.items()):
        if not p.startswith(prefix):
            continue
        rel = p[len(prefix) :]
        parts = rel.split("/")
        for depth in range(1, len(parts)):  # folders on the way
            folder = prefix + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": git_blob_oid(folder.encode())})
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries[p] = {"type": "file", "path": p, "size": len(data), "oid": git_blob_oid(data)}
    return list(entries.values())


@contextlib.contextmanager
def hub_environment(endpoint: str, cache_dir: str, *, offline: bool = False, token: str | None = None) -> Iterator[None]:
    """Point ``huggingface_hub`` at ``endpoint`` with its cache in ``cache_dir`` (restored afterwards).

    Sets ``HF_ENDPOINT`` / ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` / ``HF_TOKEN`` and patches the
    constants ``huggingface_hub`` computed from them at import time. Xet is disabled (the
    loopback Hub speaks only regular uploads/downloads).
    """
    import os

    from huggingface_hub import constants

    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": cache_dir,
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_TOKEN": token,
    }
    consts = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"}),
        "HF_HUB_CACHE": cache_dir,
        "HF_HUB_OFFLINE": offline,
        "HF_HUB_DISABLE_XET": True,
    }
    old_env = {k: os.environ.get(k) for k in env}
    old_consts = {k: getattr(constants, k) for k in consts}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in consts.items():
            setattr(constants, k, v)
        yield
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in old_consts.items():
            setattr(constants, k, v)
