"""The recording proxy: per-item tool copies whose ``forward`` records every executed call.

``Tool.__call__`` ends in ``self.forward(*args, **kwargs)`` for both agent types (ToolCallingAgent calls
``tool(**arguments, sanitize_inputs_outputs=True)``, CodeAgent's interpreter calls ``tool(*args, **kwargs)``),
so replacing ``forward`` on a shallow copy records exactly the calls that ran — not the calls a model merely
wrote — while the tool instance the user passed in stays untouched and reusable.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from smoltrace_export.records import ToolCall, excerpt, jsonable

from .errors import ToolTimeout

if TYPE_CHECKING:
    from smolagents import Tool

logger = logging.getLogger(__name__)

__all__ = ["ReplayedToolError", "ToolRecorder", "ToolTape", "ToolTimeout", "bind_arguments", "call_with_timeout"]

_RECORDER_ATTR = "__smoltrace_recorder__"
_INSTANCE_FORWARD_ATTR = "__smoltrace_instance_forward__"
RESULT_LIMIT = 500
ARGUMENT_LIMIT = 2000


def bind_arguments(input_names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Name positional arguments after the tool's ``inputs`` (in order) and merge the keyword arguments.

    Positional arguments beyond the declared inputs are kept as ``arg<index>``. Values are made JSON-plain.
    """
    bound: dict[str, Any] = {}
    for index, value in enumerate(args):
        key = input_names[index] if index < len(input_names) else f"arg{index}"
        bound[key] = jsonable(value, ARGUMENT_LIMIT)
    for key, value in kwargs.items():
        bound[key] = jsonable(value, ARGUMENT_LIMIT)
    return bound


def _describe_error(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def call_with_timeout(
    name: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float
) -> Any:
    """``function(*args, **kwargs)`` on a daemon thread; :class:`ToolTimeout` when it is not done in ``timeout_s``.

    Python cannot stop a thread: a call that times out is *abandoned* and keeps running in the background until
    it returns (its result is dropped). The thread runs in a copy of the caller's context (``contextvars``), so
    tracing spans still nest under the caller's.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = context.run(function, *args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"smoltrace-tool:{name}", daemon=True)
    thread.start()
    if not done.wait(timeout_s):
        logger.warning("tool %s did not finish within %g s; its thread is abandoned", name, timeout_s)
        raise ToolTimeout(
            f"the tool {name!r} did not finish within {timeout_s:g} s and was abandoned; try again with a smaller "
            "request or use another tool"
        )
    if "error" in box:
        raise box["error"]
    return box["result"]


class ToolTape(Protocol):
    """Where tool results are recorded and replayed from (the item's cassette, ``--smoltrace-record-mode``)."""

    def replay_tool(self, name: str, arguments: dict[str, Any]) -> tuple[bool, Any, str | None]:
        """``(found, result, error)`` of a recorded call; not found: the tool runs (and is recorded)."""
        ...

    def record_tool(self, name: str, arguments: dict[str, Any], result: Any, error: str | None) -> None: ...


class ReplayedToolError(Exception):
    """A recorded tool call that failed, failing again on replay with the recorded message (the tool did not run)."""


def _mark_replayed() -> None:
    """Say on the tool's span that its result came from a cassette: no external effect was executed."""
    try:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("smoltrace.replayed", True)
    except Exception:  # tracing must never break a tool call
        logger.debug("could not mark the tool span as replayed", exc_info=True)


class ToolRecorder:
    """Collects the executed calls of the tools it instrumented. Thread-safe; one recorder per item.

    With ``timeout_s`` each call runs on its own daemon thread and a call still running after ``timeout_s`` is
    recorded with ``error="ToolTimeout: …"`` and raised to the agent (smolagents reports it to the model as a
    tool error); the stuck thread is abandoned, not killed (see :func:`call_with_timeout`).
    """

    def __init__(
        self, result_limit: int = RESULT_LIMIT, timeout_s: float | None = None, tape: ToolTape | None = None
    ) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self._result_limit = result_limit
        self.timeout_s = timeout_s
        #: Replays recorded results instead of running the tool, and records the calls that run.
        self.tape = tape
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._calls: list[tuple[int, ToolCall]] = []

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """Every executed call so far, in the order the calls started."""
        with self._lock:
            return tuple(call for _, call in sorted(self._calls, key=lambda pair: pair[0]))

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def instrument(self, tool: Tool) -> Tool:
        """A shallow copy of ``tool`` whose ``forward`` records each executed call into this recorder.

        The original instance is not modified. Instrumenting an already instrumented copy records only here
        (the earlier recorder's wrapper is dropped from the new copy).
        """
        clone = copy.copy(tool)
        own = clone.__dict__.get("forward")
        if own is not None and hasattr(own, _RECORDER_ATTR):
            # A copy made by another recorder: go back to what that recorder wrapped.
            earlier = getattr(own, _INSTANCE_FORWARD_ATTR, None)
            if earlier is None:
                del clone.__dict__["forward"]
            else:
                clone.__dict__["forward"] = earlier
        instance_forward = clone.__dict__.get("forward")
        original: Callable[..., Any] = clone.forward
        wrapper = self._wrap(str(clone.name), list(getattr(clone, "inputs", {}) or {}), original)
        setattr(wrapper, _INSTANCE_FORWARD_ATTR, instance_forward)
        clone.__dict__["forward"] = wrapper  # an instance attribute shadows the class method
        return clone

    def instrument_all(self, tools: Iterable[Tool]) -> list[Tool]:
        """:meth:`instrument` each tool, keeping order."""
        return [self.instrument(t) for t in tools]

    def final_answer_tool(self) -> Tool:
        """A fresh, instrumented ``smolagents.FinalAnswerTool`` to put in the agent's tools list.

        smolagents only adds its own ``final_answer`` with ``tools.setdefault``, so this one wins.
        """
        from smolagents import FinalAnswerTool

        return self.instrument(FinalAnswerTool())

    def _wrap(self, name: str, input_names: list[str], original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def recording_forward(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                order = next(self._order)
            started_at = time.time()
            start = time.perf_counter()
            tape = self.tape
            if tape is not None:
                bound = bind_arguments(input_names, args, kwargs)
                found, value, recorded_error = tape.replay_tool(name, bound)
                if found:
                    _mark_replayed()
                    self._add(order, name, input_names, args, kwargs, value, recorded_error, start, started_at)
                    if recorded_error is not None:
                        raise ReplayedToolError(recorded_error)
                    return value
            try:
                if self.timeout_s is None:
                    result = original(*args, **kwargs)
                else:
                    result = call_with_timeout(name, original, args, kwargs, self.timeout_s)
            except BaseException as exc:
                error = _describe_error(exc)
                self._add(order, name, input_names, args, kwargs, None, error, start, started_at)
                if tape is not None:
                    tape.record_tool(name, bound, None, error)
                raise
            self._add(order, name, input_names, args, kwargs, result, None, start, started_at)
            if tape is not None:
                tape.record_tool(name, bound, result, None)
            return result

        setattr(recording_forward, _RECORDER_ATTR, self)
        return recording_forward

    def _add(
        self,
        order: int,
        name: str,
        input_names: list[str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        error: str | None,
        start: float,
        started_at: float,
    ) -> None:
        call = ToolCall(
            name=name,
            arguments=bind_arguments(input_names, args, kwargs),
            result=None if error is not None else excerpt(result, self._result_limit),
            error=error,
            duration_ms=(time.perf_counter() - start) * 1000.0,
            started_at=started_at,
        )
        with self._lock:
            self._calls.append((order, call))
        logger.debug("tool call recorded: %s ok=%s", name, error is None)
