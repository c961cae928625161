"""Records → rows: results rows (SMOLTRACE's 26 columns where they apply, plus ours) and leaderboard rows.

The column names and types are documented in README.md ("Output files"); ``schema_version`` marks changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_smoltrace.records import SCHEMA_VERSION, ItemResult
from pytest_smoltrace.summary import AgentSummary


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _answer_correct(result: ItemResult) -> bool | None:
    """Keywords and expected answer both hold; None when the task has neither check."""
    checks = [c for c in result.verdict.checks if c.name in ("expected_keywords", "expected_answer")]
    return all(c.passed for c in checks) if checks else None


def result_row(result: ItemResult) -> dict[str, Any]:
    record, verdict, task = result.record, result.verdict, result.task
    expected_tool = verdict.check("expected_tool")
    enhanced = {
        "trace_id": record.trace_id,
        "root_span_id": record.span_id,
        "total_tokens": record.total_tokens,
        "duration_ms": round(record.duration_ms, 3),
        "cost_usd": record.cost_usd,
    }
    return {
        "model": record.model,
        "evaluation_date": iso(record.started_at),
        "task_id": record.task_id,
        "test_case_uid": result.nodeid,
        "agent_type": record.agent_type,
        "difficulty": task.get("difficulty"),
        "category": task.get("category"),
        "prompt": task.get("prompt"),
        "success": verdict.passed,
        "pass_at_1_passed": verdict.passed if record.repeat == 0 else None,
        "tool_called": bool(record.executed_tools),
        "correct_tool": expected_tool.passed if expected_tool is not None else None,
        "final_answer_called": record.final_answer_called,
        "response_correct": _answer_correct(result),
        "tools_used": record.executed_tools,
        "steps": record.action_steps,
        "response": record.response,
        "error": record.error,
        "stop_reason": record.stop_reason,
        "timed_out": record.stop_reason == "timeout",
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "run_id": record.run_id,
        "execution_time_ms": round(record.duration_ms, 3),
        "total_tokens": record.total_tokens,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": record.cost_usd,
        "enhanced_trace_info": json.dumps(enhanced),
        # ours
        "outcome": verdict.outcome,
        "source": record.source,
        "provider": record.provider,
        "checks": [c.to_dict() for c in verdict.checks],
        "tool_calls": [c.to_dict() for c in record.tool_calls],
        "schema_version": SCHEMA_VERSION,
    }


@dataclass(frozen=True)
class RunContext:
    """What a leaderboard row says about the run as a whole."""

    model: str
    provider: str
    run_id: str
    dataset: str
    dataset_revision: str | None
    started_at: float
    finished_at: float
    run_status: str
    task_timeout_s: float
    results_location: str


def leaderboard_row(summary: AgentSummary, ctx: RunContext) -> dict[str, Any]:
    total = summary.total
    return {
        "run_id": ctx.run_id,
        "model": ctx.model,
        "agent_type": summary.agent_type,
        "provider": ctx.provider,
        "timestamp": iso(ctx.started_at),
        "dataset_used": ctx.dataset,
        "dataset_revision": ctx.dataset_revision,
        "results_dataset": ctx.results_location,
        "total_tests": total,
        "successful_tests": summary.passed,
        "failed_tests": summary.failed,
        "errored_tests": summary.errored,
        "success_rate": summary.success_rate,
        "pass_at_1": round(summary.passed / total, 4) if total else None,
        "pass_rule": "all_checks_passed_first_attempt",
        "tool_called_rate": summary.tool_called_rate,
        "correct_tool_rate": summary.correct_tool_rate,
        "avg_steps": summary.avg_steps,
        "avg_duration_ms": summary.avg_duration_ms,
        "total_duration_ms": round(summary.total_duration_ms, 3),
        "total_tokens": summary.total_tokens,
        "avg_tokens_per_test": round(summary.total_tokens / total) if total else None,
        "total_prompt_tokens": summary.prompt_tokens,
        "total_completion_tokens": summary.completion_tokens,
        "total_cost_usd": None,
        "avg_cost_per_test_usd": None,
        "run_status": ctx.run_status,
        "planned_tests": summary.planned,
        "completed_tests": total,
        "interrupted_tests": max(summary.planned - total, 0),
        "timed_out_tests": summary.timed_out,
        "max_steps_tests": summary.max_steps,
        "task_timeout_s": ctx.task_timeout_s,
        "run_duration_s": round(ctx.finished_at - ctx.started_at, 3),
        "schema_version": SCHEMA_VERSION,
    }
