"""What a person reads: the header that says how to reproduce the run, an item's failure text (its table of checks),
the per-agent-type summary, the OTLP export line, and why pytest stopped early."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .identity import RunIdentity
from .records import ItemResult
from .summary import AgentSummary


def header_lines(identity: RunIdentity) -> list[str]:
    s = identity.settings
    dataset = s.dataset + (f"@{s.revision}" if s.revision else "") + (f" [{s.split}]" if s.split != "train" else "")
    spec = identity.spec
    return [
        f"smoltrace: run {identity.run_id} · model {spec.label} ({spec.provider}"
        + (f" at {spec.api_base}" if spec.api_base else "")
        + ")",
        f"smoltrace: dataset {dataset} · agents {s.agent_type} · max steps {s.max_steps} · timeout {s.timeout:g} s",
    ]


def failure_text(result: ItemResult) -> str:
    from .judge import format_checks

    record = result.record
    lines = [f"{record.agent_type} agent on task {record.task_id!r}: {result.verdict.outcome.upper()}"]
    if result.verdict.error:
        lines.append(result.verdict.error)
    lines.append(
        f"stop reason: {record.stop_reason} · steps: {record.action_steps} · tokens: {record.total_tokens}"
        f" · {record.duration_ms:.0f} ms"
    )
    lines.append(format_checks(result.verdict))
    executed = [
        f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})" + ("" if c.ok else " ✗")
        for c in record.tool_calls
    ]
    lines.append("executed tool calls: " + (", ".join(executed) if executed else "none"))
    if record.response is not None:
        lines.append(f"final answer: {record.response[:500]!r}")
    return "\n".join(lines)


def stop_reason(session: pytest.Session) -> str | None:
    """Why pytest stopped before the end (``-x``: "stopping after 1 failures"), or None; under xdist the controller's
    reason is its scheduler's."""
    dsession = session.config.pluginmanager.get_plugin("dsession")
    for reason in (session.shouldfail, session.shouldstop, getattr(dsession, "shouldstop", None)):
        if isinstance(reason, str) and reason:
            return reason
    return None


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
