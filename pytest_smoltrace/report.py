"""Terminal output: the header that says how to reproduce the run, and the per-agent-type summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .state import SmoltraceState
from .summary import AgentSummary


def header_lines(state: SmoltraceState) -> list[str]:
    s = state.settings
    dataset = s.dataset + (f"@{s.revision}" if s.revision else "") + (f" [{s.split}]" if s.split != "train" else "")
    spec = state.spec
    return [
        f"smoltrace: run {state.run_id} · model {spec.label} ({spec.provider}"
        + (f" at {spec.api_base}" if spec.api_base else "")
        + ")",
        f"smoltrace: dataset {dataset} · agents {s.agent_type} · max steps {s.max_steps} · timeout {s.timeout:g} s",
    ]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def write_summary(tr: pytest.TerminalReporter, summaries: list[AgentSummary], run_dir: Path | None) -> None:
    tr.write_sep("=", "smoltrace summary")
    header = (
        f"{'agent':<6} {'items':>5} {'passed':>7} {'success':>8} {'tool called':>12} {'right tool':>11} "
        f"{'avg steps':>9} {'tokens':>9} {'avg ms':>8}"
    )
    tr.write_line(header)
    for s in summaries:
        tr.write_line(
            f"{s.agent_type:<6} {s.total:>5} {s.passed:>7} {_pct(s.success_rate):>8} {_pct(s.tool_called_rate):>12} "
            f"{_pct(s.correct_tool_rate):>11} {s.avg_steps:>9.2f} {s.total_tokens:>9} {s.avg_duration_ms:>8.0f}"
        )
        extras = [
            f"{n} {label}"
            for n, label in (
                (s.errored, "errored"),
                (s.timed_out, "timed out"),
                (s.max_steps, "hit max steps"),
                (s.flaky, "flaky (passed on rerun)"),
                (s.cancelled, "cancelled (started ahead, never run by pytest; their spend is counted)"),
                (s.not_run, "not run"),
            )
            if n > 0
        ]
        if s.attempts > s.total + s.cancelled:
            extras.append(f"{s.attempts} attempts (tokens count every attempt)")
        if extras:
            tr.write_line(f"       {', '.join(extras)}")
        details = [
            f"{n} {label}"
            for n, label in (
                (s.cached_input_tokens, f"of {s.prompt_tokens} prompt tokens cached"),
                (s.cache_creation_input_tokens, "written to the prompt cache"),
                (s.reasoning_tokens, f"of {s.completion_tokens} completion tokens reasoning"),
            )
            if n is not None
        ]
        if details:
            tr.write_line(f"       tokens: {', '.join(details)}")
    if run_dir is not None:
        tr.write_line(f"results: {run_dir}")


def write_otlp_line(tr: pytest.TerminalReporter, reports: list[dict[str, Any]]) -> None:
    """One red line when spans could not be exported over OTLP (the reports of every process, merged)."""
    from .telemetry.otlp import OtlpReport, merge_reports, summary_line

    line = summary_line(merge_reports(OtlpReport.from_dict(r) for r in reports))
    if line is not None:
        tr.write_line(line, red=True)
