"""A scripted, OpenAI- and Ollama-compatible model server for testing smolagents agents without a real LLM.

The server answers chat-completion requests from a *script*: a list of turns that is picked by a key (a
substring of the task text) and indexed by how many model turns the agent has already taken. It speaks
HTTP on 127.0.0.1, so real clients (litellm, the openai SDK, smolagents models) run unmodified.

Example::

    from smolagents import LiteLLMModel, ToolCallingAgent
    from pytest_smoltrace.testing import ScriptedModelServer

    script = [
        {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]},
        {"final_answer": "Sunny in Paris"},
    ]
    with ScriptedModelServer({"weather in Paris": script}) as srv:
        model = LiteLLMModel(model_id="openai/scripted", api_base=srv.base_url, api_key="sk-test")
        agent = ToolCallingAgent(tools=[get_weather], model=model)  # get_weather: your smolagents Tool
        assert agent.run("What is the weather in Paris?") == "Sunny in Paris"
        assert srv.usage_for("weather in Paris")["requests"] == 2

Scripts
    A script is either a list of turns (used for both agent types) or a dict
    ``{"tool": [turns], "code": [turns], "turns": [turns for both], "summary": "text"}``.
    A request uses the first script key (in insertion order) found in the text of its user-role messages.
    Its agent type is ``"tool"`` when the request carries a non-empty ``tools`` list, else ``"code"``; its turn
    index is the number of ``assistant`` messages in the request. Past the last turn the server answers the
    script's ``summary`` as plain text (what smolagents' forced final-answer call after ``max_steps`` gets).

    ``{"attempts": [script, script, ...]}`` gives each new conversation for the key (a request at turn index 0) the
    next of those scripts, round robin per agent type — fixed per-attempt outcomes for repeats. A conversation's later
    requests use the script its key's latest conversation took: give such scripts one turn each (an answer), or run
    their attempts one at a time.

Turns
    ``{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}``, ``{"final_answer": value}``,
    ``{"code": "...", "thought": "..."}``, ``{"content": "text"}`` and
    ``{"status": 500, "body": {...}, "times": N, "retry_after": s, "then": {turn}}``. Any turn may add
    ``"delay": seconds`` and ``"usage": {"prompt_tokens": P, "completion_tokens": C}``, with optionally
    ``"cached_tokens"`` (sent as ``prompt_tokens_details.cached_tokens``), ``"cache_creation_tokens"`` (sent as
    Anthropic's ``cache_creation_input_tokens``) and ``"reasoning_tokens"`` (``completion_tokens_details``); the
    server's ``usage_details`` gives them to every reply that does not set them (each capped at the prompt or
    completion count). :meth:`ScriptedModelServer.usage_for` sums them too.

Faults (for resilience tests, yours too)
    Any answering turn may add ``"fault"``, which spoils its 200 response (non-streaming requests):
    ``"invalid_json"`` (a body that is not JSON), ``"truncated"`` (the connection closes after half of the
    announced body), ``"reset"`` (the connection is reset before any response), ``"slow_drip"`` (the body arrives
    64 bytes at a time, 50 ms apart), ``"huge_body"`` (the answer's content padded to ``"fault_bytes"`` bytes,
    default 8 MiB) or ``"no_usage"`` (no ``usage`` object). ``"raw_usage": {...}`` sends that object as ``usage``
    as it is (negative or absurd counts), and a tool call's ``"arguments"`` may be a string, sent as it is (invalid
    JSON arguments). Faulty responses are logged with ``usage=None`` (nothing trustworthy was billed) and their
    ``fault``. A 429 storm is an error turn with ``"times"``.

The ``smoltrace_model_server`` fixture (from the installed plugin) gives a started server per test; the command line
tool ``python -m pytest_smoltrace.testing --scripts scripts.json --port 8000`` serves one until interrupted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

__all__ = [
    "DEFAULT_SUMMARY",
    "RequestLog",
    "Script",
    "ScriptedModelServer",
    "Turn",
]

logger = logging.getLogger(__name__)

#: A single scripted model answer (see the module docstring for the forms).
Turn = Mapping[str, Any]
#: A list of turns for both agent types, or a dict with ``tool`` / ``code`` / ``turns`` lists and ``summary``.
Script = Sequence[Turn] | Mapping[str, Any]
AgentKind = Literal["tool", "code"]
_Flavor = Literal["openai", "ollama"]

#: Text answered past the last turn of a script that sets no ``summary``.
DEFAULT_SUMMARY = "I was unable to finish the task."
_ACTION_KEYS = ("tool_calls", "final_answer", "code", "content", "status")
_TURN_KEYS = frozenset(
    {"tool_calls", "final_answer", "code", "thought", "content", "status", "body", "times", "retry_after", "then"}
    | {"delay", "usage", "fault", "fault_bytes", "raw_usage"}
)
#: Faults a turn can inject into its (otherwise successful) response; see the module docstring.
FAULTS = frozenset({"invalid_json", "truncated", "reset", "slow_drip", "huge_body", "no_usage"})
_SCRIPT_KEYS = frozenset({"tool", "code", "turns", "summary", "attempts"})


#: Usage detail keys a turn (or the server's ``usage_details``) may set: cache reads, cache writes, reasoning tokens.
USAGE_DETAIL_KEYS = frozenset({"cached_tokens", "cache_creation_tokens", "reasoning_tokens"})
USAGE_KEYS = frozenset({"prompt_tokens", "completion_tokens"}) | USAGE_DETAIL_KEYS


@dataclass(frozen=True)
class RequestLog:
    """One request the server answered (any status)."""

    path: str
    key: str | None
    agent_type: AgentKind | None
    turn_index: int | None
    status: int
    usage: dict[str, int] | None
    body: dict[str, Any]
    #: ``time.time()`` when the request arrived (before any scripted delay).
    received_at: float = 0.0
    #: The fault injected into the response (see the module docstring), if any.
    fault: str | None = None


@dataclass(frozen=True)
class _Script:
    tool: tuple[Turn, ...]
    code: tuple[Turn, ...]
    summary: str
    #: ``{"attempts": [script, ...]}``: each new conversation (turn 0) takes the next of these, round robin.
    variants: tuple[_Script, ...] = ()


@dataclass
class _Reply:
    status: int = 200
    content: str | None = None
    tool_calls: list[tuple[str, str, dict[str, Any] | str]] = field(default_factory=list)  # (id, name, arguments)
    error_message: str | None = None
    error_body: dict[str, Any] | None = None
    retry_after: float | None = None
    delay: float = 0.0
    usage_override: Mapping[str, Any] | None = None
    fault: str | None = None
    fault_bytes: int = 8 * 1024 * 1024
    raw_usage: Mapping[str, Any] | None = None
    key: str | None = None
    agent_type: AgentKind | None = None
    turn_index: int | None = None


# ----------------------------------------------------------------------------------------------- scripts


def _validate_turn(turn: Any, where: str) -> None:
    if not isinstance(turn, Mapping):
        raise TypeError(f"{where}: a turn must be a dict, got {type(turn).__name__}")
    unknown = set(turn) - _TURN_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown turn keys {sorted(unknown)}")
    actions = [k for k in _ACTION_KEYS if k in turn]
    if not actions:
        raise ValueError(f"{where}: a turn needs one of {list(_ACTION_KEYS)}")
    if len(actions) > 1 and actions != ["tool_calls", "content"]:
        raise ValueError(f"{where}: conflicting turn forms {actions}")
    if "tool_calls" in turn:
        calls = turn["tool_calls"]
        if not isinstance(calls, Sequence) or isinstance(calls, str) or not calls:
            raise ValueError(f"{where}: tool_calls must be a non-empty list")
        for call in calls:
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise ValueError(f"{where}: each tool call needs a string 'name'")
            if not isinstance(call.get("arguments", {}), (Mapping, str)):
                raise ValueError(f"{where}: tool call arguments must be a dict (or a string, sent as it is)")
    if "code" in turn and not isinstance(turn["code"], str):
        raise ValueError(f"{where}: 'code' must be a string")
    if "content" in turn and not isinstance(turn["content"], str):
        raise ValueError(f"{where}: 'content' must be a string")
    if "status" in turn:
        status = turn["status"]
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"{where}: 'status' must be an HTTP error code (400-599)")
        if "times" in turn:
            if not isinstance(turn["times"], int) or turn["times"] < 0:
                raise ValueError(f"{where}: 'times' must be a non-negative int")
            if "then" not in turn:
                raise ValueError(f"{where}: 'times' needs a 'then' turn")
        if "then" in turn:
            _validate_turn(turn["then"], where + ".then")
    usage = turn.get("usage")
    if usage is not None and (
        not isinstance(usage, Mapping)
        or not set(usage) <= USAGE_KEYS
        or not all(isinstance(v, int) and v >= 0 for v in usage.values())
    ):
        raise ValueError(f"{where}: 'usage' must map some of {sorted(USAGE_KEYS)} to non-negative ints")
    delay = turn.get("delay", 0)
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ValueError(f"{where}: 'delay' must be a non-negative number")
    if "fault" in turn and turn["fault"] not in FAULTS:
        raise ValueError(f"{where}: 'fault' must be one of {sorted(FAULTS)}")
    if "fault_bytes" in turn and (not isinstance(turn["fault_bytes"], int) or turn["fault_bytes"] < 0):
        raise ValueError(f"{where}: 'fault_bytes' must be a non-negative int")
    if "raw_usage" in turn and not isinstance(turn["raw_usage"], Mapping):
        raise ValueError(f"{where}: 'raw_usage' must be a dict (sent as the response's usage as it is)")


def _turn_list(turns: Any, where: str) -> tuple[Turn, ...]:
    if not isinstance(turns, Sequence) or isinstance(turns, (str, bytes)):
        raise TypeError(f"{where}: turns must be a list of dicts")
    for i, turn in enumerate(turns):
        _validate_turn(turn, f"{where}[{i}]")
    return tuple(turns)


def _normalise_script(key: str, script: Script) -> _Script:
    where = f"script {key!r}"
    if isinstance(script, Mapping):
        unknown = set(script) - _SCRIPT_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown script keys {sorted(unknown)} (allowed: {sorted(_SCRIPT_KEYS)})")
        if "attempts" in script:
            variants = script["attempts"]
            if set(script) != {"attempts"} or not isinstance(variants, Sequence) or not variants:
                raise ValueError(f"{where}: 'attempts' must be a non-empty list of scripts, alone in its script")
            parsed = tuple(_normalise_script(f"{key}.attempts[{i}]", v) for i, v in enumerate(variants))
            if any(v.variants for v in parsed):
                raise ValueError(f"{where}: an attempt's script cannot have attempts of its own")
            return _Script(tool=(), code=(), summary=DEFAULT_SUMMARY, variants=parsed)
        both = _turn_list(script.get("turns", []), where + ".turns")
        summary = script.get("summary", DEFAULT_SUMMARY)
        if not isinstance(summary, str):
            raise TypeError(f"{where}: 'summary' must be a string")
        tool = _turn_list(script["tool"], where + ".tool") if "tool" in script else both
        code = _turn_list(script["code"], where + ".code") if "code" in script else both
        return _Script(tool=tool, code=code, summary=summary)
    turns = _turn_list(script, where)
    return _Script(tool=turns, code=turns, summary=DEFAULT_SUMMARY)


# ----------------------------------------------------------------------------------------------- requests


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, Mapping)]


_RETRY_MARK = "Now let's retry"


def _turn_index(messages: list[Mapping[str, Any]]) -> int:
    """How many model turns the conversation already holds.

    Each assistant message is a turn. A ToolCallingAgent step whose tool raised leaves no assistant message, only
    smolagents' error text ("… Now let's retry …") in a user message, so such errors count as turns too — except
    the first error right after an assistant message, which is that turn's own error (CodeAgent code errors).
    """
    turns = 0
    after_assistant = False
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            turns += 1
            after_assistant = True
        elif role in ("user", "tool", "tool-response"):
            text = _text_of(message.get("content"))
            errors = text.count(_RETRY_MARK)
            if errors and after_assistant and not text.lstrip().startswith("Observation"):
                errors -= 1
            turns += errors
            after_assistant = False
    return turns


def _user_text(body: Mapping[str, Any]) -> str:
    return "\n".join(_text_of(m.get("content")) for m in _messages(body) if m.get("role") == "user")


def _stop_sequences(body: Mapping[str, Any], flavor: _Flavor) -> list[str]:
    stop: Any = body.get("stop")
    if flavor == "ollama":
        options = body.get("options")
        stop = options.get("stop") if isinstance(options, Mapping) else None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


def _cut_at_stop(text: str | None, stops: Sequence[str]) -> str | None:
    if text is None:
        return None
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def _code_content(code: str, thought: str) -> str:
    return f"Thought: {thought}\n<code>\n{code}\n</code>"


# ----------------------------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: ScriptedModelServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "ScriptedModelServer/1"

    @property
    def _srv(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def setup(self) -> None:
        super().setup()
        with self._srv.connections_lock:
            self._srv.connections.add(self.connection)

    def finish(self) -> None:
        with self._srv.connections_lock:
            self._srv.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the server shut the connection down under us
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [_model_card("scripted")]})
        elif path == "/api/tags":
            self._send_json(200, {"models": [{"name": "scripted", "model": "scripted", "size": 0}]})
        elif path in ("", "/", "/health"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, _openai_error(f"no route for GET {path}", "not_found_error", 404))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        flavor: _Flavor
        if path in ("/v1/chat/completions", "/chat/completions"):
            flavor = "openai"
        elif path == "/api/chat":
            flavor = "ollama"
        elif path == "/api/show":
            self._send_json(200, {"model_info": {}, "details": {"family": "scripted"}, "capabilities": ["tools"]})
            return
        else:
            self._send_json(404, _openai_error(f"no route for POST {path}", "not_found_error", 404))
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
        except ValueError as exc:
            self._send_json(400, _openai_error(f"invalid JSON body: {exc}", "invalid_request_error", 400))
            return
        self._srv.owner._handle(self, path, flavor, body)


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "pytest-smoltrace"}


def _openai_error(message: str, kind: str, code: int | str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ScriptedModelServer:
    """A local chat-completions server that answers from scripts (see the module docstring).

    Routes: ``POST /v1/chat/completions`` and ``/chat/completions`` (OpenAI), ``POST /api/chat`` (Ollama, for
    litellm's ``ollama_chat/<model>`` with ``api_base=server.url``), ``GET /v1/models``. Streaming requests
    (``"stream": true``) get the whole answer as one SSE (OpenAI) or NDJSON (Ollama) chunk plus a usage chunk.

    Apart from the counters of ``times``-limited error turns the server keeps no conversation state, so client
    retries and concurrent agents work. It is thread-safe; every request is logged in :attr:`requests`.
    """

    def __init__(
        self,
        scripts: Mapping[str, Script] | None = None,
        *,
        latency_s: float = 0.0,
        default_reply: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        usage_details: Mapping[str, int] | None = None,
    ) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        if usage_details is not None and (
            not set(usage_details) <= USAGE_DETAIL_KEYS
            or not all(isinstance(v, int) and v >= 0 for v in usage_details.values())
        ):
            raise ValueError(f"usage_details must map some of {sorted(USAGE_DETAIL_KEYS)} to non-negative ints")
        self.usage_details = dict(usage_details or {})
        self.latency_s = float(latency_s)
        self.default_reply = default_reply
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._scripts: dict[str, _Script] = {}
        self._error_hits: dict[tuple[str | None, str | None, int | None, int], int] = {}
        self._attempt_counts: dict[tuple[str | None, str], int] = {}
        self._log: list[RequestLog] = []
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for key, script in (scripts or {}).items():
            self.add_script(key, script)

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> ScriptedModelServer:
        """Bind and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedModelServer is already running")
        httpd = _HTTPServer((self.host, self.port), self)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ScriptedModelServer", daemon=True
        )
        self._thread.start()
        logger.debug("ScriptedModelServer serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection. Safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.connections_lock:
            connections = list(httpd.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the Ollama ``api_base``)."""
        if self._httpd is None:
            raise RuntimeError("ScriptedModelServer is not running: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` (the OpenAI ``api_base``)."""
        return self.url + "/v1"

    # ------------------------------------------------------------------------------------- scripts and log

    def add_script(self, key: str, script: Script) -> None:
        """Add (or replace) the script used for requests whose user text contains ``key``."""
        if not isinstance(key, str) or not key:
            raise ValueError("a script key must be a non-empty string")
        normalised = _normalise_script(key, script)
        with self._lock:
            self._scripts[key] = normalised

    @property
    def requests(self) -> list[RequestLog]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def usage_for(self, key: str | None = None, agent_type: str | None = None) -> dict[str, int]:
        """Token usage summed over the successful (200) responses, optionally filtered by key and agent type.

        Returns ``{"prompt_tokens", "completion_tokens", "total_tokens", "requests"}`` plus each usage detail key
        (``cached_tokens``, …) that some response carried.
        """
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "requests": 0}
        for entry in self.requests:
            if entry.status != 200 or entry.usage is None:
                continue
            if key is not None and entry.key != key:
                continue
            if agent_type is not None and entry.agent_type != agent_type:
                continue
            totals["prompt_tokens"] += entry.usage["prompt_tokens"]
            totals["completion_tokens"] += entry.usage["completion_tokens"]
            totals["total_tokens"] += entry.usage["total_tokens"]
            for detail in USAGE_DETAIL_KEYS:
                if detail in entry.usage:
                    totals[detail] = totals.get(detail, 0) + entry.usage[detail]
            totals["requests"] += 1
        return totals

    def reset_log(self) -> None:
        """Forget the request log and the ``times`` error counters."""
        with self._lock:
            self._log.clear()
            self._error_hits.clear()
            self._attempt_counts.clear()

    # ------------------------------------------------------------------------------------- answering

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _match(self, body: Mapping[str, Any]) -> tuple[str | None, _Script | None]:
        text = _user_text(body)
        with self._lock:
            for key, script in self._scripts.items():
                if key in text:
                    return key, script
        return None, None

    def _variant(
        self, key: str | None, agent_type: AgentKind, turn_index: int, variants: tuple[_Script, ...]
    ) -> _Script:
        """The attempt's script: a conversation's first request takes the next variant (per key and agent type, round
        robin); its later requests get the variant the latest conversation of that key took."""
        with self._lock:
            counter = (key, agent_type)
            if turn_index == 0:
                self._attempt_counts[counter] = self._attempt_counts.get(counter, -1) + 1
            n = max(self._attempt_counts.get(counter, 0), 0)
        return variants[n % len(variants)]

    def _resolve(self, body: Mapping[str, Any]) -> _Reply:
        tools = body.get("tools")
        agent_type: AgentKind = "tool" if isinstance(tools, list) and tools else "code"
        turn_index = _turn_index(_messages(body))
        key, script = self._match(body)
        if script is None:
            if self.default_reply is not None:
                return _Reply(content=self.default_reply, agent_type=agent_type, turn_index=turn_index)
            snippet = _user_text(body)[:200]
            return _Reply(
                status=400,
                error_message=f"no script matches this request: {snippet}",
                agent_type=agent_type,
                turn_index=turn_index,
            )
        if script.variants:
            script = self._variant(key, agent_type, turn_index, script.variants)
        turns = script.tool if agent_type == "tool" else script.code
        turn: Turn = turns[turn_index] if turn_index < len(turns) else {"content": script.summary}
        reply = _Reply(key=key, agent_type=agent_type, turn_index=turn_index)
        depth = 0
        while "status" in turn:
            reply.delay += float(turn.get("delay", 0))
            if "times" in turn:
                counter = (key, agent_type, turn_index, depth)
                with self._lock:
                    hits = self._error_hits.get(counter, 0)
                    self._error_hits[counter] = hits + 1
                if hits >= int(turn["times"]):
                    turn = turn["then"]
                    depth += 1
                    continue
            reply.status = int(turn["status"])
            reply.error_body = dict(turn["body"]) if isinstance(turn.get("body"), Mapping) else None
            reply.error_message = f"scripted error {reply.status} (key={key!r}, turn {turn_index})"
            retry_after = turn.get("retry_after")
            reply.retry_after = float(retry_after) if retry_after is not None else None
            return reply
        reply.delay += float(turn.get("delay", 0))
        reply.usage_override = turn.get("usage")
        reply.fault = turn.get("fault")
        reply.fault_bytes = int(turn.get("fault_bytes", reply.fault_bytes))
        reply.raw_usage = turn.get("raw_usage")
        if "tool_calls" in turn:
            reply.content = turn.get("content")
            # Ids depend only on the position in the conversation, so token counts are identical run to run.
            for j, call in enumerate(turn["tool_calls"]):
                arguments = call.get("arguments", {})
                arguments = arguments if isinstance(arguments, str) else dict(arguments)
                reply.tool_calls.append((f"call_{turn_index}_{j}", call["name"], arguments))
        elif "final_answer" in turn:
            answer = turn["final_answer"]
            if agent_type == "tool":
                reply.tool_calls.append((f"call_{turn_index}_0", "final_answer", {"answer": answer}))
            else:
                reply.content = _code_content(f"final_answer({answer!r})", "I have the answer.")
        elif "code" in turn:
            reply.content = _code_content(turn["code"], str(turn.get("thought", "I will run some code.")))
        else:
            reply.content = str(turn["content"])
        return reply

    def _usage(self, body: Mapping[str, Any], reply: _Reply) -> dict[str, int]:
        override = reply.usage_override or {}
        prompt = override.get("prompt_tokens")
        if prompt is None:
            prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        completion = override.get("completion_tokens")
        if completion is None:
            text = (reply.content or "") + "".join(json.dumps(args) for _, _, args in reply.tool_calls)
            completion = max(1, len(text) // 4)
        usage = {
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "total_tokens": prompt + completion,
        }
        for key in sorted(USAGE_DETAIL_KEYS):
            value = override.get(key, self.usage_details.get(key))
            if value is not None:
                limit = usage["completion_tokens"] if key == "reasoning_tokens" else usage["prompt_tokens"]
                usage[key] = min(int(value), limit)
        if "cached_tokens" in usage and "cache_creation_tokens" in usage:
            usage["cache_creation_tokens"] = min(
                usage["cache_creation_tokens"], usage["prompt_tokens"] - usage["cached_tokens"]
            )
        return usage

    def _handle(self, handler: _Handler, path: str, flavor: _Flavor, body: dict[str, Any]) -> None:
        received_at = time.time()
        reply = self._resolve(body)
        wait = self.latency_s + reply.delay
        if wait > 0:
            time.sleep(wait)
        usage: dict[str, int] | None = None
        if reply.status == 200:
            reply.content = _cut_at_stop(reply.content, _stop_sequences(body, flavor))
            if reply.fault == "huge_body":
                reply.content = (reply.content or "").ljust(reply.fault_bytes)
            usage = self._usage(body, reply)
        stream = bool(body.get("stream"))
        faulty = reply.status == 200 and (reply.fault is not None or reply.raw_usage is not None) and not stream
        entry = RequestLog(
            path=path,
            key=reply.key,
            agent_type=reply.agent_type,
            turn_index=reply.turn_index,
            status=reply.status,
            usage=None if faulty and reply.fault != "huge_body" else usage,
            body=body,
            received_at=received_at,
            fault=reply.fault if faulty else None,
        )
        with self._lock:
            self._log.append(entry)
        if usage is None:
            self._send_error(handler, flavor, reply)
            return
        model = str(body.get("model") or "scripted")
        if faulty:
            if flavor == "openai":
                payload = _openai_completion(self._next_id(), model, reply, usage)
                key = "usage"
            else:
                payload = _ollama_response(model, reply, usage, done=True)
                key = "prompt_eval_count"
            if reply.raw_usage is not None:
                payload["usage"] = dict(reply.raw_usage)
            if reply.fault == "no_usage":
                for name in (key, "eval_count", "usage"):
                    payload.pop(name, None)
            _send_faulty(handler, reply.fault, json.dumps(payload).encode())
            return
        if flavor == "openai":
            if stream:
                handler._send(200, _openai_stream(self._next_id(), model, reply, usage), "text/event-stream")
            else:
                handler._send_json(200, _openai_completion(self._next_id(), model, reply, usage))
        elif stream:
            handler._send(200, _ollama_stream(model, reply, usage), "application/x-ndjson")
        else:
            handler._send_json(200, _ollama_response(model, reply, usage, done=True))

    @staticmethod
    def _send_error(handler: _Handler, flavor: _Flavor, reply: _Reply) -> None:
        message = reply.error_message or "scripted error"
        headers = {} if reply.retry_after is None else {"Retry-After": f"{reply.retry_after:g}"}
        if reply.error_body is not None:
            payload: dict[str, Any] = reply.error_body
        elif flavor == "ollama":
            payload = {"error": message}
        else:
            kind = "invalid_request_error" if reply.status < 500 else "server_error"
            if reply.status == 429:
                kind = "rate_limit_error"
            payload = _openai_error(message, kind, reply.status)
        handler._send_json(reply.status, payload, headers)


# ----------------------------------------------------------------------------------------------- payloads


def _send_faulty(handler: _Handler, fault: str | None, body: bytes) -> None:
    """Send a 200 response spoilt by ``fault`` (see the module docstring)."""
    if fault == "reset":
        # SO_LINGER 0: close() sends an RST, the client sees "connection reset by peer"
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()
        return
    if fault == "invalid_json":
        body = b'{"id": "chatcmpl-broken", "choices": [<<this is not JSON>>'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if fault == "truncated":
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)
        return
    if fault == "slow_drip":
        for start in range(0, len(body), 64):
            handler.wfile.write(body[start : start + 64])
            handler.wfile.flush()
            time.sleep(0.05)
        return
    handler.wfile.write(body)
    handler.wfile.flush()


def _openai_tool_calls(reply: _Reply, with_index: bool = False) -> list[dict[str, Any]]:
    calls = []
    for i, (call_id, name, args) in enumerate(reply.tool_calls):
        call: dict[str, Any] = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        if with_index:
            call["index"] = i
        calls.append(call)
    return calls


def _finish_reason(reply: _Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _openai_completion(n: int, model: str, reply: _Reply, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = _openai_tool_calls(reply)
    return {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}],
        "usage": _openai_usage(usage),
    }


def _openai_usage(usage: dict[str, int]) -> dict[str, Any]:
    """OpenAI's usage object: details nested as OpenAI sends them, cache writes as Anthropic (via litellm) does."""
    out: dict[str, Any] = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if "cached_tokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": usage["cached_tokens"]}
    if "cache_creation_tokens" in usage:
        out["cache_creation_input_tokens"] = usage["cache_creation_tokens"]
    if "reasoning_tokens" in usage:
        out["completion_tokens_details"] = {"reasoning_tokens": usage["reasoning_tokens"]}
    return out


def _openai_stream(n: int, model: str, reply: _Reply, usage: dict[str, int]) -> bytes:
    base = {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    delta: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        delta["tool_calls"] = _openai_tool_calls(reply, with_index=True)
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish_reason(reply)}]},
        {**base, "choices": [], "usage": _openai_usage(usage)},
    ]
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def _ollama_response(model: str, reply: _Reply, usage: dict[str, int], *, done: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or ""}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "function": {"name": name, "arguments": args}} for call_id, name, args in reply.tool_calls
        ]
    out: dict[str, Any] = {
        "model": model,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "message": message,
        "done": done,
    }
    if done:
        out.update(
            done_reason="stop",
            total_duration=0,
            load_duration=0,
            prompt_eval_count=usage["prompt_tokens"],
            prompt_eval_duration=0,
            eval_count=usage["completion_tokens"],
            eval_duration=0,
        )
    return out


def _ollama_stream(model: str, reply: _Reply, usage: dict[str, int]) -> bytes:
    last = _ollama_response(model, _Reply(), usage, done=True)
    lines = [_ollama_response(model, reply, usage, done=False), last]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()
