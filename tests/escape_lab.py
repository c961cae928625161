"""A catalogue of sandbox escape and abuse attempts, and a lab that runs them and checks that none succeeds.

Used by ``tests/test_sandbox_escapes.py`` (one test per attempt) and ``benchmarks/security_suite.py`` (counts).
A test lab, not part of the installed packages: it lives beside the tests that use it.

The :class:`EscapeLab` builds, in a fresh temporary directory::

    outside/secret.txt        a file holding a canary string (must never be read, listed or changed)
    work/                     the sandbox (working directory of the tools)
        notes.txt, redos.txt, big.bin (11 MB, sparse), fifo (a named pipe), sub/
        link_out -> ../outside/secret.txt, link_dir_out -> ../outside, link_abs -> <absolute outside path>
        hard_link             a hard link to outside/secret.txt

plus canary HTTP servers on ``127.0.0.1`` (and ``::1`` when available) that count every connection, two harmless
sleeping Python processes (one unrelated, one started by *another* run's tool context) whose command lines carry
the canary, and canary environment variables (a token, a URL with a password, a key-looking value under an
innocent name). Every attempt runs with fresh tools (``get_tools`` + ``ToolRecorder``) and is then checked:
the canary appears in no output, ``outside/`` is byte-for-byte unchanged, no ``pwned*`` file exists, the canary
servers saw no connection, ``os.environ`` is unchanged, and every process is still alive.

Network attempts only ever target loopback (the canaries): private, link-local and metadata ranges are covered by
calling the address policy directly in the unit tests, never by connecting. Signals are never sent to a process
the lab did not start: every ``kill`` attempt below must be refused before any signal.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from smoltrace_tools import close_tools
from smoltrace_tools.errors import ToolRefusal

__all__ = ["ATTEMPTS", "Attempt", "AttemptResult", "EscapeLab", "run_suite"]

logger = logging.getLogger(__name__)

Expectation = Literal["refused", "contained"]
Outcome = Literal["refused", "contained", "escaped"]

#: The tools the lab gives every attempt (all sandboxed families).
LAB_TOOLS: tuple[str, ...] = (
    "read_file",
    "write_file",
    "list_directory",
    "search_files",
    "grep",
    "sed",
    "sort",
    "head_tail",
    "ps",
    "kill",
    "env",
    "which",
    "curl",
    "ping",
    "python_interpreter",
)
#: ``Attempt.tool`` for attempts written as CodeAgent code: run in smolagents' LocalPythonExecutor with the tools.
CODE = "<code>"


@dataclass(frozen=True)
class Attempt:
    """One try to escape or abuse the sandbox.

    ``expect`` is ``"refused"`` when the tool must raise a :class:`~smoltrace_tools.errors.ToolRefusal`, or
    ``"contained"`` when the call may return (or fail otherwise) as long as nothing leaks or changes (e.g. ``env
    get`` of a secret returns the name with the value hidden).
    """

    id: str
    category: str
    tool: str
    arguments: Callable[[EscapeLab], dict[str, Any]]
    expect: Expectation
    description: str
    must_not_contain: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttemptResult:
    attempt: Attempt
    outcome: Outcome
    detail: str
    duration_s: float

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.attempt.expect


# ------------------------------------------------------------------------------------------------------ the lab


class _CanaryServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        self.hits = 0
        self.lock = threading.Lock()
        super().__init__(address, _CanaryHandler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.lock:
            self.hits += 1
        return True


class _CanaryHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"CANARY-SERVED"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("canary server: " + format, *args)


def _start_canary(host: str, family: socket.AddressFamily, port: int = 0) -> _CanaryServer | None:
    try:
        server = _CanaryServer((host, port), family)
    except OSError:
        return None
    threading.Thread(target=server.serve_forever, name="smoltrace-canary", daemon=True).start()
    return server


@dataclass
class EscapeLab:
    """The directory layout, canaries and processes the attempts run against (a context manager)."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="smoltrace-escapes-")))
    tool_timeout_s: float = 10.0
    pattern_budget_s: float = 1.0
    canary: str = field(default_factory=lambda: "CANARY" + uuid.uuid4().hex)
    port: int = 0
    _servers: list[_CanaryServer] = field(default_factory=list)
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _env_before: dict[str, str] = field(default_factory=dict)
    _added_env: list[str] = field(default_factory=list)
    _outside_before: dict[str, str] = field(default_factory=dict)
    _other_context: Any = None
    unrelated_pid: int = 0
    other_run_pid: int = 0

    # ------------------------------------------------------------------------------------------- set-up

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    def __enter__(self) -> EscapeLab:
        try:
            self._build_files()
            self._start_servers()
            self._start_processes()
            self._set_env()
            self._outside_before = self._snapshot_outside()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _build_files(self) -> None:
        self.outside.mkdir(parents=True)
        (self.outside / "secret.txt").write_text(f"top secret: {self.canary}\n", encoding="utf-8")
        (self.outside / "dir").mkdir()
        (self.outside / "dir" / "inner.txt").write_text(f"inner {self.canary}\n", encoding="utf-8")
        work = self.work
        (work / "sub").mkdir(parents=True)
        (work / "notes.txt").write_text("alpha\nbeta\ngamma\n", encoding="utf-8")
        (work / "redos.txt").write_text("a" * 64 + "!\n", encoding="utf-8")
        with open(work / "big.bin", "wb") as fh:
            fh.truncate(11 * 1024 * 1024)
        os.mkfifo(work / "fifo")
        os.symlink("../outside/secret.txt", work / "link_out")
        os.symlink("../outside", work / "link_dir_out")
        os.symlink(self.outside / "secret.txt", work / "link_abs")
        os.link(self.outside / "secret.txt", work / "hard_link")

    def _start_servers(self) -> None:
        first = _start_canary("127.0.0.1", socket.AF_INET)
        if first is None:
            raise RuntimeError("cannot start the loopback canary server")
        self._servers.append(first)
        self.port = int(first.server_address[1])
        second = _start_canary("::1", socket.AF_INET6, self.port)
        if second is not None:
            self._servers.append(second)

    def _sleeper(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(300)", self.canary]

    def _start_processes(self) -> None:
        from smoltrace_tools.context import ToolContext

        unrelated = subprocess.Popen(self._sleeper(), stdin=subprocess.DEVNULL, start_new_session=True)
        self._children.append(unrelated)
        self.unrelated_pid = unrelated.pid
        self._other_context = ToolContext(working_dir=self.work)
        other = self._other_context.processes.spawn(self._sleeper())
        self._children.append(other)
        self.other_run_pid = other.pid

    def _set_env(self) -> None:
        values = {
            "SMOLTRACE_CANARY_TOKEN": f"tok-{self.canary}",
            "SMOLTRACE_CANARY_DB": f"postgres://app:{self.canary}@db.internal:5432/app",
            "SMOLTRACE_CANARY_PLAIN": f"sk-proj-{self.canary}",
        }
        for name, value in values.items():
            if name not in os.environ:
                self._added_env.append(name)
            os.environ[name] = value
        self._env_before = _environment()

    def close(self) -> None:
        for child in self._children:  # only processes this lab started
            if child.poll() is None:
                child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
            if child.stdout is not None:
                child.stdout.close()
        self._children.clear()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        for name in self._added_env:
            os.environ.pop(name, None)
        self._added_env.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- checks

    def _snapshot_outside(self) -> dict[str, str]:
        snapshot: dict[str, str] = {}
        for top, dirs, files in os.walk(self.outside, followlinks=False):
            for name in sorted(dirs + files):
                path = Path(top) / name
                rel = path.relative_to(self.outside).as_posix()
                st = path.lstat()
                if path.is_symlink():
                    snapshot[rel] = "link:" + os.readlink(path)
                elif path.is_file():
                    snapshot[rel] = f"file:{st.st_size}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
                else:
                    snapshot[rel] = "dir"
        return snapshot

    @property
    def hits(self) -> int:
        return sum(server.hits for server in self._servers)

    def violations(self) -> list[str]:
        """Everything that changed although it must not have (empty when the sandbox held)."""
        problems: list[str] = []
        if self._snapshot_outside() != self._outside_before:
            problems.append("the outside directory changed")
        pwned = [str(p) for p in self.base.rglob("pwned*")]
        if pwned:
            problems.append(f"files were created: {pwned}")
        if sorted(p.name for p in self.base.iterdir()) != ["outside", "work"]:
            problems.append("files appeared next to the working directory")
        if self.hits:
            problems.append(f"the loopback canary server saw {self.hits} connection(s)")
        if _environment() != self._env_before:
            changed = sorted(set(_environment().items()) ^ set(self._env_before.items()))
            problems.append(f"the evaluator's environment changed: {[k for k, _ in changed]}")
        for child in self._children:
            if child.poll() is not None:
                problems.append(f"process {child.pid} was killed")
        if os.getppid() == 1:
            problems.append("the parent process is gone")
        return problems

    def reset(self) -> None:
        """Undo what a failed attempt changed, so the next one starts clean (restart dead sleepers, etc.)."""
        for server in self._servers:
            with server.lock:
                server.hits = 0
        for name in set(_environment()) - set(self._env_before):
            os.environ.pop(name, None)
        os.environ.update(self._env_before)
        for path in list(self.base.rglob("pwned*")):
            with contextlib.suppress(OSError):
                path.unlink()

    # ------------------------------------------------------------------------------------------- running

    def tools(self) -> dict[str, Any]:
        """Fresh instrumented tools for one attempt (plus ``visit_webpage``, built without its optional extra)."""
        from smoltrace_tools import get_tools
        from smoltrace_tools.addresses import NetworkPolicy
        from smoltrace_tools.recording import ToolRecorder
        from smoltrace_tools.web import VisitWebpageTool

        policy = NetworkPolicy(resolver=_lab_resolver)
        tools = get_tools(LAB_TOOLS, working_dir=self.work, timeout_s=self.pattern_budget_s, network=policy)
        tools.append(VisitWebpageTool(tools[0].context))
        recorder = ToolRecorder(timeout_s=self.tool_timeout_s)
        instrumented = {t.name: t for t in recorder.instrument_all(tools)}
        instrumented["__recorder__"] = recorder
        return instrumented

    def run(self, attempt: Attempt) -> AttemptResult:
        tools = self.tools()
        recorder = tools.pop("__recorder__")
        arguments = attempt.arguments(self)
        started = time.perf_counter()
        output: str = ""
        error: BaseException | None = None
        try:
            output = (
                _run_code_in(tools, arguments["code"])
                if attempt.tool == CODE
                else str(tools[attempt.tool](**arguments))
            )
        except Exception as exc:  # the attempt's result
            error = exc
        duration = time.perf_counter() - started
        context = next(t.context for t in tools.values() if hasattr(t, "context"))
        context.processes.wait_all(5.0)  # let anything the attempt started finish before looking for its effects
        problems = self.violations()
        shown = output + (f"{type(error).__name__}: {error}" if error is not None else "")
        for marker in (self.canary, *attempt.must_not_contain):
            if marker in shown:
                problems.append(f"the output reveals {marker[:40]!r}")
        calls = recorder.calls
        if attempt.tool == CODE:
            pass  # agent code may call any number of tools
        elif len(calls) != 1 or (error is not None and not (calls[0].error or "").startswith(type(error).__name__)):
            problems.append(f"the call was not recorded as expected: {calls}")
        close_tools(tools.values())
        if problems:
            self.reset()
            return AttemptResult(attempt, "escaped", "; ".join(problems), duration)
        if isinstance(error, ToolRefusal):
            return AttemptResult(attempt, "refused", f"{type(error).__name__}: {error}", duration)
        detail = f"{type(error).__name__}: {error}" if error is not None else output
        return AttemptResult(attempt, "contained", detail[:300], duration)


def _run_code_in(tools: dict[str, Any], code: str) -> str:
    """Run ``code`` the way a CodeAgent does: smolagents' LocalPythonExecutor with the tools sent in."""
    from smolagents.local_python_executor import LocalPythonExecutor

    executor = LocalPythonExecutor(additional_authorized_imports=[], timeout_seconds=10)
    executor.send_tools(tools)
    result = executor(code)
    return f"{result.logs}{result.output}"


def _environment() -> dict[str, str]:
    """``os.environ`` without the variable pytest itself rewrites for every test."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _lab_resolver(host: str, port: int) -> list[str]:
    """The lab's DNS: a rebinding name that answers loopback; nothing ever asks a real DNS server."""
    table = {"rebind.test": ["127.0.0.1"], "rebind6.test": ["::1"]}
    if host.rstrip(".").lower() in table:
        return table[host.rstrip(".").lower()]
    raise OSError(f"{host!r} is not known in the lab")


# ------------------------------------------------------------------------------------------------ the catalogue


def _a(
    id: str,
    category: str,
    tool: str,
    arguments: Callable[[EscapeLab], dict[str, Any]],
    description: str,
    expect: Expectation = "refused",
    must_not_contain: tuple[str, ...] = (),
) -> Attempt:
    return Attempt(id, category, tool, arguments, expect, description, must_not_contain)


def _file(path: str, **more: Any) -> Callable[[EscapeLab], dict[str, Any]]:
    return lambda lab: {"file_path": path, **more}


def _url(template: str) -> Callable[[EscapeLab], dict[str, Any]]:
    return lambda lab: {"url": template.format(port=lab.port, outside=lab.outside)}


_LOOPBACK_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("ipv4", "http://127.0.0.1:{port}/"),
    ("localhost", "http://localhost:{port}/"),
    ("localhost-trailing-dot-case", "http://LocalHost.:{port}/"),
    ("subdomain-of-localhost", "http://evil.localhost:{port}/"),
    ("decimal", "http://2130706433:{port}/"),
    ("hex", "http://0x7f000001:{port}/"),
    ("octal", "http://0177.0.0.1:{port}/"),
    ("dotted-hex", "http://0x7f.0.0.1:{port}/"),
    ("short-form", "http://127.1:{port}/"),
    ("other-127-address", "http://127.0.0.2:{port}/"),
    ("ipv6-loopback", "http://[::1]:{port}/"),
    ("ipv4-mapped-ipv6", "http://[::ffff:127.0.0.1]:{port}/"),
    ("ipv4-mapped-ipv6-hex", "http://[::ffff:7f00:1]:{port}/"),
    ("ipv4-mapped-ipv6-long", "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/"),
    ("unspecified-0.0.0.0", "http://0.0.0.0:{port}/"),
    ("unspecified-zero", "http://0:{port}/"),
    ("unspecified-ipv6", "http://[::]:{port}/"),
    ("dns-rebinding-name", "http://rebind.test:{port}/"),
    ("dns-rebinding-ipv6", "http://rebind6.test:{port}/"),
    ("uppercase-scheme", "HTTP://127.0.0.1:{port}/"),
)

_SCHEMES: tuple[tuple[str, str], ...] = (
    ("file-etc-passwd", "file:///etc/passwd"),
    ("file-outside-secret", "file://{outside}/secret.txt"),
    ("gopher", "gopher://127.0.0.1:{port}/_GET%20/"),
    ("ftp", "ftp://127.0.0.1:{port}/"),
    ("dict", "dict://127.0.0.1:{port}/info"),
    ("credentials", "http://user:pass@127.0.0.1:{port}/"),
    ("at-sign-confusion", "http://127.0.0.1:{port}@example.com/"),
    ("header-injection", "http://127.0.0.1:{port}/\r\nHost: evil"),
    ("nul-byte", "http://127.0.0.1:{port}/\x00"),
)


def _catalogue() -> tuple[Attempt, ...]:
    attempts: list[Attempt] = [
        # --- paths
        _a("read-traversal", "path", "read_file", _file("../outside/secret.txt"),
           "read a file next to the working directory with ../"),
        _a("read-deep-traversal", "path", "read_file", _file("sub/../../outside/secret.txt"),
           "climb out through a sub-directory"),
        _a("read-absolute-outside", "path", "read_file", lambda lab: {"file_path": str(lab.outside / "secret.txt")},
           "absolute path outside the working directory"),
        _a("read-etc-passwd", "path", "read_file", _file("/etc/passwd"), "read /etc/passwd"),
        _a("read-proc-environ", "path", "read_file", _file("/proc/self/environ"),
           "read the evaluator's environment through /proc"),
        _a("read-proc-root", "path", "head_tail", _file("/proc/self/root/etc/hostname"),
           "reach / through /proc/self/root"),
        _a("read-nul", "path", "read_file", _file("notes.txt\x00../../outside/secret.txt"),
           "NUL byte in a path"),
        _a("read-dev-zero", "special-file", "read_file", _file("/dev/zero"),
           "read an endless device"),
        _a("read-fifo", "special-file", "read_file", _file("fifo"),
           "read a FIFO (would block forever)"),
        _a("tail-fifo", "special-file", "head_tail", _file("fifo", mode="tail"),
           "tail a FIFO"),
        _a("read-11mb", "size", "read_file", _file("big.bin"), "read an 11 MB file"),
        _a("grep-11mb", "size", "grep", _file("big.bin", pattern="x"), "grep an 11 MB file"),
        # --- symlinks and hard links
        _a("read-symlink-out", "symlink", "read_file", _file("link_out"),
           "read through a relative symlink that points outside"),
        _a("read-symlink-absolute", "symlink", "read_file", _file("link_abs"),
           "read through an absolute symlink that points outside"),
        _a("read-symlinked-dir", "symlink", "read_file", _file("link_dir_out/secret.txt"),
           "read through a symlinked directory"),
        _a("grep-symlink-out", "symlink", "grep", _file("link_out", pattern="secret"),
           "grep through a symlink"),
        _a("read-hard-link", "symlink", "read_file", _file("hard_link"),
           "read a hard link to an outside file"),
        _a("write-hard-link", "symlink", "write_file", _file("hard_link", content="pwned"),
           "overwrite an outside file through a hard link"),
        _a("list-symlinked-dir", "symlink", "list_directory", lambda lab: {"directory_path": "link_dir_out"},
           "list a directory through a symlink"),
        _a("list-root-hides-links", "symlink", "list_directory", lambda lab: {"directory_path": "."},
           "symlinks that point out are not listed", "contained", ("secret.txt",)),
        # --- globs and searches
        _a("list-parent", "glob", "list_directory", lambda lab: {"directory_path": ".."}, "list the parent directory"),
        _a("list-glob-parent", "glob", "list_directory", lambda lab: {"directory_path": ".", "pattern": "../*"},
           "glob ../* from the working directory"),
        _a("list-glob-deep-parent", "glob", "list_directory",
           lambda lab: {"directory_path": "sub", "pattern": "../../*"}, "glob ../../* from a sub-directory"),
        _a("list-glob-absolute", "glob", "list_directory", lambda lab: {"directory_path": ".", "pattern": "/etc/*"},
           "absolute glob pattern"),
        _a("list-glob-through-link", "glob", "list_directory",
           lambda lab: {"directory_path": ".", "pattern": "link_dir_out/*"},
           "glob into a symlinked directory", "contained", ("secret.txt", "inner.txt")),
        _a("list-absolute-root", "glob", "list_directory", lambda lab: {"directory_path": "/"}, "list /"),
        _a("search-parent", "glob", "search_files", lambda lab: {"directory": "..", "pattern": "*"},
           "search from the parent directory"),
        _a("search-pattern-parent", "glob", "search_files", lambda lab: {"directory": ".", "pattern": "../**/*.txt"},
           "search with a ../ pattern"),
        _a("search-names-through-links", "glob", "search_files", lambda lab: {"directory": ".", "pattern": "*.txt"},
           "a recursive name search does not follow links out", "contained", ("secret.txt", "inner.txt")),
        _a("search-content-through-links", "glob", "search_files",
           lambda lab: {"directory": ".", "pattern": "top secret", "search_type": "content"},
           "a content search does not read files outside", "contained"),
        # --- writes
        _a("write-traversal", "write", "write_file", _file("../pwned.txt", content="x"),
           "write next to the working directory"),
        _a("write-absolute-outside", "write", "write_file",
           lambda lab: {"file_path": str(lab.outside / "pwned.txt"), "content": "x"}, "write to an absolute path"),
        _a("write-through-symlink", "write", "write_file", _file("link_out", content="pwned"),
           "overwrite an outside file through a symlink"),
        _a("write-into-symlinked-dir", "write", "write_file",
           _file("link_dir_out/pwned.txt", content="x"), "create a file via a symlinked dir"),
        _a("append-through-symlink", "write", "write_file",
           _file("link_abs", content="pwned", mode="append"), "append through a symlink"),
        _a("write-fifo", "special-file", "write_file", _file("fifo", content="x"),
           "write into a FIFO"),
        _a("write-11mb", "size", "write_file", lambda lab: {"file_path": "pwned-big.txt", "content": "x" * (11 << 20)},
           "write an 11 MB file"),
        _a("write-nul", "path", "write_file", _file("pwned\x00.txt", content="x"),
           "NUL byte in a written path"),
        _a("sed-output-outside", "write", "sed",
           _file("notes.txt", command="s/a/b/", output_file="../pwned.txt"),
           "sed writing its result outside"),
        _a("sed-output-through-symlink", "write", "sed",
           _file("notes.txt", command="s/a/b/", output_file="link_out"),
           "sed overwriting an outside file through a symlink"),
        _a("sort-output-absolute", "write", "sort",
           lambda lab: {"file_path": "notes.txt", "output_file": str(lab.outside / "pwned.txt")},
           "sort writing to an absolute path outside"),
        _a("sort-input-outside", "path", "sort", _file("/etc/passwd"), "sort /etc/passwd"),
        # --- regular expressions
        _a("grep-redos", "regex", "grep", _file("redos.txt", pattern="(a|aa)+$"),
           "catastrophic backtracking in grep"),
        _a("sed-redos", "regex", "sed", _file("redos.txt", command="s/(a|aa)+$/x/"),
           "catastrophic backtracking in sed"),
        _a("grep-huge-pattern", "regex", "grep", lambda lab: {"file_path": "notes.txt", "pattern": "a" * 5000},
           "a 5000-character pattern"),
        _a("grep-nested-counts", "regex", "grep",
           _file("notes.txt", pattern="((a{1000}){1000}){1000}"),
           "nested counted repetition that takes minutes to compile"),
        # --- processes
        _a("kill-self", "process", "kill", lambda lab: {"pid": os.getpid()}, "kill the pytest process"),
        _a("kill-parent", "process", "kill", lambda lab: {"pid": os.getppid(), "force": True}, "kill the parent"),
        _a("kill-init", "process", "kill", lambda lab: {"pid": 1, "force": True}, "kill pid 1"),
        _a("kill-group-zero", "process", "kill", lambda lab: {"pid": 0}, "signal the whole process group"),
        _a("kill-everything", "process", "kill", lambda lab: {"pid": -1, "force": True}, "signal every process"),
        _a("kill-unrelated", "process", "kill", lambda lab: {"pid": lab.unrelated_pid, "force": True},
           "kill an unrelated process"),
        _a("kill-other-run", "process", "kill", lambda lab: {"pid": lab.other_run_pid},
           "kill a process started by another run's tools"),
        _a("kill-missing", "process", "kill", lambda lab: {"pid": 4_194_000}, "kill a pid that does not exist"),
        _a("ps-command-lines", "process", "ps", lambda lab: {"filter_name": "python", "limit": 500},
           "read secrets from other processes' command lines", "contained"),
        _a("which-path", "process", "which", lambda lab: {"command": "../../../bin/sh"}, "which with a path"),
        # --- environment
        _a("env-get-token", "env", "env", lambda lab: {"action": "get", "name": "SMOLTRACE_CANARY_TOKEN"},
           "read a secret-named variable", "contained"),
        _a("env-get-db-url", "env", "env", lambda lab: {"action": "get", "name": "SMOLTRACE_CANARY_DB"},
           "read a URL with a password", "contained"),
        _a("env-get-key-value", "env", "env", lambda lab: {"action": "get", "name": "SMOLTRACE_CANARY_PLAIN"},
           "read a key-looking value under an innocent name", "contained"),
        _a("env-list-all", "env", "env", lambda lab: {"action": "list"}, "list every variable", "contained"),
        _a("env-list-canary", "env", "env", lambda lab: {"action": "list", "filter_pattern": "*CANARY*"},
           "list the canary variables", "contained"),
        _a("env-set-api-base", "env", "env",
           lambda lab: {"action": "set", "name": "OPENAI_API_BASE", "value": "http://evil.example/v1"},
           "redirect the evaluator's model endpoint", "contained"),
        _a("env-set-ld-preload", "env", "env",
           lambda lab: {"action": "set", "name": "LD_PRELOAD", "value": "/tmp/evil.so"},
           "inject a library into later subprocesses", "contained"),
        _a("env-set-nul", "env", "env", lambda lab: {"action": "set", "name": "X", "value": "a\x00b"},
           "NUL byte in a value"),
        # --- CodeAgent code reaching behind the tools (run in smolagents' LocalPythonExecutor)
        _a("code-context-attribute", "code", CODE,
           lambda lab: {"code": "read_file.context.sandbox.root = '/'\nprint(read_file(file_path='/etc/hostname'))"},
           "widen the sandbox root through the tool object", "contained"),
        _a("code-getattr-spawn", "code", CODE,
           lambda lab: {"code": f"getattr(kill, 'context').processes.spawn(['/usr/bin/touch', '{lab.base}/pwned-a'])"},
           "start a process through the process registry", "contained"),
        _a("code-spawn-shell", "code", CODE,
           lambda lab: {"code": f"kill.context.processes.spawn(['/bin/sh', '-c', 'touch {lab.base}/pwned-b'])"},
           "run a shell command through the tool context", "contained"),
        _a("code-dunder-dict", "code", CODE, lambda lab: {"code": "print(read_file.__dict__)"},
           "read the tool's attributes through __dict__", "contained"),
        _a("code-network-policy", "code", CODE,
           lambda lab: {"code": f"curl.context.network = None\nprint(curl(url='http://127.0.0.1:{lab.port}/'))"},
           "replace the network policy", "contained"),
        _a("code-env-overlay-base", "code", CODE,
           lambda lab: {"code": "print(env.context.env.get('SMOLTRACE_CANARY_TOKEN'))"},
           "read a secret through the overlay object", "contained"),
        _a("code-interpreter-imports", "code", CODE,
           lambda lab: {"code": "python_interpreter.authorized_imports.append('os')\n"
                                f"python_interpreter(code='import os; os.system(\\'touch {lab.base}/pwned-c\\')')"},
           "authorize 'os' in the python_interpreter tool", "contained"),
        _a("code-interpreter-import-os", "code", CODE,
           lambda lab: {"code": f"python_interpreter(code='import os; os.system(\\'touch {lab.base}/pwned-d\\')')"},
           "import os inside the python_interpreter tool", "contained"),
        _a("code-open-builtin", "code", CODE, lambda lab: {"code": f"print(open('{lab.outside}/secret.txt').read())"},
           "open() a file outside directly", "contained"),
        _a("code-import-subprocess", "code", CODE,
           lambda lab: {"code": f"import subprocess\nsubprocess.run(['touch', '{lab.base}/pwned-e'])"},
           "import subprocess in agent code", "contained"),
        _a("code-forward-direct", "code", CODE,
           lambda lab: {"code": "print(read_file.forward(file_path='../outside/secret.txt'))"},
           "call forward() directly to skip checks", "contained"),
        # --- network
        *[
            _a(f"curl-loopback-{name}", "network", "curl", _url(url), f"curl to loopback: {url}")
            for name, url in _LOOPBACK_SPELLINGS
        ],
        *[_a(f"curl-scheme-{name}", "scheme", "curl", _url(url), f"refused URL: {url!r}") for name, url in _SCHEMES],
        _a("visit-loopback", "network", "visit_webpage", _url("http://127.0.0.1:{port}/"), "visit_webpage to loopback"),
        _a("visit-localhost", "network", "visit_webpage", _url("http://localhost:{port}/"), "visit_webpage localhost"),
        _a("visit-file", "scheme", "visit_webpage", _url("file:///etc/passwd"), "visit_webpage file://"),
        _a("ping-loopback", "network", "ping", lambda lab: {"host": "127.0.0.1", "count": 1}, "ping loopback"),
        _a("ping-localhost", "network", "ping", lambda lab: {"host": "localhost", "count": 1}, "ping localhost"),
        _a("ping-option-injection", "network", "ping", lambda lab: {"host": "-f 127.0.0.1"}, "inject a ping option"),
    ]  # fmt: skip
    ids = [a.id for a in attempts]
    assert len(ids) == len(set(ids)), "attempt ids must be unique"
    return tuple(attempts)


#: Every attempt, in a stable order.
ATTEMPTS: tuple[Attempt, ...] = _catalogue()


def run_suite(attempts: tuple[Attempt, ...] = ATTEMPTS) -> list[AttemptResult]:
    """Run ``attempts`` in one fresh :class:`EscapeLab` and return their results."""
    with EscapeLab() as lab:
        return [lab.run(a) for a in attempts]
