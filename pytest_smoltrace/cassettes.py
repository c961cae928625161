"""Record and replay: one cassette per item, so a benchmark reruns offline with the same verdicts at zero cost.

``--smoltrace-record-mode`` has pytest-recording's modes: ``none`` replays only and never touches the network (a
request without a recording is the item's error), ``once`` records an item that has no cassette yet and replays one
that has, ``new_episodes`` replays what matches and records the rest, ``all`` always records.

Where: not at the HTTP layer (vcrpy), but one level up, at the model's ``retryer`` — the call every smolagents API
model (litellm, OpenAI-compatible, HF inference, Ollama through litellm) makes with its client's completion function
(:mod:`.telemetry.usage` stands in for it). vcrpy patches the HTTP clients process-wide, so the items one process runs
at once (``--smoltrace-concurrency``, threads) would write into each other's cassettes; here the cassette is the
running item's (a context variable the runner sets in the agent thread), and the provider's own response object is
recorded and rebuilt, so smolagents parses it, OpenInference traces it and the usage probe reads it as if it came from
the network. Tools are recorded too (their full results) and replayed without running: a replay does not depend on
the clock (``get_current_time``), files or the network, and reports no external effect as newly executed.

Matching: a model request is matched by its place in the item's sequence, and checked on what decides the
conversation — the model and the task's user message. Later messages are not compared: they hold tool results, and
those come from the cassette too. A tool call is matched by its name and arguments (in order for repeated calls).

A cassette is JSON (``<cassette-dir>/<node id as a file name>.json``): the requests' checked parts, each response's
body, each tool call's result — no request headers, so no API key; any value of a secret-looking environment variable
is scrubbed before writing.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .options import RECORD_MODES

log = logging.getLogger(__name__)

__all__ = ["CURRENT_CASSETTE", "RECORD_MODES", "Cassette", "CassetteMiss", "CassetteShelf", "cassette_path", "scrub"]
CASSETTE_VERSION = 1
#: The running item's cassette (set by the runner in the agent thread; read by the model's retryer stand-in).
CURRENT_CASSETTE: contextvars.ContextVar[Cassette | None] = contextvars.ContextVar("smoltrace_cassette", default=None)
#: Environment variables whose values never reach a cassette (any name that looks like a credential).
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
SCRUBBED = "<scrubbed>"
#: The tool an agent answers with: not an external effect, never recorded.
FINAL_ANSWER = "final_answer"


class CassetteMiss(Exception):
    """A request (or tool call) has no recording where one is required; the item is an error outcome. Not transient:
    the retry layer does not retry it."""


def cassette_path(cassette_dir: Path, nodeid: str) -> Path:
    """``smoltrace/default::tool::weather_paris[repeat-1]`` →
    ``<dir>/cassette-default__tool__weather_paris-repeat-1.json`` (readable; a digest keeps long names unique; never
    ``smoltrace_*.json``, which pytest would collect as a task file)."""
    name = nodeid.removeprefix("smoltrace/").replace("::", "__").replace("/", "_")
    name = re.sub(r"\[(.*)\]$", r"-\1", name)
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "item"
    if len(safe) > 150:
        safe = safe[:120] + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return cassette_dir / f"cassette-{safe}.json"


# -- what is recorded of a request and a response ---------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p)
    return "" if content is None else str(content)


def request_summary(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The checked parts of a model request: the model and the task's (first) user message, plus the message count."""
    messages = kwargs.get("messages") or []
    user = next((_text(m.get("content")) for m in messages if isinstance(m, Mapping) and m.get("role") == "user"), "")
    # scrubbed here, not only when written: a recorded (scrubbed) message and today's compare alike
    return {"model": str(kwargs.get("model") or ""), "user": scrub(user), "messages": len(messages)}


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def first_difference(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """What differs between a recorded request and this one (None: they match)."""
    if recorded.get("user") != now.get("user"):
        return f"user message differs: recorded {_shorten(recorded.get('user', ''))!r}, now {_shorten(now['user'])!r}"
    if recorded.get("model") and now.get("model") and recorded["model"] != now["model"]:
        return f"model differs: recorded {recorded['model']!r}, now {now['model']!r}"
    return None


def dump_response(response: Any) -> dict[str, Any]:
    """A provider response as ``{"type": "module:Class", "body": {...}}`` (JSON-plain)."""
    kind = type(response)
    if hasattr(response, "model_dump"):
        body = response.model_dump(mode="json") if _takes_mode(response) else response.model_dump()
    elif isinstance(response, Mapping):
        body = dict(response)
    else:
        body = dict(vars(response))
    return {"type": f"{kind.__module__}:{kind.__qualname__}", "body": json.loads(json.dumps(body, default=str))}


def _takes_mode(response: Any) -> bool:
    try:
        response.model_dump(mode="json")
    except TypeError:
        return False
    return True


def load_response(data: Mapping[str, Any]) -> Any:
    """The provider's response object again (what :func:`dump_response` wrote)."""
    module_name, _, qualname = str(data.get("type", "")).partition(":")
    body: dict[str, Any] = dict(data.get("body") or {})
    if not module_name or module_name == "builtins":
        return body
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if hasattr(cls, "model_validate") and not module_name.startswith("litellm"):
        return cls.model_validate(body)
    if hasattr(cls, "parse_obj_as_instance"):  # huggingface_hub's generated types
        return cls.parse_obj_as_instance(body)
    return cls(**body)


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the value of every secret-looking environment variable (≥ 8 characters) replaced."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if value and len(value) >= 8 and SECRET_ENV.search(name) and value in text:
            text = text.replace(value, SCRUBBED)
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", r"\1" + SCRUBBED, text)


def _arguments_key(name: str, arguments: Mapping[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """A tool result as JSON keeps it (str, numbers, lists, dicts); anything else as its text."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


# -- one item's cassette ----------------------------------------------------------------------------------------------


@dataclass
class Cassette:
    """The cassette of one item in one mode: what it replays, what it records, and what went wrong."""

    path: Path
    nodeid: str
    mode: str
    recorded: list[dict[str, Any]] = field(default_factory=list)
    recorded_tools: list[dict[str, Any]] = field(default_factory=list)
    #: The cassette file existed when the item started.
    existed: bool = False
    #: Interactions and tool calls of this run, in order (what a save writes, after the replayed prefix).
    interactions: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    replayed_calls: int = 0
    live_calls: int = 0
    replayed_tools: int = 0
    #: The first request or tool call that had no recording where one was required (the item's error).
    miss: str | None = None
    _position: int = 0
    _live: bool = False
    _used_tools: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, cassette_dir: Path, nodeid: str, mode: str) -> Cassette:
        path = cassette_path(cassette_dir, nodeid)
        cassette = cls(path=path, nodeid=nodeid, mode=mode)
        if mode != "all" and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CassetteMiss(f"{nodeid}: cassette {path} cannot be read ({exc})") from None
            cassette.recorded = list(data.get("interactions") or [])
            cassette.recorded_tools = list(data.get("tools") or [])
            cassette.existed = True
        return cassette

    @property
    def replaying(self) -> bool:
        """Model responses and tool results come from the cassette (not yet switched to recording)."""
        return self.existed and not self._live

    @property
    def replayed(self) -> bool:
        """Every model call of the run came from the cassette (the run cost nothing)."""
        return self.replayed_calls > 0 and self.live_calls == 0

    def _fail(self, message: str) -> CassetteMiss:
        with self._lock:
            if self.miss is None:
                self.miss = message
        return CassetteMiss(message)

    # -- model calls ------------------------------------------------------------------------------------------------

    def model_call(self, call: Callable[[], Any], kwargs: Mapping[str, Any]) -> Any:
        """The response to this request: replayed, or made (``call``) and recorded."""
        request = request_summary(kwargs)
        with self._lock:
            position = self._position
            self._position += 1
        where = f"{self.nodeid}: cassette {self.path}"
        if self.replaying:
            if position < len(self.recorded):
                entry = self.recorded[position]
                difference = first_difference(entry.get("request") or {}, request)
                if difference is None:
                    self.replayed_calls += 1
                    self.interactions.append(entry)
                    return load_response(entry["response"])
                miss = f"{where}: request {position + 1} {difference}"
            else:
                miss = f"{where}: request {position + 1} has no recording (the cassette holds {len(self.recorded)})"
            if self.mode in ("none", "once"):
                raise self._fail(miss + f"; --smoltrace-record-mode {self.mode} does not record (new_episodes does)")
            self._live = True  # new_episodes: the conversation left the recording; the rest is recorded
            log.info("%s; recording the rest (new_episodes)", miss)
        elif self.mode == "none":
            raise self._fail(f"{where} does not exist; --smoltrace-record-mode none only replays")
        response = call()
        self.live_calls += 1
        self.interactions.append({"request": request, "response": dump_response(response)})
        return response

    # -- tool calls -------------------------------------------------------------------------------------------------

    def replay_tool(self, name: str, arguments: Mapping[str, Any]) -> tuple[bool, Any, str | None]:
        """``(found, result, error)`` of a recorded call of ``name`` with these arguments (while replaying)."""
        if name == FINAL_ANSWER or not self.replaying:
            return False, None, None
        key = _arguments_key(name, arguments)
        with self._lock:
            for index, entry in enumerate(self.recorded_tools):
                if index not in self._used_tools and entry.get("key") == key:
                    self._used_tools.add(index)
                    self.replayed_tools += 1
                    self.tools.append(entry)
                    return True, entry.get("result"), entry.get("error")
        shown = _shorten(json.dumps(arguments, default=str))
        message = f"{self.nodeid}: cassette {self.path}: tool call {name}({shown}) has no recording"
        if self.mode in ("none", "once"):
            raise self._fail(message)
        self._live = True
        return False, None, None

    def record_tool(self, name: str, arguments: Mapping[str, Any], result: Any, error: str | None) -> None:
        if name == FINAL_ANSWER:
            return
        entry = {"key": _arguments_key(name, arguments), "name": name, "result": _plain(result), "error": error}
        with self._lock:
            self.tools.append(entry)

    # -- the end of the item ----------------------------------------------------------------------------------------

    @property
    def needs_saving(self) -> bool:
        return self.live_calls > 0 and self.miss is None

    def save(self, meta: Mapping[str, Any]) -> None:
        """Write the cassette (what was replayed, then what was recorded), scrubbed of secrets, atomically."""
        document = {
            "version": CASSETTE_VERSION,
            "nodeid": self.nodeid,
            **meta,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "interactions": self.interactions,
            "tools": self.tools,
        }
        text = scrub(json.dumps(document, indent=1, ensure_ascii=False))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class CassetteShelf:
    """Where the cassettes of a run are, and in which mode they are used (``RunConfig.cassettes``)."""

    directory: Path
    mode: str

    def open(self, nodeid: str) -> Cassette:
        return Cassette.open(self.directory, nodeid, self.mode)
