"""Where a run keeps its run-wide limits (``--smoltrace-limits-url``): the store behind ``--smoltrace-max-rpm`` and
``--smoltrace-max-cost``, chosen by URL as pytest-benchmark chooses its storage.

=============================  ===========================================================================
URL                            store
=============================  ===========================================================================
(unset)                        :class:`FileStore` in this machine's temporary directory: every thread and xdist
                               worker of one machine (today's lock files); the controller starts the totals
``file://DIR``                 :class:`FileStore` in ``DIR`` (a directory several sessions share)
``redis://[:PW@]HOST[:PORT][/DB]``  :class:`RedisStore`: every host that reaches the Redis server
``rediss://…``                 the same over TLS
=============================  ===========================================================================

A store holds two kinds of state per run, each under a name (:data:`RATE`, :data:`COST`): a sliding window of
requests (:meth:`LimitsStore.take_slot`, :class:`Window`; the rate limiter in :mod:`.retry`) and a running total
(:meth:`LimitsStore.add`, the budget in :mod:`.budget`). Keys are namespaced by run id, so runs sharing a store never
mix. A shared store (``file://DIR``, Redis) is meant for several sessions of one run: the first session to start sets
the starting total and the others join it (:meth:`LimitsStore.start`); a run's numbers are forgotten
:data:`TTL_S` seconds after their last change.

The Redis store takes its clock from the Redis server (``TIME`` inside its Lua scripts), so hosts whose clocks
disagree still space their requests on one clock; each script runs atomically. ``redis`` (the PyPI client,
``pip install 'pytest-smoltrace[redis]'``) is imported only when a Redis URL is used. Messages name the URL without
its password (:meth:`LimitsLocation.public_url`).
"""

from __future__ import annotations

import os
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .shared import start_shared, update_shared, update_shared_json

FLAG = "--smoltrace-limits-url"
#: The schemes a limits URL may have, and the form of each (listed in the usage error for any other).
SCHEMES: dict[str, str] = {
    "file": "file://DIR",
    "redis": "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
    "rediss": "rediss://[[USER]:PASSWORD@]HOST[:PORT][/DB] (TLS)",
}
#: The rate limiter's state: the requests of the window.
RATE = "rate"
#: The budget's number: USD spent so far.
COST = "cost"
#: A run's numbers live this long after their last change (Redis ``EXPIRE``; a file older than this is stale).
TTL_S = 24 * 3600
#: Seconds to wait for the Redis server to answer (connection and each command).
REDIS_TIMEOUT_S = 5.0


class LimitsStoreError(Exception):
    """The store cannot be used (unsupported URL, server unreachable); the message names the URL, never a password."""


@dataclass(frozen=True)
class Window:
    """A sliding-window rate: at most ``capacity`` requests may *arrive* in any ``window_s`` seconds, each request at
    least ``interval_s`` after the one before (no bursts).

    A request's arrival is known only to lie between its grant and its end, so the store keeps, per request, the
    latest time it can have arrived: its end once it ended, else its grant plus ``pending_s`` (the longest a request
    can take: a session that died mid-request blocks no one for longer). A request is granted only when fewer than
    ``capacity`` requests can have arrived in the window before now: then no window, as the server counts, holds more
    than ``capacity``, however long each request took to leave the client and reach the server."""

    capacity: int
    window_s: float
    interval_s: float
    pending_s: float


class LimitsStore(ABC):
    """A run's shared numbers, keyed by name within the run."""

    #: ``file`` or ``redis`` (what ``metadata.json`` may say about the store, with its host).
    kind: str

    @abstractmethod
    def take_slot(self, name: str, window: Window, token: str) -> float:
        """Grant a request now (and return 0) when ``window`` allows one, recording it under ``token`` as in flight;
        else return the seconds after which to ask again (nothing recorded)."""

    @abstractmethod
    def end_slot(self, name: str, token: str) -> None:
        """The request ``token`` has ended (answered or failed): it arrived before now, so it counts until now plus the
        window, no longer until it could have timed out."""

    @abstractmethod
    def add(self, name: str, amount: float) -> float:
        """Add ``amount`` to the total ``name`` atomically; returns the new total."""

    @abstractmethod
    def total(self, name: str) -> float:
        """The total ``name`` (0 when nothing was added)."""

    @abstractmethod
    def start(self, name: str, value: float) -> float:
        """Start the total ``name`` at ``value``: a store of one session sets it; a shared store sets it only when
        no session of this run has (within :data:`TTL_S`). Returns the total in force."""

    def check(self) -> None:  # noqa: B027 (a store without a server has nothing to check)
        """Raise :class:`LimitsStoreError` when the store cannot be reached."""

    def close(self) -> None:  # noqa: B027
        """Release connections (a store is usable again after it: connections are made on demand)."""


def _wait(now: float, next_free: float, latest_desc: list[float], window: Window) -> float:
    """Seconds until a request may be granted: the spacing after the last grant, and the window (the
    ``capacity``-th latest possible arrival must have left it)."""
    wait = next_free - now
    if len(latest_desc) >= window.capacity:
        wait = max(wait, latest_desc[window.capacity - 1] + window.window_s - now)
    return max(wait, 0.0)


class FileStore(LimitsStore):
    """Numbers in small files ``DIR/smoltrace-<run id>.<name>``, each read and rewritten under ``fcntl.flock``
    (:mod:`.shared`): every process that sees ``DIR``. The clock is each process's own (``time.time``)."""

    kind = "file"

    def __init__(self, directory: Path, run_id: str, *, shared: bool) -> None:
        self.directory = directory
        self.run_id = run_id
        #: Several sessions use this directory: :meth:`start` keeps a total that another session started.
        self.shared = shared

    def path(self, name: str) -> Path:
        return self.directory / f"smoltrace-{self.run_id}.{name}"

    def take_slot(self, name: str, window: Window, token: str) -> float:
        waits: list[float] = []

        def take(state: dict[str, Any]) -> dict[str, Any] | None:
            now = time.time()  # read under the lock
            latest = {t: b for t, b in state.get("latest", {}).items() if b > now - window.window_s}
            wait = _wait(now, float(state.get("next", 0.0)), sorted(latest.values(), reverse=True), window)
            waits.append(wait)
            if wait > 0:
                return None
            latest[token] = now + window.pending_s
            return {"next": now + window.interval_s, "latest": latest}

        update_shared_json(self.path(name), take)
        return waits[0]

    def end_slot(self, name: str, token: str) -> None:
        def end(state: dict[str, Any]) -> dict[str, Any] | None:
            latest = state.get("latest", {})
            if token not in latest:
                return None
            latest[token] = min(latest[token], time.time())
            return state

        update_shared_json(self.path(name), end)

    def add(self, name: str, amount: float) -> float:
        return update_shared(self.path(name), lambda total: total + amount if amount else None)[1]

    def total(self, name: str) -> float:
        return update_shared(self.path(name), lambda _: None)[1]

    def start(self, name: str, value: float) -> float:
        return start_shared(self.path(name), value, keep_younger_than_s=TTL_S if self.shared else None)

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.path("probe")
            update_shared(probe, lambda _: None)
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise LimitsStoreError(f"cannot use the directory {self.directory}: {exc}") from None


# Both scripts take the time from the Redis server: one clock for every host. Numbers cross as strings (a Lua number
# in a reply is truncated to an integer). KEYS[1]: the key; ARGV[1]: the interval or amount; ARGV[2]: the TTL.
# KEYS[1]: a sorted set, token → the latest time that request can have arrived; KEYS[2]: the next free grant time.
# ARGV: capacity, window, interval, pending, token, TTL. Returns '0' (granted) or the seconds to wait.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
local wait = tonumber(redis.call('GET', KEYS[2]) or '0') - now
if redis.call('ZCARD', KEYS[1]) >= capacity then
  local nth = redis.call('ZREVRANGE', KEYS[1], capacity - 1, capacity - 1, 'WITHSCORES')
  wait = math.max(wait, tonumber(nth[2]) + window - now)
end
if wait > 0 then
  return string.format('%.6f', wait)
end
redis.call('ZADD', KEYS[1], string.format('%.6f', now + tonumber(ARGV[4])), ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('SET', KEYS[2], string.format('%.6f', now + tonumber(ARGV[3])), 'EX', tonumber(ARGV[6]))
return '0'
"""
_END_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local latest = redis.call('ZSCORE', KEYS[1], ARGV[1])
if latest and tonumber(latest) > now then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now), ARGV[1])
end
return 1
"""
_ADD_LUA = """
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return total
"""
_START_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return redis.call('GET', KEYS[1])
"""


class RedisStore(LimitsStore):
    """Numbers in a Redis server, keys ``smoltrace:<run id>:<name>``, each change one atomic Lua script."""

    kind = "redis"

    def __init__(self, url: str, run_id: str, public_url: str) -> None:
        self._url = url
        self.run_id = run_id
        self.public_url = public_url
        self._password = urlsplit(url).password
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def key(self, name: str) -> str:
        return f"smoltrace:{self.run_id}:{name}"

    def _connect(self) -> Any:
        if self._client is None:
            try:
                import redis
            except ImportError:
                raise LimitsStoreError(
                    f"{self.public_url} needs the redis client: pip install 'pytest-smoltrace[redis]'"
                ) from None
            client = redis.Redis.from_url(
                self._url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S, decode_responses=True
            )
            self._scripts = {
                name: client.register_script(lua)
                for name, lua in (("take", _TAKE_LUA), ("end", _END_LUA), ("add", _ADD_LUA), ("start", _START_LUA))
            }
            self._client = client
        return self._client

    def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self._connect()
        try:
            return self._scripts[script](keys=keys, args=args)
        except Exception as exc:  # redis.RedisError and socket errors
            raise self._error(exc) from None

    def _total(self, script: str, name: str, value: float) -> float:
        return float(self._call(script, [self.key(name)], [repr(float(value)), TTL_S]))

    def _error(self, exc: BaseException) -> LimitsStoreError:
        text = f"{type(exc).__name__}: {exc}"
        if self._password:
            text = text.replace(self._password, "***")
        return LimitsStoreError(f"cannot reach {self.public_url} ({text})")

    def take_slot(self, name: str, window: Window, token: str) -> float:
        keys = [self.key(name), self.key(f"{name}:next")]
        args = [window.capacity, repr(window.window_s), repr(window.interval_s), repr(window.pending_s), token, TTL_S]
        return max(float(self._call("take", keys, args)), 0.0)

    def end_slot(self, name: str, token: str) -> None:
        self._call("end", [self.key(name)], [token])

    def add(self, name: str, amount: float) -> float:
        return self._total("add", name, amount) if amount else self.total(name)

    def total(self, name: str) -> float:
        client = self._connect()
        try:
            value = client.get(self.key(name))
        except Exception as exc:
            raise self._error(exc) from None
        return float(value) if value is not None else 0.0

    def start(self, name: str, value: float) -> float:
        return self._total("start", name, value)

    def check(self) -> None:
        client = self._connect()
        try:
            client.ping()
        except Exception as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass(frozen=True)
class LimitsLocation:
    """Where one run's limits live: the URL as given (None: this machine's temporary directory) and the run id.

    Hashable (it travels in :class:`~pytest_smoltrace.models.ModelSpec`); :meth:`open` makes the store."""

    url: str | None
    run_id: str

    @property
    def public_url(self) -> str:
        """The URL without userinfo or query (a password never reaches a message or a file)."""
        if self.url is None:
            return f"file://{tempfile.gettempdir()} (default)"
        from .settings import redact_url

        return redact_url(self.url)

    def open(self) -> LimitsStore:
        """The store; :class:`LimitsStoreError` for a URL that names none (connections are made on first use)."""
        if self.url is None:
            return FileStore(Path(tempfile.gettempdir()), self.run_id, shared=False)
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise LimitsStoreError(f"unsupported URL {self.public_url!r}; supported: {', '.join(SCHEMES.values())}")
        if scheme == "file":
            text = unquote(self.url[len("file://") :]) if self.url.lower().startswith("file://") else ""
            if not text:
                raise LimitsStoreError(f"{self.public_url!r} names no directory; expected {SCHEMES['file']}")
            directory = Path(os.path.expanduser(text))
            return FileStore(directory if directory.is_absolute() else Path.cwd() / directory, self.run_id, shared=True)
        if not parts.hostname:
            raise LimitsStoreError(f"{self.public_url!r} names no host; expected {SCHEMES[scheme]}")
        return RedisStore(self.url, self.run_id, self.public_url)


def open_checked(location: LimitsLocation) -> LimitsStore:
    """The store of ``location``, reached once (a usage error before any item runs, rather than an error in each)."""
    store = location.open()
    store.check()
    return store
