"""A local stand-in for the Hugging Face Hub, for tests: a stdlib HTTP server on 127.0.0.1 speaking the subset of
the Hub's API that ``huggingface_hub`` (``HfApi``, ``HfFileSystem``, ``hf_hub_download``) and ``datasets``
(``Dataset.push_to_hub``, ``load_dataset(repo)``) use to create, list, commit to, read and delete repositories.

Repositories live in memory with real commits (a sha per commit, each commit a snapshot of the tree), so reading
at a revision, preupload "unchanged" detection and ``X-Repo-Commit`` behave as on the Hub. Regular files are sent
inline in the commit; LFS files go through the LFS batch endpoint and a ``PUT`` to an upload URL first.

Use it in tests through the ``fake_hub`` fixture (the installed plugin provides it), which starts a server and points
``huggingface_hub`` and ``datasets`` at it::

    def test_publish(fake_hub):
        HfApi().create_repo("tester/x", repo_type="dataset")
        assert fake_hub.repos.exists("tester/x")

or by hand: ``with FakeHub() as hub, hub_environment(hub, home=tmp_path): ...``.

Fault injection: ``hub.fail_next(2, status=500, path=r"/commit/")`` makes the next two requests whose path matches
answer 500; ``hub.require_token = True`` answers 401 to any request without a known token.

Importing this module is cheap (stdlib only); ``huggingface_hub``/``datasets`` are imported when patched.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_USER = "tester"
DEFAULT_TOKEN = "hf_fakehub_tester_token"

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_THRESHOLD = 10 * 1024 * 1024  # like the Hub: bigger files must go through LFS
_LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".zip", ".gz", ".zst", ".pt", ".h5", ".npy")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class StoredFile:
    """One file in one commit of a repository."""

    path: str
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        return _git_oid(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def tree_entry(self, commit: Commit) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.oid, "size": len(self.data), "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": 134}
        entry["lastCommit"] = commit.last_commit()
        return entry


@dataclass(frozen=True)
class Commit:
    """A commit: sha, parent, message, time and the whole tree after it."""

    sha: str
    parent: str | None
    message: str
    description: str
    date: float
    files: dict[str, StoredFile] = field(repr=False)

    def last_commit(self) -> dict[str, Any]:
        return {"id": self.sha, "title": self.message, "date": _iso(self.date)}


@dataclass
class _Repo:
    repo_id: str
    repo_type: str
    private: bool
    created_at: float
    commits: list[Commit]

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        if revision in ("main", "refs/heads/main", "HEAD"):
            return self.head
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            for commit in reversed(self.commits):
                if commit.sha.startswith(revision):
                    return commit
        return None


@dataclass(frozen=True)
class RequestLog:
    """One request the fake Hub answered."""

    method: str
    path: str
    query: str
    status: int
    user: str | None


@dataclass
class _Fault:
    remaining: int
    status: int
    path: re.Pattern[str]
    method: str | None
    message: str


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


class RepoView:
    """Read-only introspection of the fake Hub's repositories for assertions."""

    def __init__(self, hub: FakeHub) -> None:
        self._hub = hub

    def _repo(self, repo_id: str, repo_type: str) -> _Repo:
        with self._hub._lock:
            repo = self._hub._repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the fake Hub")
        return repo

    def exists(self, repo_id: str, repo_type: str = "dataset") -> bool:
        with self._hub._lock:
            return (repo_type, repo_id) in self._hub._repos

    def ids(self, repo_type: str = "dataset") -> list[str]:
        with self._hub._lock:
            return sorted(rid for rtype, rid in self._hub._repos if rtype == repo_type)

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[str]:
        commit = self._repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(f"no revision {revision!r} in {repo_id!r}")
        return sorted(commit.files)

    def read(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bytes:
        commit = self._repo(repo_id, repo_type).resolve(revision)
        if commit is None or path not in commit.files:
            raise KeyError(f"no {path!r} at {revision!r} in {repo_id!r}")
        return commit.files[path].data

    def private(self, repo_id: str, repo_type: str = "dataset") -> bool:
        return self._repo(repo_id, repo_type).private

    def commits(self, repo_id: str, repo_type: str = "dataset") -> list[Commit]:
        """Oldest first; the first one is the repository's creation (``initial commit``)."""
        return list(self._repo(repo_id, repo_type).commits)


class FakeHub:
    """The server: ``with FakeHub() as hub:`` starts it on a free port of 127.0.0.1; ``hub.endpoint`` is its URL."""

    def __init__(self, users: dict[str, str] | None = None, *, require_token: bool = False) -> None:
        #: token → user name; the user owns the namespace of the same name.
        self.users: dict[str, str] = dict(users) if users is not None else {DEFAULT_TOKEN: DEFAULT_USER}
        self.require_token = require_token
        self.requests: list[RequestLog] = []
        self.repos = RepoView(self)
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lfs: dict[str, bytes] = {}  # sha256 → content
        self._uploads: dict[str, tuple[str, int]] = {}  # upload key → (sha256, size)
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Hub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, *, status: int = 500, path: str = ".*", method: str | None = None, message: str = ""
    ) -> None:
        """Answer ``status`` to the next ``count`` requests whose path (``re.search``) and method match."""
        with self._lock:
            self._faults.append(
                _Fault(count, status, re.compile(path), method.upper() if method else None, message or "injected")
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_user(self, name: str, token: str) -> None:
        with self._lock:
            self.users[token] = name

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes | str] | None = None,
        *,
        repo_type: str = "dataset",
        private: bool = False,
        created_at: datetime | float | None = None,
        message: str = "seed",
    ) -> Commit:
        """Create (or add a commit to) a repository directly, without HTTP: for arranging a test's starting state."""
        ts = created_at.timestamp() if isinstance(created_at, datetime) else created_at
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                repo = self._create(repo_id, repo_type, private, ts)
            new = {
                path: StoredFile(path, data.encode() if isinstance(data, str) else data, _is_lfs_path(path, data))
                for path, data in (files or {}).items()
            }
            return self._commit(repo, message, "", new, deleted=())

    def requests_matching(self, pattern: str, method: str | None = None) -> list[RequestLog]:
        rx = re.compile(pattern)
        return [r for r in self.requests if rx.search(r.path) and (method is None or r.method == method.upper())]

    # -- state changes (under the lock) ------------------------------------------------------------------------------
    def _create(self, repo_id: str, repo_type: str, private: bool, created_at: float | None = None) -> _Repo:
        now = created_at if created_at is not None else time.time()
        initial = Commit(_new_sha(), None, "initial commit", "", now, {})
        repo = _Repo(repo_id, repo_type, private, now, [initial])
        self._repos[(repo_type, repo_id)] = repo
        return repo

    def _commit(
        self,
        repo: _Repo,
        message: str,
        description: str,
        added: dict[str, StoredFile],
        deleted: tuple[str, ...],
    ) -> Commit:
        files = dict(repo.head.files)
        for path in deleted:
            if path.endswith("/"):
                for name in [n for n in files if n.startswith(path)]:
                    del files[name]
            else:
                files.pop(path, None)
                for name in [n for n in files if n.startswith(path + "/")]:
                    del files[name]
        files.update(added)
        commit = Commit(_new_sha(), repo.head.sha, message, description, max(time.time(), repo.head.date), files)
        repo.commits.append(commit)
        return commit

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.path.search(path) and fault.method in (None, method):
                    fault.remaining -= 1
                    return fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return None


def _folder_entry(path: str) -> dict[str, Any]:
    return {"type": "directory", "oid": _git_oid(path.encode()), "size": 0, "path": path}


def _new_sha() -> str:
    return secrets.token_hex(20)


def _is_lfs_path(path: str, data: bytes | str) -> bool:
    return path.endswith(_LFS_SUFFIXES) or len(data) > _LFS_THRESHOLD


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    _current: tuple[str, str, str, str | None]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    # silence the default stderr access log; the hub keeps its own
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self.hub.users.get(auth[len("Bearer ") :].strip())
        return None

    def _has_bad_token(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and self._user() is None

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        # log before answering, so a client that has its answer always finds the request in ``hub.requests``
        method, path, query, user = self._current
        with self.hub._lock:
            self.hub.requests.append(RequestLog(method, path, query, status, user))
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for key, value in hdrs.items():
            self.send_header(key, value)
        if "Content-Length" not in hdrs:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, err: _HubError) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message, **err.extra}, headers)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, split.query
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        user = self._user()
        self._current = (method, path, query, user)
        try:
            fault = self.hub._take_fault(method, path)
            if fault is not None:
                raise _HubError(fault.status, fault.message)
            is_upload = path.startswith("/_lfs_upload/")
            if not is_upload and (self._has_bad_token() or (self.hub.require_token and user is None)):
                raise _HubError(401, "Invalid credentials in Authorization header")
            self._route(method, path, parse_qs(query), body, user)
        except _HubError as err:
            self._error(err)
        except Exception as exc:  # a bug in the fake: answer 500 and say so
            log.exception("fake hub: %s %s failed", method, path)
            self._error(_HubError(500, f"fake hub error: {type(exc).__name__}: {exc}"))

    # -- routing ----------------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, user: str | None) -> int:
        if path == "/api/whoami-v2" and method == "GET":
            if user is None:
                raise _HubError(401, "Invalid credentials in Authorization header")
            return self._ok(
                {
                    "type": "user",
                    "name": user,
                    "fullname": user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}},
                }
            )
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body or b"{}"), user)
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo(json.loads(body or b"{}"), user)
        if path == "/api/validate-yaml" and method == "POST":
            return self._ok({"errors": [], "warnings": []})
        if path.startswith("/_lfs_upload/") and method == "PUT":
            return self._lfs_put(path.rsplit("/", 1)[-1], body)
        m = re.fullmatch(r"/api/(models|datasets|spaces)", path)
        if m and method == "GET":
            return self._list(_REPO_TYPES[m[1]], query, user)
        m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
        if m:
            return self._repo_api(method, _REPO_TYPES[m[1]], m[2], m[3] or "", query, body, user)
        m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+?)\.git/info/lfs/objects/batch", path)
        if m and method == "POST":
            repo_type = _REPO_TYPES[m[1].rstrip("/")] if m[1] else "model"
            return self._lfs_batch(self._writable(repo_type, m[2], user), json.loads(body))
        m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            repo_type = _REPO_TYPES[m[1].rstrip("/")] if m[1] else "model"
            return self._resolve(self._readable(repo_type, m[2], user), m[3], unquote(m[4]))
        raise _HubError(404, f"fake hub: no route for {method} {path}")

    def _ok(self, payload: Any, headers: dict[str, str] | None = None) -> int:
        self._json(200, payload, headers)
        return 200

    def _get(self, repo_type: str, repo_id: str) -> _Repo | None:
        with self.hub._lock:
            return self.hub._repos.get((repo_type, repo_id))

    def _readable(self, repo_type: str, repo_id: str, user: str | None) -> _Repo:
        repo = self._get(repo_type, repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            raise _HubError(404 if user else 401, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, repo_type: str, repo_id: str, user: str | None) -> _Repo:
        if user is None:
            raise _HubError(401, "You must be authenticated to write", "RepoNotFound")
        repo = self._readable(repo_type, repo_id, user)
        if user != repo_id.split("/")[0]:
            raise _HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit_at(self, repo: _Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    # -- repos -------------------------------------------------------------------------------------------------------
    def _create_repo(self, payload: dict[str, Any], user: str | None) -> int:
        if user is None:
            raise _HubError(401, "You must be authenticated to create a repo")
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        if namespace != user:
            raise _HubError(403, f"You don't have the rights to create a repo under {namespace}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        url = f"{self.hub.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub._repos:
                raise _HubError(409, "You already created this repo", url=url)
            self.hub._create(repo_id, repo_type, private)
        return self._ok({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict[str, Any], user: str | None) -> int:
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        self._writable(repo_type, repo_id, user)
        with self.hub._lock:
            self.hub._repos.pop((repo_type, repo_id), None)
        return self._ok({})

    def _info(self, repo: _Repo, commit: Commit) -> dict[str, Any]:
        author = repo.repo_id.split("/")[0]
        return {
            "_id": repo.repo_id,
            "id": repo.repo_id,
            "author": author,
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": _iso(repo.created_at),
            "lastModified": _iso(repo.head.date),
            "siblings": [
                {"rfilename": f.path, "size": len(f.data), "blobId": f.oid}
                | ({"lfs": {"size": len(f.data), "sha256": f.sha256, "pointerSize": 134}} if f.lfs else {})
                for f in sorted(commit.files.values(), key=lambda f: f.path)
            ],
            "cardData": {},
        }

    def _list(self, repo_type: str, query: dict[str, list[str]], user: str | None) -> int:
        author = query.get("author", [""])[0]
        search = query.get("search", [""])[0]
        limit = int((query.get("limit") or ["0"])[0] or 0)
        full = query.get("full", [""])[0].lower() in ("true", "1")
        with self.hub._lock:
            repos = [r for (rtype, _), r in self.hub._repos.items() if rtype == repo_type]
        out = []
        for repo in sorted(repos, key=lambda r: r.created_at, reverse=True):
            namespace = repo.repo_id.split("/")[0]
            if repo.private and user != namespace:
                continue
            if author and namespace != author:
                continue
            if search and search.lower() not in repo.repo_id.lower():
                continue
            info = self._info(repo, repo.head)
            if not full:
                del info["siblings"]
            out.append(info)
        if limit:
            out = out[:limit]
        return self._ok(out)

    def _repo_api(
        self,
        method: str,
        repo_type: str,
        repo_id: str,
        rest: str,
        query: dict[str, list[str]],
        body: bytes,
        user: str | None,
    ) -> int:
        if rest == "" and method == "GET":
            repo = self._readable(repo_type, repo_id, user)
            return self._ok(self._info(repo, repo.head))
        m = re.fullmatch(r"revision/(.+)", rest)
        if m and method == "GET":
            repo = self._readable(repo_type, repo_id, user)
            return self._ok(self._info(repo, self._commit_at(repo, m[1])))
        if rest == "settings" and method == "PUT":
            repo = self._writable(repo_type, repo_id, user)
            payload = json.loads(body or b"{}")
            with self.hub._lock:
                if "private" in payload:
                    repo.private = bool(payload["private"])
                if payload.get("visibility") in ("public", "private"):
                    repo.private = payload["visibility"] == "private"
            return self._ok({})
        m = re.fullmatch(r"preupload/([^/]+)", rest)
        if m and method == "POST":
            repo = self._writable(repo_type, repo_id, user)
            return self._preupload(self._commit_at(repo, m[1]), json.loads(body))
        m = re.fullmatch(r"commit/([^/]+)", rest)
        if m and method == "POST":
            repo = self._writable(repo_type, repo_id, user)
            return self._commit(repo, m[1], body)
        m = re.fullmatch(r"tree/([^/]+)(?:/(.*))?", rest)
        if m and method == "GET":
            repo = self._readable(repo_type, repo_id, user)
            recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
            return self._tree(self._commit_at(repo, m[1]), unquote(m[2] or "").strip("/"), recursive)
        m = re.fullmatch(r"paths-info/([^/]+)", rest)
        if m and method == "POST":
            repo = self._readable(repo_type, repo_id, user)
            form = parse_qs(body.decode())
            return self._paths_info(self._commit_at(repo, m[1]), form.get("paths", []))
        m = re.fullmatch(r"commits/([^/]+)", rest)
        if m and method == "GET":
            repo = self._readable(repo_type, repo_id, user)
            commit = self._commit_at(repo, m[1])
            chain = [c for c in repo.commits if c.date <= commit.date][::-1]
            return self._ok(
                [
                    {"id": c.sha, "title": c.message, "message": c.description, "authors": [], "date": _iso(c.date)}
                    for c in chain
                ]
            )
        if rest == "refs" and method == "GET":
            repo = self._readable(repo_type, repo_id, user)
            branch = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head.sha}
            return self._ok({"branches": [branch], "converts": [], "tags": []})
        raise _HubError(404, f"fake hub: no route for {method} /api/{repo_type}s/{repo_id}/{rest}")

    # -- commits -----------------------------------------------------------------------------------------------------
    def _preupload(self, commit: Commit, payload: dict[str, Any]) -> int:
        files = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            sample = base64.b64decode(item.get("sample", ""))
            lfs = path.endswith(_LFS_SUFFIXES) or size > _LFS_THRESHOLD or b"\0" in sample
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    # what the client compares to decide "unchanged": sha256 for LFS files, git sha1 otherwise
                    "oid": (existing.sha256 if existing.lfs else existing.oid) if existing is not None else None,
                }
            )
        return self._ok({"files": files, "commitOid": commit.sha})

    def _lfs_batch(self, repo: _Repo, payload: dict[str, Any]) -> int:
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            with self.hub._lock:
                known = oid in self.hub._lfs
                if not known:
                    key = secrets.token_hex(12)
                    self.hub._uploads[key] = (oid, size)
            if not known:
                entry["actions"] = {"upload": {"href": f"{self.hub.endpoint}/_lfs_upload/{key}", "header": {}}}
            objects.append(entry)
        return self._ok({"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, key: str, body: bytes) -> int:
        with self.hub._lock:
            expected = self.hub._uploads.pop(key, None)
        if expected is None:
            raise _HubError(403, "unknown or used upload URL")
        oid, size = expected
        if hashlib.sha256(body).hexdigest() != oid or len(body) != size:
            raise _HubError(400, "uploaded content does not match the announced sha256/size")
        with self.hub._lock:
            self.hub._lfs[oid] = body
        self._send(200, b"", {"ETag": f'"{oid}"'})
        return 200

    def _commit(self, repo: _Repo, revision: str, body: bytes) -> int:
        if unquote(revision) not in ("main", "refs/heads/main"):
            raise _HubError(400, "the fake Hub commits to main only")
        header: dict[str, Any] = {}
        added: dict[str, StoredFile] = {}
        deleted: list[str] = []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            op = json.loads(line)
            key, value = op["key"], op["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = value["content"]
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                added[value["path"]] = StoredFile(value["path"], data, False)
            elif key == "lfsFile":
                with self.hub._lock:
                    data = self.hub._lfs.get(value["oid"])
                if data is None:
                    raise _HubError(422, f"LFS object {value['oid']} was never uploaded")
                added[value["path"]] = StoredFile(value["path"], data, True)
            elif key == "deletedFile":
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted.append(value["path"].rstrip("/") + "/")
            else:
                raise _HubError(400, f"unknown commit operation {key!r}")
        with self.hub._lock:
            parent = header.get("parentCommit")
            if parent and parent != repo.head.sha:
                raise _HubError(412, "A commit has happened since. Please refresh and try again.")
            for path in deleted:
                if not path.endswith("/") and path not in repo.head.files:
                    raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            summary, description = header.get("summary", ""), header.get("description", "")
            commit = self.hub._commit(repo, summary, description, added, tuple(deleted))
        url = f"{self.hub.endpoint}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
        return self._ok({"commitUrl": url, "commitOid": commit.sha, "success": True})

    # -- reading -----------------------------------------------------------------------------------------------------
    def _tree(self, commit: Commit, base: str, recursive: bool) -> int:
        prefix = base + "/" if base else ""
        if base and not any(p.startswith(prefix) for p in commit.files):
            raise _HubError(404, f"{base} does not exist on this revision", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for path, stored in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            # directories on the way
            for depth in range(1, len(parts)):
                if not recursive and depth > 1:
                    break
                folder = prefix + "/".join(parts[:depth])
                if folder not in entries:
                    entries[folder] = _folder_entry(folder) | {"lastCommit": commit.last_commit()}
            if recursive or len(parts) == 1:
                entries[path] = stored.tree_entry(commit)
        return self._ok(list(entries.values()))

    def _paths_info(self, commit: Commit, paths: list[str]) -> int:
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry(commit))
            elif path == "" or any(p.startswith(path + "/") for p in commit.files):
                out.append(_folder_entry(path))
        return self._ok(out)

    def _resolve(self, repo: _Repo, revision: str, path: str) -> int:
        commit = self._commit_at(repo, revision)
        stored = commit.files.get(path)
        if stored is None:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = stored.data
        etag = stored.sha256 if stored.lfs else stored.oid
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
        }
        if stored.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        status = 200
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m:
            start = int(m[1]) if m[1] else max(len(data) - int(m[2] or 0), 0)
            end = int(m[2]) if m[1] and m[2] else len(data) - 1
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return 416
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
            status = 206
        headers["Content-Length"] = str(len(data))
        self._send(status, data, headers)
        return status


# -- pointing huggingface_hub and datasets at a fake Hub -----------------------------------------------------------


def _set_environ(values: Mapping[str, str | None]) -> None:
    """Set each variable to its value, or unset it where the value is ``None``."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def hub_environment(endpoint: str | FakeHub, *, home: Path, token: str | None = DEFAULT_TOKEN) -> Iterator[None]:
    """Point ``huggingface_hub`` and ``datasets`` (already imported or not) at ``endpoint`` and keep every cache and
    the token file under ``home``; restore everything on exit.

    Both libraries read ``HF_ENDPOINT`` (and the cache and offline settings) into module constants at import time, so
    setting the environment variable is not enough once they are imported: the constants are patched too.
    """
    url = endpoint.endpoint if isinstance(endpoint, FakeHub) else endpoint
    home = Path(home)
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_TOKEN": token,
        "HF_OIDC_RESOURCE": None,
        "HUGGINGFACE_CO_STAGING": None,
    }
    saved_env = {key: os.environ.get(key) for key in env}
    saved_attrs: list[tuple[Any, str, Any]] = []

    def setattr_(obj: Any, name: str, value: Any) -> None:
        saved_attrs.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    _set_environ(env)
    try:
        from huggingface_hub import constants

        setattr_(constants, "ENDPOINT", url)
        setattr_(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        setattr_(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {urlsplit(url).hostname or "127.0.0.1"})
        setattr_(constants, "HF_HUB_DISABLE_XET", True)
        setattr_(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        setattr_(constants, "HF_HUB_OFFLINE", False)
        setattr_(constants, "HF_HOME", str(home))
        setattr_(constants, "HF_HUB_CACHE", str(home / "hub"))
        setattr_(constants, "HUGGINGFACE_HUB_CACHE", str(home / "hub"))
        setattr_(constants, "HF_ASSETS_CACHE", str(home / "assets"))
        setattr_(constants, "HF_TOKEN_PATH", str(home / "token"))
        setattr_(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
        setattr_(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
        from datasets import config

        setattr_(config, "HF_ENDPOINT", url)
        setattr_(config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
        setattr_(config, "HF_HUB_OFFLINE", False)
        setattr_(config, "HF_DATASETS_OFFLINE", False)
        setattr_(config, "HF_CACHE_HOME", str(home))
        setattr_(config, "HF_DATASETS_CACHE", home / "datasets")
        setattr_(config, "HF_MODULES_CACHE", home / "modules")
        setattr_(config, "DOWNLOADED_DATASETS_PATH", home / "datasets" / config.DOWNLOADED_DATASETS_DIR)
        setattr_(
            config,
            "EXTRACTED_DATASETS_PATH",
            home / "datasets" / config.DOWNLOADED_DATASETS_DIR / config.EXTRACTED_DATASETS_DIR,
        )
        yield
    finally:
        for obj, name, value in reversed(saved_attrs):
            setattr(obj, name, value)
        _set_environ(saved_env)
