"""The checks before a run: what would make every item fail is one usage error before the first item starts.

Run once, on the controller only (``not hasattr(config, "workerinput")``), from :func:`.roles.start`, before
anything heavy is imported (litellm, smolagents and datasets stay unimported; ``huggingface_hub`` is imported only to
look up a Hub dataset name) and before the run directory is made, so a failed check leaves no empty run directory:

- credentials: the API key the configured provider needs (:data:`CREDENTIALS`; a loopback ``--smoltrace-api-base``
  needs none, unknown litellm prefixes are not checked);
- the model server: a TCP connection to ``--smoltrace-api-base`` (or to the proxy that would carry the requests);
- the dataset: a task file or path that does not exist, a Hugging Face dataset name the Hub does not know. A Hub that
  cannot be reached does not stop the run (a warning; ``datasets`` may still load a cached copy, and the collection
  error says what went wrong); ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1`` skip the lookup;
- the output directory: writable and not full (a probe file is written and removed; nothing is created).

Each problem is one line naming the option and what was expected; all problems found are reported together.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pytest

from .generation import GENERATION_FIELDS
from .models import OLLAMA_DEFAULT_BASE, is_loopback
from .records import AGENT_TYPES
from .tasks import TASK_FILE_SUFFIXES

if TYPE_CHECKING:
    from .lineup import Contender
    from .records import ItemResult
    from .settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: litellm model prefix → the environment variables it reads the API key from (any one of them will do).
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "cohere_chat": ("COHERE_API_KEY", "CO_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_AI_TOKEN"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
    "openrouter": ("OPENROUTER_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "cerebras": ("CEREBRAS_API_KEY",),
    "nvidia_nim": ("NVIDIA_NIM_API_KEY",),
    "huggingface": ("HF_TOKEN", "HUGGINGFACE_API_KEY"),
}
#: The Hugging Face token for ``--smoltrace-provider inference`` (``hf auth login`` stores one in a file instead).
HF_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: Models that need no credentials and no server check (the plugin starts their server itself).
SELF_SERVED_MODELS = ("scripted",)
#: One TCP connect (name resolution included) to the model server may take this long.
CONNECT_TIMEOUT_S = 1.0
#: One Hub lookup of a dataset name may take this long; past it the dataset is not checked (a warning).
HUB_TIMEOUT_S = 3.0
#: Less free space than this in the output directory is a full disk: a run writes ≈15 KB per item.
MIN_FREE_BYTES = 1 << 20
_TRUE = ("1", "true", "yes", "on")


def check(
    config: pytest.Config,
    settings: Settings,
    contenders: Sequence[Contender],
    *,
    run_dir: Path | None,
    model_checks: bool = True,
) -> None:
    """Every check that applies to this session; a :class:`pytest.UsageError` listing each problem found.

    ``run_dir`` is the run directory the outputs will go to (None: no output files). Informational sessions
    (``--help``, ``--markers``) are not checked; sessions that run no item (``--collect-only``, ``--fixtures``) get
    only the dataset checks, which collection needs. ``model_checks=False``: the items run on other machines
    (``--tx ssh=…``), whose environment and network are theirs: credentials and model servers are not checked here."""
    if informational(config):
        return
    problems = find_problems(
        settings,
        contenders,
        base_dir=Path(config.invocation_params.dir),
        run_dir=run_dir,
        runs_items=runs_items(config),
        model_checks=model_checks,
    )
    if problems:
        raise pytest.UsageError("\n".join(problems))


def informational(config: pytest.Config) -> bool:
    """``--help`` / ``--markers``: pytest configures the plugins, then only prints."""
    return bool(getattr(config.option, "help", False) or getattr(config.option, "markers", False))


def runs_items(config: pytest.Config) -> bool:
    """Whether this session may run items (not ``--collect-only``, ``--fixtures``, ``--help``, …)."""
    option = config.option
    return not (
        informational(config)
        or getattr(option, "collectonly", False)
        or getattr(option, "showfixtures", False)
        or getattr(option, "show_fixtures_per_test", False)
    )


def find_problems(
    settings: Settings,
    contenders: Sequence[Contender],
    *,
    base_dir: Path,
    run_dir: Path | None,
    runs_items: bool = True,
    model_checks: bool = True,
) -> list[str]:
    """The problems of these settings and models, one line each (empty: the run may start)."""
    checks: list[Callable[[], str | None]] = []
    # replay only: no key, no server (they may be gone); items on other machines: theirs, not this one's
    if runs_items and model_checks and settings.record_mode != "none":
        for c in contenders:
            checks += [functools.partial(credential_problem, c), functools.partial(server_problem, c)]
    checks.append(lambda: dataset_problem(settings, base_dir))
    if runs_items and run_dir is not None:
        checks.append(lambda: output_dir_problem(settings.output_dir, run_dir))
    return [problem for problem in (c() for c in checks) if problem]


# ── credentials ───────────────────────────────────────────────────────────────────────────────────────────────────


def required_credentials(model: str | None, provider: str, api_base: str | None) -> tuple[str, ...]:
    """The environment variables one of which must hold a key for this model (empty: nothing to check)."""
    if not model or model in SELF_SERVED_MODELS or _is_local(model) or is_loopback(api_base):
        return ()
    if provider == "litellm":
        prefix, sep, _ = model.partition("/")
        return CREDENTIALS.get(prefix, ()) if sep else ()
    if provider == "inference" and not api_base:  # another endpoint than HF's router may need no token
        return HF_TOKEN_ENV
    if provider == "openai":  # the openai SDK refuses to start without a key, whatever the server
        return CREDENTIALS["openai"]
    return ()  # ollama, transformers: no key


def credential_problem(settings: Contender) -> str | None:
    names = required_credentials(settings.model, settings.provider, settings.api_base)
    if not names or any(os.environ.get(name, "").strip() for name in names):
        return None
    wanted = names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")
    if names == HF_TOKEN_ENV:
        if _stored_hf_token():
            return None
        return (
            f"--smoltrace-provider inference: {wanted} is not set and no Hugging Face token is stored; "
            "export HF_TOKEN=hf_… (or run `hf auth login`)"
        )
    prefix = str(settings.model).partition("/")[0]
    reader = (
        "the openai SDK reads the API key" if settings.provider == "openai" else f"litellm reads the {prefix}/ API key"
    )
    return (
        f"--smoltrace-model {settings.model}: {wanted} is not set ({reader} from it); "
        "export it, or point --smoltrace-api-base at a local server (a loopback URL needs no key)"
    )


def _stored_hf_token() -> bool:
    """Whether ``hf auth login`` left a token file where ``huggingface_hub`` looks for it (not imported for this)."""
    path = os.environ.get("HF_TOKEN_PATH")
    if not path:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
        )
        path = os.path.join(home, "token")
    try:
        return bool(Path(path).expanduser().read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


def _is_local(model: str) -> bool:
    from .localmodel import is_local

    return is_local(model)


# ── the model server ──────────────────────────────────────────────────────────────────────────────────────────────


def server_address(settings: Contender) -> str | None:
    """The URL the model's requests go to, when there is one to check (scripted and transformers: none)."""
    if not settings.model or settings.model in SELF_SERVED_MODELS or settings.provider == "transformers":
        return None
    if settings.api_base:
        return settings.api_base
    if settings.provider == "ollama" and not _is_local(settings.model):
        return OLLAMA_DEFAULT_BASE
    return None


def server_problem(settings: Contender, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    url = server_address(settings)
    if url is None:
        return None
    option = "--smoltrace-api-base" if settings.api_base else "--smoltrace-api-base (default for ollama)"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{option} {url}: expected an http:// or https:// URL with a host (e.g. http://127.0.0.1:8000/v1)"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"{option} {url}: {exc}"
    host, via = parts.hostname, ""
    proxy = _proxy_for(url)
    if proxy is not None:
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            host, via = proxy_parts.hostname, f" through the proxy {proxy}"
            try:
                port = proxy_parts.port or (443 if proxy_parts.scheme == "https" else 80)
            except ValueError:
                port = 80
    reason = connect_error(host, port, timeout)
    if reason is None:
        return None
    return f"{option} {url}: cannot connect to {host}:{port}{via} ({reason}); expected a running model server there"


def connect_error(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why a TCP connection to ``host:port`` fails within ``timeout`` (name resolution included); None: it works."""

    def attempt() -> str | None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except socket.gaierror as exc:
            return f"cannot resolve {host}: {exc.strerror or exc}"
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except OSError as exc:
            return exc.strerror or str(exc)

    finished, result = _within(attempt, timeout + 0.25)
    return result if finished else f"no answer within {timeout:g} s"


def _proxy_for(url: str) -> str | None:
    """The HTTP(S) proxy the environment routes ``url`` through (as httpx does), or None."""
    import urllib.request

    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _within(function: Callable[[], T], deadline: float) -> tuple[bool, T | None]:
    """``(True, function())`` when it returns within ``deadline`` seconds, else ``(False, None)`` (it is abandoned:
    a daemon thread, so a resolver or socket that hangs cannot hold the session)."""
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(function()), name="smoltrace-preflight", daemon=True)
    thread.start()
    thread.join(deadline)
    return (True, box[0]) if box else (False, None)


# ── the dataset ───────────────────────────────────────────────────────────────────────────────────────────────────


def dataset_kind(spec: str, base_dir: Path) -> str:
    """How ``--smoltrace-dataset`` will be read (as :func:`.tasks.load_source` does): ``none``, ``bundled``, ``file``
    (a .json/.jsonl file or a path), ``directory`` (a local dataset directory) or ``hub`` (a Hub dataset name)."""
    from .tasks import _looks_like_path, _unresolvable, bundled_names

    if not spec.strip() or spec.lower() == "none" or spec in bundled_names():
        return "none" if spec.lower() == "none" or not spec.strip() else "bundled"
    resolved = _resolve(spec, base_dir)
    if resolved.is_dir():
        return "directory"
    if spec.lower().endswith(TASK_FILE_SUFFIXES) or resolved.exists() or _looks_like_path(spec):
        return "file"
    return "file" if _unresolvable(resolved) else "hub"


def _resolve(spec: str, base_dir: Path) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_absolute() else base_dir / path


def dataset_problem(settings: Settings, base_dir: Path) -> str | None:
    spec = settings.dataset
    kind = dataset_kind(spec, base_dir)
    if kind == "file":
        from .tasks import _not_found

        resolved = _resolve(spec, base_dir)
        if resolved.is_file():
            if spec.lower().endswith(TASK_FILE_SUFFIXES):
                return None
            return (
                f"--smoltrace-dataset {spec}: task files must end in .json or .jsonl; got {resolved.name!r} "
                "(other formats load from a dataset directory)"
            )
        missing = "file not found" if spec.lower().endswith(TASK_FILE_SUFFIXES) else "no such file or directory"
        return f"--smoltrace-dataset {spec}: {_not_found(resolved, missing)}; expected an existing .json/.jsonl file"
    if kind == "hub":
        return hub_problem(spec, settings.revision)
    return None


def hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_problem(name: str, revision: str | None, timeout: float = HUB_TIMEOUT_S) -> str | None:
    """Whether the Hub (``HF_ENDPOINT``) knows dataset ``name`` (at ``revision``): one metadata request.

    A Hub that cannot be reached, or answers with a server error, is a warning, not a problem; offline mode skips it."""
    if hub_offline():
        log.debug("HF_HUB_OFFLINE: the dataset name %r is not checked", name)
        return None
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        DisabledRepoError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT

    def lookup() -> BaseException | None:
        try:
            HfApi(endpoint=endpoint).dataset_info(name, revision=revision, timeout=timeout)
        except Exception as exc:  # sorted out below
            return exc
        return None

    finished, error = _within(lookup, timeout + 0.5)
    if not finished:
        _hub_unreachable(name, endpoint, f"no answer within {timeout:g} s")
        return None
    if error is None or isinstance(error, GatedRepoError):  # gated: it exists (loading it needs access)
        return None
    from .tasks import bundled_names

    expected = (
        f"expected a bundled set ({', '.join(bundled_names()) or 'none'}), a .json/.jsonl file, "
        "a dataset directory or a Hugging Face dataset name (user/name)"
    )
    if isinstance(error, HFValidationError):
        return f"--smoltrace-dataset {name}: not a valid Hugging Face dataset name ({error}); {expected}"
    if isinstance(error, RevisionNotFoundError):
        return (
            f"--smoltrace-revision {revision}: dataset {name!r} has no revision {revision!r} on the Hugging Face Hub "
            f"({endpoint}); expected one of its branches, tags or commit shas"
        )
    if isinstance(error, DisabledRepoError):
        return f"--smoltrace-dataset {name}: dataset {name!r} is disabled on the Hugging Face Hub ({endpoint})"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, RepositoryNotFoundError) or (isinstance(error, HfHubHTTPError) and status in (401, 404)):
        return (
            f"--smoltrace-dataset {name}: no dataset {name!r} on the Hugging Face Hub ({endpoint}; or it is "
            f"private and the token in use cannot read it); {expected}"
        )
    _hub_unreachable(name, endpoint, f"{type(error).__name__}: {' '.join(str(error).split())[:200]}")
    return None


def _hub_unreachable(name: str, endpoint: str, reason: str) -> None:
    log.warning(
        "--smoltrace-dataset %s: the Hugging Face Hub (%s) could not be asked whether the dataset exists (%s); "
        "the run goes on (a cached copy may still load; HF_HUB_OFFLINE=1 skips this check)",
        name,
        endpoint,
        reason,
    )


# ── the output directory ──────────────────────────────────────────────────────────────────────────────────────────


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when something is there, else its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or "/")


def output_dir_problem(output_dir: Path, run_dir: Path) -> str | None:
    """Whether the run's files can be written under ``run_dir``: the nearest existing directory on its way gets a
    probe file (written, then removed) and must have :data:`MIN_FREE_BYTES` free; nothing is created."""
    where = _existing_ancestor(run_dir)
    if not where.is_dir():
        kind = "a file" if where.is_file() else "not a directory"
        return (
            f"--smoltrace-output-dir {output_dir}: {where} is {kind}; "
            "expected a writable directory (or a path where one can be made)"
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".smoltrace-probe-", dir=where)
    except OSError as exc:
        return write_problem(output_dir, where, exc)
    try:
        _write_all(handle, b"\0" * 4096)
    except OSError as exc:
        return write_problem(output_dir, where, exc)
    finally:
        os.close(handle)
        os.unlink(probe)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return None
    if free < MIN_FREE_BYTES:
        return (
            f"--smoltrace-output-dir {output_dir}: the disk is full ({_size(free)} free at {where}); "
            f"expected at least {_size(MIN_FREE_BYTES)} free for the run's files"
        )
    return None


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(handle, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_problem(output_dir: Path, where: Path, exc: OSError) -> str:
    """One line for a failed write under ``--smoltrace-output-dir`` (read-only, full, not a directory, …)."""
    reasons = {
        errno.EROFS: f"{where} is on a read-only file system",
        errno.ENOSPC: f"no space left on the device of {where} (the disk is full)",
        errno.EDQUOT: f"the disk quota is exceeded at {where}",
        errno.EACCES: f"permission denied: cannot write in {where}",
        errno.EPERM: f"permission denied: cannot write in {where}",
        errno.ENOTDIR: f"a part of {where} is a file, not a directory",
        errno.EEXIST: f"{where} exists and is not a directory",
    }
    reason = reasons.get(exc.errno or 0, f"cannot write in {where}: {exc.strerror or exc}")
    return f"--smoltrace-output-dir {output_dir}: {reason}; expected a writable directory with free space"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


# ── a resumed run ─────────────────────────────────────────────────────────────────────────────────────────────────

#: Settings a resumed run must share with the run it continues: what is run (model, provider, tasks, agent types),
#: and everything that can change a verdict for the same task (steps, limits, tools, prompts, imports).
RESUME_KEYS = (
    "model",
    "provider",
    "hf_inference_provider",
    "dataset",
    "split",
    "revision",
    "agent_type",
    "difficulty",
    "max_steps",
    "timeout",
    "tools",
    "tool_timeout",
    "search_provider",
    "mcp_server_url",
    "prompt_yml",
    "additional_imports",
    "models",
    "repeats",
    *GENERATION_FIELDS,
    "judge_model",
    "judge_provider",
    "judge_api_base",
    "task_preset",
    "field_map",
    "shard",  # a shard's run goes on as the same shard (resumed shards merge like the others)
)
#: How an unset value reads in a difference (``difficulty: journal all, now easy``).
_UNSET = {"difficulty": "all", "tools": "defaults only"}


@dataclass(frozen=True)
class Difference:
    """One setting that differs between the run being resumed (``before``) and this session (``now``)."""

    key: str
    before: Any
    now: Any

    def __str__(self) -> str:
        return f"{self.option}: journal {self._show(self.before)}, now {self._show(self.now)}"

    @property
    def option(self) -> str:
        return self.key.replace("_", "-")

    def _show(self, value: Any) -> str:
        if value is None or value == [] or value == "":
            return _UNSET.get(self.key, "none")
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def to_dict(self) -> dict[str, Any]:
        return {"option": self.option, "journal": self.before, "now": self.now}


def comparable(value: Any) -> Any:
    """A settings value as JSON reads it back (tuples and lists alike, paths as text)."""
    if isinstance(value, (tuple, list)):
        return [comparable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _models_as_list(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """``model`` as a list (settings.json of runs before --smoltrace-model was repeatable held a string)."""
    if isinstance(settings.get("model"), str):
        return {**settings, "model": [settings["model"]]}
    return settings


def settings_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[Difference]:
    """The :data:`RESUME_KEYS` whose values differ; a key ``before`` lacks (an older file) is not compared."""
    before, now = _models_as_list(before), _models_as_list(now)
    return [
        Difference(key, comparable(before[key]), comparable(now.get(key)))
        for key in RESUME_KEYS
        if key in before and comparable(before[key]) != comparable(now.get(key))
    ]


def journal_differences(
    settings: Settings, contenders: Sequence[Contender], results: Iterable[ItemResult]
) -> list[Difference]:
    """What the journal's records alone show (when no settings file is left): model(s), provider, agent types."""
    records = sorted((r.record for r in results), key=lambda record: record.started_at)
    if not records:
        return []
    latest, differences = records[-1], []
    if len(contenders) > 1:
        journaled = sorted({r.model_name for r in records})
        wanted = sorted(str(c.label) for c in contenders)
        if not set(journaled) <= set(wanted):
            differences.append(Difference("model", journaled, wanted))
    else:
        label, provider = recorded_model(contenders[0])
        if label is not None and latest.model != label:
            differences.append(Difference("model", latest.model, label))
        if provider is not None and latest.provider != provider:
            differences.append(Difference("provider", latest.provider, provider))
    types = {r.agent_type for r in records}
    wanted_types = set(AGENT_TYPES) if settings.agent_type == "both" else {settings.agent_type}
    if not types <= wanted_types:
        journaled_type = "both" if len(types) > 1 else next(iter(types))
        differences.append(Difference("agent_type", journaled_type, settings.agent_type))
    return differences


def recorded_model(contender: Contender) -> tuple[str | None, str | None]:
    """The model and provider a contender's records will carry, where known before any server starts."""
    if contender.model in SELF_SERVED_MODELS:
        return "openai/scripted", "openai"
    if _is_local(contender.model):
        return None, "local"  # the label names the weights, known once the server has started
    return contender.model, contender.provider
