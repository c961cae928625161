"""Records that cross module borders: executed tool calls, agent steps, run records, checks, verdicts.

Every record is a frozen dataclass with ``to_dict()`` / ``from_dict()``; dicts appear only at the edges
(JSON files, test reports, Hub rows). Only plain JSON types are stored so that records survive
pytest-xdist's report serialisation unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AgentType = Literal["tool", "code"]
StopReason = Literal["final_answer", "max_steps", "timeout", "error"]
Outcome = Literal["passed", "failed", "error"]

AGENT_TYPES: tuple[AgentType, ...] = ("tool", "code")
STOP_REASONS: tuple[StopReason, ...] = ("final_answer", "max_steps", "timeout", "error")

#: Bumped whenever a field of a persisted record changes meaning.
SCHEMA_VERSION = 1


def excerpt(value: Any, limit: int = 500) -> str:
    """``str(value)`` cut to ``limit`` characters (with a marker when cut)."""
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float)) else str(value)
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more chars]"


def jsonable(value: Any, limit: int = 2000) -> Any:
    """Best-effort conversion of an arbitrary value into plain JSON types."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= limit else excerpt(value, limit)
    if isinstance(value, dict):
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, limit) for v in value]
    return excerpt(value, limit)


@dataclass(frozen=True)
class ToolCall:
    """One tool call that was really executed (recorded by the recording proxy around ``forward``)."""

    name: str
    arguments: dict[str, Any]
    result: str | None
    error: str | None
    duration_ms: float
    started_at: float = 0.0

    @property
    def ok(self) -> bool:
        """A call that raised is recorded but is not a use of the tool."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(
            name=str(data["name"]),
            arguments=dict(data.get("arguments") or {}),
            result=data.get("result"),
            error=data.get("error"),
            duration_ms=float(data.get("duration_ms", 0.0)),
            started_at=float(data.get("started_at", 0.0)),
        )


StepKind = Literal["action", "planning", "max_steps_summary"]


@dataclass(frozen=True)
class StepInfo:
    """One smolagents memory step, counted once (the max-steps summary is its own kind)."""

    kind: StepKind
    number: int | None
    duration_ms: float
    input_tokens: int | None
    output_tokens: int | None
    error: str | None = None
    requested_tools: tuple[str, ...] = ()
    code: str | None = None
    is_final_answer: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["requested_tools"] = list(self.requested_tools)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepInfo:
        return cls(
            kind=data["kind"],
            number=data.get("number"),
            duration_ms=float(data.get("duration_ms", 0.0)),
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            error=data.get("error"),
            requested_tools=tuple(data.get("requested_tools") or ()),
            code=data.get("code"),
            is_final_answer=bool(data.get("is_final_answer", False)),
        )


@dataclass(frozen=True)
class RunRecord:
    """What one agent run did: answer, stop reason, steps, executed tool calls, tokens, timing, error."""

    task_id: str
    agent_type: AgentType
    source: str
    model: str
    provider: str
    run_id: str
    response: str | None
    final_answer_called: bool
    stop_reason: StopReason
    steps: tuple[StepInfo, ...]
    tool_calls: tuple[ToolCall, ...]
    prompt_tokens: int | None
    completion_tokens: int | None
    duration_ms: float
    started_at: float
    error: str | None = None
    error_type: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    cost_usd: float | None = None
    repeat: int = 0
    nodeid: str = ""
    #: Model-call retries during this run: ``{"attempt", "reason", "wait_s"}`` each.
    retries: tuple[dict[str, Any], ...] = ()
    #: Prompt tokens served from the provider's prompt cache (part of ``prompt_tokens``); ``None``: not reported.
    cached_input_tokens: int | None = None
    #: Prompt tokens written to the provider's prompt cache (Anthropic; part of ``prompt_tokens``).
    cache_creation_input_tokens: int | None = None
    #: Completion tokens spent on hidden reasoning (part of ``completion_tokens``, never added to it).
    reasoning_tokens: int | None = None
    #: 0-based attempt of this item in the run directory: reruns (pytest-rerunfailures) and the re-run of an attempt
    #: that did not finish (``--smoltrace-resume``) count up. Not ``repeat`` (``--smoltrace-repeats``).
    attempt: int = 0

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens

    @property
    def action_steps(self) -> int:
        """Steps the agent took (the forced max-steps summary is not a step of the agent)."""
        return sum(1 for s in self.steps if s.kind == "action")

    @property
    def executed_tools(self) -> list[str]:
        """Names of tool calls that executed without raising, ``final_answer`` excluded, in order."""
        return [c.name for c in self.tool_calls if c.ok and c.name != "final_answer"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        data["retries"] = [dict(r) for r in self.retries]
        data["total_tokens"] = self.total_tokens
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            task_id=str(data["task_id"]),
            agent_type=data["agent_type"],
            source=str(data.get("source", "")),
            model=str(data.get("model", "")),
            provider=str(data.get("provider", "")),
            run_id=str(data.get("run_id", "")),
            response=data.get("response"),
            final_answer_called=bool(data.get("final_answer_called", False)),
            stop_reason=data.get("stop_reason", "error"),
            steps=tuple(StepInfo.from_dict(s) for s in data.get("steps") or ()),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            duration_ms=float(data.get("duration_ms", 0.0)),
            started_at=float(data.get("started_at", 0.0)),
            error=data.get("error"),
            error_type=data.get("error_type"),
            trace_id=data.get("trace_id"),
            span_id=data.get("span_id"),
            cost_usd=data.get("cost_usd"),
            repeat=int(data.get("repeat", 0)),
            nodeid=str(data.get("nodeid", "")),
            retries=tuple(dict(r) for r in data.get("retries") or ()),
            cached_input_tokens=data.get("cached_input_tokens"),
            cache_creation_input_tokens=data.get("cache_creation_input_tokens"),
            reasoning_tokens=data.get("reasoning_tokens"),
            attempt=int(data.get("attempt") or 0),
        )


@dataclass(frozen=True)
class Check:
    """One sub-check of a verdict: ``(name, passed, expected, actual)``."""

    name: str
    passed: bool
    expected: Any
    actual: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "expected": jsonable(self.expected),
            "actual": jsonable(self.actual),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            expected=data.get("expected"),
            actual=data.get("actual"),
        )


@dataclass(frozen=True)
class Verdict:
    """The judge's decision: passed iff every check passed; an agent error or timeout is an error outcome."""

    checks: tuple[Check, ...]
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    @property
    def outcome(self) -> Outcome:
        if self.error is not None:
            return "error"
        return "passed" if self.passed else "failed"

    def check(self, name: str) -> Check | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "outcome": self.outcome,
            "error": self.error,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(checks=tuple(Check.from_dict(c) for c in data.get("checks") or ()), error=data.get("error"))


@dataclass(frozen=True)
class ItemResult:
    """Record + verdict of one item, as it travels on the test report to the controller."""

    nodeid: str
    record: RunRecord
    verdict: Verdict
    task: dict[str, Any] = field(default_factory=dict)
    #: The item's traces.json document (travels to the controller, which files it apart from the journal).
    trace: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": SCHEMA_VERSION,
            "nodeid": self.nodeid,
            "record": self.record.to_dict(),
            "verdict": self.verdict.to_dict(),
            "task": self.task,
        }
        if self.trace is not None:
            data["trace"] = self.trace
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemResult:
        return cls(
            nodeid=str(data["nodeid"]),
            record=RunRecord.from_dict(data["record"]),
            verdict=Verdict.from_dict(data["verdict"]),
            task=dict(data.get("task") or {}),
            trace=data.get("trace"),
        )
