"""The records of a run (tasks, tool calls, steps, retries, run records, checks, verdicts, item results).

They live in :mod:`smoltrace_export.records`, the bottom of the import graph that the plugin, the tools and the
exporters all import; this module re-exports them under the name users' conftests have always imported
(``from pytest_smoltrace.records import Check``).
"""

from __future__ import annotations

from smoltrace_export.records import (
    AGENT_TYPES,
    CANCELLED,
    DIFFICULTIES,
    KEYWORD_MODES,
    SCHEMA_VERSION,
    STOP_REASONS,
    TASK_AGENT_TYPES,
    UNFINISHED_ERROR_TYPES,
    WORKER_CRASHED,
    AgentType,
    Check,
    Difficulty,
    ItemResult,
    KeywordMode,
    Outcome,
    RetryEvent,
    RunRecord,
    StepInfo,
    StepKind,
    StopReason,
    Task,
    TaskAgentType,
    ToolCall,
    Verdict,
    excerpt,
    jsonable,
)

__all__ = [
    "AGENT_TYPES",
    "CANCELLED",
    "DIFFICULTIES",
    "KEYWORD_MODES",
    "SCHEMA_VERSION",
    "STOP_REASONS",
    "TASK_AGENT_TYPES",
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
    "Verdict",
    "excerpt",
    "jsonable",
]
