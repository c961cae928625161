"""The records of a run: what the plugin produces, the exporters write and read back, and users' hooks receive.

Tasks, executed tool calls, agent steps, model-call retries, run records, checks, verdicts and item results.
Every record is a frozen dataclass with ``to_dict()`` / ``from_dict()``; dicts appear only at the edges
(JSON files, test reports, Hub rows). Only plain JSON types are stored so that records survive
pytest-xdist's report serialisation unchanged.

This module is the bottom of the import graph: the plugin (``pytest_smoltrace``), the tools (``smoltrace_tools``)
and the exporters (``smoltrace_export``) import it, and it imports none of them (``pytest_smoltrace.records`` and
``pytest_smoltrace.tasks.Task`` re-export it for users' conftests).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "AGENT_TYPES",
    "CANCELLED",
    "DIFFICULTIES",
    "JUDGE_ERROR",
    "KEYWORD_MODES",
    "REGRESSION_EXIT_STATUS",
    "SCHEMA_VERSION",
    "STOP_REASONS",
    "TASK_AGENT_TYPES",
    "TOOL_ORDER_MODES",
    "UNFINISHED_ERROR_TYPES",
    "WORKER_CRASHED",
    "AgentType",
    "Check",
    "Difficulty",
    "ItemResult",
    "KeywordMode",
    "Outcome",
    "RetryEvent",
    "RunRecord",
    "StepInfo",
    "StepKind",
    "StopReason",
    "Task",
    "TaskAgentType",
    "ToolCall",
    "ToolOrderMode",
    "Verdict",
    "excerpt",
    "jsonable",
    "repeated_calls",
]

AgentType = Literal["tool", "code"]
StopReason = Literal["final_answer", "max_steps", "timeout", "error"]
Outcome = Literal["passed", "failed", "error"]
#: A task's ``agent_type`` field: one agent type or both.
TaskAgentType = Literal["tool", "code", "both"]
Difficulty = Literal["easy", "medium", "hard"]
KeywordMode = Literal["any", "all"]
#: How ``expected_tool_order`` is held against the executed calls (see ``docs/verdict.md``).
ToolOrderMode = Literal["exact", "in_order", "any_order", "subset"]

AGENT_TYPES: tuple[AgentType, ...] = ("tool", "code")
STOP_REASONS: tuple[StopReason, ...] = ("final_answer", "max_steps", "timeout", "error")
TASK_AGENT_TYPES: tuple[TaskAgentType, ...] = ("tool", "code", "both")
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
KEYWORD_MODES: tuple[KeywordMode, ...] = ("any", "all")
TOOL_ORDER_MODES: tuple[ToolOrderMode, ...] = ("exact", "in_order", "any_order", "subset")

#: ``error_type`` of an attempt whose run had started but that pytest never ran (-x / --maxfail, Ctrl-C).
CANCELLED = "Cancelled"
#: ``error_type`` of an attempt whose xdist worker died while running it.
WORKER_CRASHED = "WorkerCrashed"
#: ``error_type`` of an item whose rubric judge gave no readable grade (after one retry) or could not be reached: an
#: error outcome, never a pass or a fail.
JUDGE_ERROR = "judge_error"
#: ``error_type`` of attempts that did not finish: they are re-run on resume, and pass@1 does not count them.
UNFINISHED_ERROR_TYPES = frozenset({WORKER_CRASHED, CANCELLED})

#: The exit status of a run (the pytest plugin's ``--smoltrace-fail-on-regression``, ``smoltrace-compare
#: --fail-on-regression``) in which a comparison with the baseline says ``regressed``: distinct from pytest's own
#: 0-5 (1: items failed, 2: interrupted, 3: internal error, 4: usage error, 5: nothing collected).
REGRESSION_EXIT_STATUS = 6

#: Bumped whenever a field of a persisted record changes meaning.
SCHEMA_VERSION = 1


def excerpt(value: Any, limit: int = 500) -> str:
    """``str(value)`` cut to ``limit`` characters (with a marker when cut)."""
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float)) else str(value)
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more chars]"


_EXCERPT_MARK = re.compile(r"… \[\d+ more chars\]")


def _is_excerpt(text: str, limit: int) -> bool:
    """Whether ``text`` is already an :func:`excerpt` cut at ``limit`` (a record read back from JSON): cutting it
    again would lose the count of what the first cut removed."""
    return _EXCERPT_MARK.fullmatch(text, limit) is not None


def jsonable(value: Any, limit: int = 2000) -> Any:
    """Best-effort conversion of an arbitrary value into plain JSON types."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= limit or _is_excerpt(value, limit) else excerpt(value, limit)
    if isinstance(value, dict):
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, limit) for v in value]
    return excerpt(value, limit)


@dataclass(frozen=True)
class Task:
    """One validated benchmark task (built by ``pytest_smoltrace.tasks.validate_row``; fields as in DESIGN §3).

    - ``expected_tool``: ``None`` (no tool expected), a tool name, ``"multiple"`` (at least
      ``expected_tool_calls`` executed calls of any tools) or a tuple of names (each executed at least once).
    - ``expected_tool_calls``: minimum number of executed calls (≥ 1) for a str ``expected_tool``.
    - ``expected_keywords``: case-insensitive substrings of the final answer; ``keyword_mode`` says any/all.
    - ``metadata``: every field of the row that is not part of the schema (a row's own ``metadata`` object
      is merged in).
    - ``source`` / ``row``: the source label (as in the node id) and the 1-based row number.
    - ``rubric``: what an LLM judge (``--smoltrace-judge-model``) grades the final answer against.
    - ``expected_tool_order`` / ``tool_order_mode``: the executed tool calls held against a sequence of names.
    - ``expected_tool_args``: ``{tool: {argument: matcher}}``; a matcher is a value, a list of acceptable values,
      ``{"regex": …}`` or ``{"approx": x, "tol": t}``.
    - ``max_repeated_calls``: the most times one tool may be called with identical arguments.

    The fields after ``row`` are left out of :meth:`to_dict` at their defaults (journal lines of tasks without them
    stay as they were before them).
    """

    id: str
    prompt: str
    agent_type: TaskAgentType = "both"
    difficulty: Difficulty | None = None
    category: str | None = None
    # None: no tool expected; str: that tool (or "multiple"); tuple: each of these tools.
    expected_tool: str | tuple[str, ...] | None = None
    expected_tool_calls: int = 1
    expected_keywords: tuple[str, ...] = ()
    keyword_mode: KeywordMode = "any"
    expected_answer: str | int | float | None = None
    forbidden_tools: tuple[str, ...] = ()
    required_tools: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "default"
    row: int = 0
    rubric: str | None = None
    expected_tool_order: tuple[str, ...] | None = None
    tool_order_mode: ToolOrderMode = "in_order"
    expected_tool_args: dict[str, dict[str, Any]] | None = None
    max_repeated_calls: int | None = None

    @property
    def agent_types(self) -> tuple[AgentType, ...]:
        """The agent types this task runs under, in the canonical order (tool, then code)."""
        if self.agent_type == "both":
            return AGENT_TYPES
        return (self.agent_type,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "agent_type": self.agent_type,
            "difficulty": self.difficulty,
            "category": self.category,
            "expected_tool": list(self.expected_tool) if isinstance(self.expected_tool, tuple) else self.expected_tool,
            "expected_tool_calls": self.expected_tool_calls,
            "expected_keywords": list(self.expected_keywords),
            "keyword_mode": self.keyword_mode,
            "expected_answer": self.expected_answer,
            "forbidden_tools": list(self.forbidden_tools),
            "required_tools": list(self.required_tools),
            "metadata": dict(self.metadata),
            "source": self.source,
            "row": self.row,
            **self._judging_fields(),
        }

    def _judging_fields(self) -> dict[str, Any]:
        """The judging fields that differ from their defaults (the others are left out of :meth:`to_dict`)."""
        data: dict[str, Any] = {}
        if self.rubric is not None:
            data["rubric"] = self.rubric
        if self.expected_tool_order is not None:
            data["expected_tool_order"] = list(self.expected_tool_order)
        if self.tool_order_mode != "in_order":
            data["tool_order_mode"] = self.tool_order_mode
        if self.expected_tool_args is not None:
            data["expected_tool_args"] = {tool: dict(args) for tool, args in self.expected_tool_args.items()}
        if self.max_repeated_calls is not None:
            data["max_repeated_calls"] = self.max_repeated_calls
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        expected_tool = data.get("expected_tool")
        order = data.get("expected_tool_order")
        tool_args = data.get("expected_tool_args")
        repeated = data.get("max_repeated_calls")
        return cls(
            id=str(data["id"]),
            prompt=str(data["prompt"]),
            agent_type=data.get("agent_type") or "both",
            difficulty=data.get("difficulty"),
            category=data.get("category"),
            expected_tool=tuple(expected_tool) if isinstance(expected_tool, list) else expected_tool,
            expected_tool_calls=int(data.get("expected_tool_calls") or 1),
            expected_keywords=tuple(data.get("expected_keywords") or ()),
            keyword_mode=data.get("keyword_mode") or "any",
            expected_answer=data.get("expected_answer"),
            forbidden_tools=tuple(data.get("forbidden_tools") or ()),
            required_tools=tuple(data.get("required_tools") or ()),
            metadata=dict(data.get("metadata") or {}),
            source=str(data.get("source", "")),
            row=int(data.get("row", 0)),
            rubric=data.get("rubric"),
            expected_tool_order=tuple(order) if order is not None else None,
            tool_order_mode=data.get("tool_order_mode") or "in_order",
            expected_tool_args=(
                {str(tool): dict(args) for tool, args in tool_args.items()} if isinstance(tool_args, dict) else None
            ),
            max_repeated_calls=int(repeated) if repeated is not None else None,
        )


def _call_key(call: ToolCall) -> tuple[str, str]:
    """A tool call's name and its arguments as canonical JSON: equal keys are identical calls."""
    return call.name, json.dumps(call.arguments, sort_keys=True, ensure_ascii=False, default=repr)


def repeated_calls(calls: tuple[ToolCall, ...]) -> tuple[int, ToolCall | None]:
    """The most times one tool was called with identical arguments (``final_answer`` excluded; calls that raised
    count: a loop of failing calls is a loop), and the first such call; ``(0, None)`` without tool calls."""
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], ToolCall] = {}
    for call in calls:
        if call.name == "final_answer":
            continue
        key = _call_key(call)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, call)
    if not counts:
        return 0, None
    key = max(counts, key=lambda k: counts[k])  # the first of the most repeated, in call order
    return counts[key], first[key]


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


@dataclass(frozen=True)
class RetryEvent:
    """One retried model call: the retry's number (1-based), why (``HTTP 429``, ``APIConnectionError``), the wait."""

    attempt: int
    reason: str
    wait_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "reason": self.reason, "wait_s": round(self.wait_s, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryEvent:
        return cls(
            attempt=int(data.get("attempt") or 0),
            reason=str(data.get("reason", "")),
            wait_s=float(data.get("wait_s") or 0.0),
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
    #: Model-call retries during this run, in order.
    retries: tuple[RetryEvent, ...] = ()
    #: Prompt tokens served from the provider's prompt cache (part of ``prompt_tokens``); ``None``: not reported.
    cached_input_tokens: int | None = None
    #: Prompt tokens written to the provider's prompt cache (Anthropic; part of ``prompt_tokens``).
    cache_creation_input_tokens: int | None = None
    #: Completion tokens spent on hidden reasoning (part of ``completion_tokens``, never added to it).
    reasoning_tokens: int | None = None
    #: 0-based attempt of this item in the run directory: reruns (pytest-rerunfailures) and the re-run of an attempt
    #: that did not finish (``--smoltrace-resume``) count up. Not ``repeat`` (``--smoltrace-repeats``).
    attempt: int = 0
    #: The model's name in this session (``--smoltrace-models`` label, or the label made for one of several
    #: ``--smoltrace-model`` values); ``None`` for a session's only, unnamed model. ``model`` stays the model id.
    model_label: str | None = None
    #: Every model call came from a cassette (``--smoltrace-record-mode``): ``cost_usd`` is 0, and what the recorded
    #: calls cost (at the run's price) is ``recorded_cost_usd``.
    replayed: bool = False
    recorded_cost_usd: float | None = None
    #: Tokens (prompt + completion) and cost in USD of the rubric judge's calls for this item
    #: (``--smoltrace-judge-model``): kept apart, never part of ``total_tokens`` or ``cost_usd``; ``None`` when no
    #: judge was called (or, for the cost, when the judge model has no price).
    judge_tokens: int | None = None
    judge_cost_usd: float | None = None

    @property
    def model_name(self) -> str:
        """What results are grouped and compared by: the model's label, else its id."""
        return self.model_label or self.model

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

    @property
    def repeated_calls(self) -> int:
        """The most times one tool was called with identical arguments (see :func:`repeated_calls`); 0 without calls."""
        return repeated_calls(self.tool_calls)[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        data["retries"] = [r.to_dict() for r in self.retries]
        data["total_tokens"] = self.total_tokens
        for name, default in (
            ("model_label", None),
            ("replayed", False),
            ("recorded_cost_usd", None),
            ("judge_tokens", None),
            ("judge_cost_usd", None),
        ):
            if data[name] == default:  # journal lines of runs without these stay as they were before them
                del data[name]
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
            retries=tuple(RetryEvent.from_dict(r) for r in data.get("retries") or ()),
            cached_input_tokens=data.get("cached_input_tokens"),
            cache_creation_input_tokens=data.get("cache_creation_input_tokens"),
            reasoning_tokens=data.get("reasoning_tokens"),
            attempt=int(data.get("attempt") or 0),
            model_label=data.get("model_label"),
            replayed=bool(data.get("replayed", False)),
            recorded_cost_usd=data.get("recorded_cost_usd"),
            judge_tokens=data.get("judge_tokens"),
            judge_cost_usd=data.get("judge_cost_usd"),
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
    #: The task the item ran (``None`` for an item that never ran: a crashed worker, a run that never started).
    task: Task | None = None
    #: The item's traces.json document (travels to the controller, which files it apart from the journal).
    trace: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": SCHEMA_VERSION,
            "nodeid": self.nodeid,
            "record": self.record.to_dict(),
            "verdict": self.verdict.to_dict(),
            "task": self.task.to_dict() if self.task is not None else {},
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
            task=Task.from_dict(data["task"]) if data.get("task") else None,
            trace=data.get("trace"),
        )
