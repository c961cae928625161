"""Per-agent-type summaries of a run (one leaderboard row each; SMOLTRACE merged both agent types into one)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .records import AGENT_TYPES, ItemResult


@dataclass(frozen=True)
class AgentSummary:
    agent_type: str
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
    prompt_tokens: int
    completion_tokens: int
    total_duration_ms: float
    planned: int
    #: Σ of the items' cache reads / cache writes / reasoning tokens (parts of the prompt and completion tokens);
    #: ``None`` when no item's provider reported them.
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None

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
        return round(self.total_duration_ms / self.total, 1) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in (
            "success_rate",
            "tool_called_rate",
            "correct_tool_rate",
            "avg_steps",
            "total_tokens",
            "avg_duration_ms",
        ):
            data[name] = getattr(self, name)
        return data


def summarize(results: Iterable[ItemResult], planned: dict[str, int] | None = None) -> list[AgentSummary]:
    """One summary per agent type that ran or was planned, in the order tool, code."""
    results = list(results)
    planned = planned or {}
    summaries = []
    for agent_type in AGENT_TYPES:
        mine = [r for r in results if r.record.agent_type == agent_type]
        if not mine and not planned.get(agent_type):
            continue
        expects = [r for r in mine if r.verdict.check("expected_tool") is not None]
        summaries.append(
            AgentSummary(
                agent_type=agent_type,
                total=len(mine),
                passed=sum(r.verdict.outcome == "passed" for r in mine),
                failed=sum(r.verdict.outcome == "failed" for r in mine),
                errored=sum(r.verdict.outcome == "error" for r in mine),
                timed_out=sum(r.record.stop_reason == "timeout" for r in mine),
                max_steps=sum(r.record.stop_reason == "max_steps" for r in mine),
                tool_called=sum(bool(r.record.executed_tools) for r in mine),
                expects_tool=len(expects),
                correct_tool=sum(bool(r.verdict.check("expected_tool").passed) for r in expects),  # type: ignore[union-attr]
                total_steps=sum(r.record.action_steps for r in mine),
                prompt_tokens=sum(r.record.prompt_tokens or 0 for r in mine),
                completion_tokens=sum(r.record.completion_tokens or 0 for r in mine),
                total_duration_ms=sum(r.record.duration_ms for r in mine),
                planned=planned.get(agent_type, len(mine)),
                cached_input_tokens=_known_sum(r.record.cached_input_tokens for r in mine),
                cache_creation_input_tokens=_known_sum(r.record.cache_creation_input_tokens for r in mine),
                reasoning_tokens=_known_sum(r.record.reasoning_tokens for r in mine),
            )
        )
    return summaries


def _known_sum(values: Iterable[int | None]) -> int | None:
    """Σ of the known values; ``None`` when none is known (unknown is not 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
