"""Per-(model, agent type) summaries of a run (one leaderboard row each; SMOLTRACE merged both agent types into one).

The counting rules (README, "Parallel, resilient, resumable"): results are *attempts* (a rerun by
pytest-rerunfailures, or the re-run of an attempt that did not finish, is an attempt of its own). An item's verdict is
its last attempt's; an item whose last attempt was cancelled (its run had started ahead but pytest never ran it) is not
completed. Item counts come from the verdicts; spend (tokens, duration, cost) from every attempt, so the totals equal
the sums over ``results.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

from .records import AGENT_TYPES, CANCELLED, UNFINISHED_ERROR_TYPES, Check, ItemResult, Outcome

__all__ = [
    "CANCELLED",
    "AgentSummary",
    "Attempt",
    "AttemptDigest",
    "DigestRecord",
    "DigestVerdict",
    "ItemAttempts",
    "first_attempt_passes",
    "group_attempts",
    "known_cost",
    "known_sum",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """The fields (and derived values) of a :class:`~.records.RunRecord` that the summaries, statistics and
    leaderboard rows read, under the same names: a few hundred bytes instead of the record's steps, tool calls, answer
    and error text."""

    task_id: str
    agent_type: str
    model_name: str
    model_label: str | None
    attempt: int
    repeat: int
    error_type: str | None
    stop_reason: str
    executed_tools: tuple[str, ...]
    action_steps: int
    repeated_calls: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_tokens: int | None
    duration_ms: float
    started_at: float
    cost_usd: float | None
    judge_tokens: int | None
    judge_cost_usd: float | None
    trace_id: str | None
    replayed: bool


@dataclass(frozen=True, slots=True)
class DigestVerdict:
    """A verdict's outcome and its ``expected_tool`` check (the only check the summaries read)."""

    outcome: Outcome
    expected_tool: Check | None

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def check(self, name: str) -> Check | None:
        """Only ``expected_tool`` is kept (``None`` for any other name)."""
        return self.expected_tool if name == "expected_tool" else None


@dataclass(frozen=True, slots=True)
class AttemptDigest:
    """The compact per-attempt record the controller keeps in memory for a run's summaries, statistics and
    leaderboard rows; the full :class:`~.records.ItemResult` stays in ``journal.jsonl`` (read back one at a time to
    write results.json). Reads like an :class:`~.records.ItemResult` where those read it (``.record``, ``.verdict``)."""

    nodeid: str
    record: DigestRecord
    verdict: DigestVerdict

    @classmethod
    def of(cls, result: ItemResult) -> AttemptDigest:
        r, verdict = result.record, result.verdict
        expected = verdict.check("expected_tool")
        return cls(
            nodeid=result.nodeid,
            record=DigestRecord(
                task_id=r.task_id,
                agent_type=r.agent_type,
                model_name=r.model_name,
                model_label=r.model_label,
                attempt=r.attempt,
                repeat=r.repeat,
                error_type=r.error_type,
                stop_reason=r.stop_reason,
                executed_tools=tuple(r.executed_tools),
                action_steps=r.action_steps,
                repeated_calls=r.repeated_calls,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                cached_input_tokens=r.cached_input_tokens,
                cache_creation_input_tokens=r.cache_creation_input_tokens,
                reasoning_tokens=r.reasoning_tokens,
                duration_ms=r.duration_ms,
                started_at=r.started_at,
                cost_usd=r.cost_usd,
                judge_tokens=r.judge_tokens,
                judge_cost_usd=r.judge_cost_usd,
                trace_id=r.trace_id,
                replayed=r.replayed,
            ),
            verdict=DigestVerdict(
                verdict.outcome,
                None if expected is None else Check(expected.name, expected.passed, None, None),
            ),
        )


#: What the summaries, statistics and leaderboard rows are computed from: full results or their digests.
Attempt: TypeAlias = ItemResult | AttemptDigest


@dataclass(frozen=True)
class ItemAttempts:
    """Every attempt of one item, in attempt order."""

    nodeid: str
    attempts: tuple[Attempt, ...]

    @property
    def final(self) -> Attempt:
        """The attempt whose verdict is the item's: the last one, not counting cancelled runs after a real attempt
        (a run started ahead on one xdist worker for an item another worker then ran)."""
        real = [a for a in self.attempts if a.record.error_type != CANCELLED]
        return real[-1] if real else self.attempts[-1]

    @property
    def first(self) -> Attempt:
        """The attempt pass@1 counts: the first that finished (a cancelled or crashed one did not), else the last."""
        return next((a for a in self.attempts if a.record.error_type not in UNFINISHED_ERROR_TYPES), self.final)

    @property
    def cancelled(self) -> bool:
        return self.final.record.error_type == CANCELLED

    @property
    def flaky(self) -> bool:
        """Passed on a rerun after an attempt that finished and did not pass."""
        return self.final.verdict.passed and any(
            not a.verdict.passed and a.record.error_type not in UNFINISHED_ERROR_TYPES for a in self.attempts[:-1]
        )


def group_attempts(results: Iterable[Attempt]) -> list[ItemAttempts]:
    """Results grouped by item, items in first-seen order, each item's attempts by attempt number (stable)."""
    by_node: dict[str, list[Attempt]] = {}
    for result in results:
        by_node.setdefault(result.nodeid, []).append(result)
    return [
        ItemAttempts(nodeid, tuple(sorted(attempts, key=lambda r: r.record.attempt)))
        for nodeid, attempts in by_node.items()
    ]


@dataclass(frozen=True)
class AgentSummary:
    agent_type: str
    #: Completed items (their last attempt was not cancelled); the item counts below are over their verdicts.
    total: int
    passed: int
    failed: int
    errored: int
    timed_out: int
    max_steps: int
    tool_called: int
    expects_tool: int
    correct_tool: int
    total_steps: int
    #: Spend: Σ over every attempt (reruns and cancelled runs included).
    prompt_tokens: int
    completion_tokens: int
    total_duration_ms: float
    planned: int
    #: Σ of the items' cache reads / cache writes / reasoning tokens (parts of the prompt and completion tokens);
    #: ``None`` when no item's provider reported them.
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Attempts (rows of results.json) of this agent type; items whose run started ahead but never ran (cancelled);
    #: items that passed on a rerun after a failed or errored attempt.
    attempts: int = 0
    cancelled: int = 0
    flaky: int = 0
    #: Σ cost of every attempt in USD; ``None`` when no attempt's cost is known (unknown is not 0).
    cost_usd: float | None = None
    #: The part of the spend that went to cancelled items (per-item averages leave it out: it bought no verdict).
    cancelled_tokens: int = 0
    cancelled_duration_ms: float = 0.0
    cancelled_cost_usd: float = 0.0
    #: The model these items ran (``RunRecord.model_name``: its label, else its id).
    model: str = ""
    #: The most times one tool was called with identical arguments in a completed item (``RunRecord.repeated_calls``).
    max_repeated_calls: int = 0
    #: Σ of the rubric judge's tokens / known costs over every attempt, apart from the agent's (``None``: no judge
    #: was called / no judge cost is known).
    judge_tokens: int | None = None
    judge_cost_usd: float | None = None

    @property
    def success_rate(self) -> float:
        """Percent of finished items that passed (0–100)."""
        return round(100.0 * self.passed / self.total, 2) if self.total else 0.0

    @property
    def tool_called_rate(self) -> float:
        return round(100.0 * self.tool_called / self.total, 2) if self.total else 0.0

    @property
    def correct_tool_rate(self) -> float | None:
        """Percent of items expecting a tool whose ``expected_tool`` check passed; None when no item expects one."""
        return round(100.0 * self.correct_tool / self.expects_tool, 2) if self.expects_tool else None

    @property
    def avg_steps(self) -> float:
        return round(self.total_steps / self.total, 2) if self.total else 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def avg_duration_ms(self) -> float:
        """Mean run time per completed item, all its attempts together."""
        return round((self.total_duration_ms - self.cancelled_duration_ms) / self.total, 1) if self.total else 0.0

    @property
    def avg_tokens(self) -> int | None:
        """Mean tokens per completed item, all its attempts together."""
        return round((self.total_tokens - self.cancelled_tokens) / self.total) if self.total else None

    @property
    def not_run(self) -> int:
        """Planned items with no result at all (never started, or started and lost with a killed process)."""
        return max(self.planned - self.total - self.cancelled, 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in (
            "success_rate",
            "tool_called_rate",
            "correct_tool_rate",
            "avg_steps",
            "total_tokens",
            "avg_duration_ms",
            "avg_tokens",
            "not_run",
        ):
            data[name] = getattr(self, name)
        return data


def summarize(results: Iterable[Attempt], planned: Mapping[Any, int] | None = None) -> list[AgentSummary]:
    """One summary per (model, agent type) that ran or was planned: models in the order their results come (planned
    ones after), agent types tool then code.

    ``results`` are attempts (several per item under reruns; one per item is the old form and gives the same counts).
    ``planned``: items planned per ``(model name, agent type)``; a key that is an agent type alone counts for a run of
    one model."""
    items = group_attempts(results)
    planned = dict(planned or {})
    models: list[str] = []
    for g in items:
        if g.final.record.model_name not in models:
            models.append(g.final.record.model_name)
    for key in planned:
        if isinstance(key, tuple) and key[0] not in models:
            models.append(key[0])
    if not models:
        models.append("")
    alone = len(models) == 1
    summaries = []
    for model in models:
        for agent_type in AGENT_TYPES:
            mine = [g for g in items if g.final.record.agent_type == agent_type and g.final.record.model_name == model]
            wanted = planned.get((model, agent_type), planned.get(agent_type) if alone else None)
            if not mine and not wanted:
                continue
            summaries.append(_summary(model, agent_type, mine, wanted))
    return summaries


def _summary(model: str, agent_type: str, mine: list[ItemAttempts], planned: int | None) -> AgentSummary:
    done = [g for g in mine if not g.cancelled]
    finals = [g.final for g in done]
    every = [a for g in mine for a in g.attempts]
    expects = [r for r in finals if r.verdict.check("expected_tool") is not None]
    costs = [a.record.cost_usd for a in every if a.record.cost_usd is not None]
    dropped = [a for g in mine if g.cancelled for a in g.attempts]
    return AgentSummary(
        agent_type=agent_type,
        total=len(done),
        passed=sum(r.verdict.outcome == "passed" for r in finals),
        failed=sum(r.verdict.outcome == "failed" for r in finals),
        errored=sum(r.verdict.outcome == "error" for r in finals),
        timed_out=sum(r.record.stop_reason == "timeout" for r in finals),
        max_steps=sum(r.record.stop_reason == "max_steps" for r in finals),
        tool_called=sum(bool(r.record.executed_tools) for r in finals),
        expects_tool=len(expects),
        correct_tool=sum(bool(r.verdict.check("expected_tool").passed) for r in expects),  # type: ignore[union-attr]
        total_steps=sum(r.record.action_steps for r in finals),
        prompt_tokens=sum(a.record.prompt_tokens or 0 for a in every),
        completion_tokens=sum(a.record.completion_tokens or 0 for a in every),
        total_duration_ms=sum(a.record.duration_ms for a in every),
        planned=planned if planned is not None else len(mine),
        cached_input_tokens=known_sum(a.record.cached_input_tokens for a in every),
        cache_creation_input_tokens=known_sum(a.record.cache_creation_input_tokens for a in every),
        reasoning_tokens=known_sum(a.record.reasoning_tokens for a in every),
        attempts=len(every),
        cancelled=len(mine) - len(done),
        flaky=sum(g.flaky for g in done),
        cost_usd=float(f"{sum(costs):.10g}") if costs else None,
        cancelled_tokens=_spend(dropped),
        cancelled_duration_ms=sum(a.record.duration_ms for a in dropped),
        cancelled_cost_usd=sum(a.record.cost_usd or 0.0 for a in dropped),
        model=model,
        max_repeated_calls=max((r.record.repeated_calls for r in finals), default=0),
        judge_tokens=known_sum(a.record.judge_tokens for a in every),
        judge_cost_usd=known_cost(a.record.judge_cost_usd for a in every),
    )


def first_attempt_passes(items: Sequence[ItemAttempts]) -> tuple[int, int]:
    """pass@1's counts over completed items: (tasks evaluated, tasks whose first finished attempt passed).

    Only repeat 0 counts (``--smoltrace-repeats`` has its own statistics); tasks are counted once by task id."""
    firsts = [g.first for g in items if not g.cancelled and g.first.record.repeat == 0]
    evaluated = {r.record.task_id for r in firsts}
    passed = {r.record.task_id for r in firsts if r.verdict.passed}
    return len(evaluated), len(passed)


def _spend(attempts: Iterable[Attempt]) -> int:
    return sum((a.record.prompt_tokens or 0) + (a.record.completion_tokens or 0) for a in attempts)


def known_cost(values: Iterable[float | None]) -> float | None:
    """Σ of the known costs (10 significant digits, as the agent's); ``None`` when none is known."""
    known = [v for v in values if v is not None]
    return float(f"{sum(known):.10g}") if known else None


def known_sum(values: Iterable[int | None]) -> int | None:
    """Σ of the known values; ``None`` when none is known (unknown is not 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
