"""Per-agent-type summaries of a run: they live in :mod:`smoltrace_export.summary` (the exporters build the
leaderboard rows from them); this module re-exports them under their old name."""

from __future__ import annotations

from smoltrace_export.summary import (
    CANCELLED,
    AgentSummary,
    ItemAttempts,
    first_attempt_passes,
    group_attempts,
    summarize,
)

__all__ = [
    "CANCELLED",
    "AgentSummary",
    "ItemAttempts",
    "first_attempt_passes",
    "group_attempts",
    "summarize",
]
