"""What a person reads: the header that says how to reproduce the run, an item's failure text (its table of checks),
the per-agent-type summary, the OTLP export line, and why pytest stopped early."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .identity import RunIdentity
from .models import ModelSpec
from .records import ItemResult
from .summary import AgentSummary


def header_lines(identity: RunIdentity) -> list[str]:
    s = identity.settings
    dataset = s.dataset + (f"@{s.revision}" if s.revision else "") + (f" [{s.split}]" if s.split != "train" else "")

    def about(spec: ModelSpec) -> str:
        where = f" at {spec.api_base}" if spec.api_base else ""
        settings = ", ".join(f"{k} {v}" for k, v in spec.generation.to_dict().items())
        return (
            (f"{spec.name} = " if spec.name else "")
            + f"{spec.label} ({spec.provider}{where})"
            + (f" [{settings}]" if settings else "")
        )

    models = [about(spec) for spec in identity.specs]
    lines = (
        [f"smoltrace: run {identity.run_id} · model {models[0]}"]
        if len(models) == 1
        else [f"smoltrace: run {identity.run_id} · {len(models)} models: " + "; ".join(models)]
    )
    repeats = f" · repeats {s.repeats}" if s.repeats > 1 else ""
    lines.append(
        f"smoltrace: dataset {dataset} · agents {s.agent_type} · max steps {s.max_steps} · timeout {s.timeout:g} s"
        + repeats
    )
    for spec in identity.specs:
        from .generation import plan

        for setting, reason in plan(spec.generation, spec).ignored.items():
            lines.append(f"smoltrace: {spec.reported_name}: {setting} is not sent ({reason})")
    return lines


#: Set on a report once its line showed the progress (pytest asks for the word again for the short summary).
PROGRESS_SHOWN = "_smoltrace_progress_shown"


@dataclass
class Progress:
    """The run so far, as verbose runs show it on each item's line: attempts done, share passed, tokens, cost."""

    done: int = 0
    passed: int = 0
    tokens: int = 0
    cost_usd: float | None = None
    _seen: set[tuple[str, int]] = field(default_factory=set)

    def add(self, nodeid: str, data: dict[str, Any], *, passed: bool) -> None:
        """Count one attempt (its result payload) once."""
        record = data.get("record") or {}
        key = (nodeid, int(record.get("attempt") or 0))
        if key in self._seen:
            return
        self._seen.add(key)
        self.done += 1
        self.passed += passed
        self.tokens += int(record.get("prompt_tokens") or 0) + int(record.get("completion_tokens") or 0)
        cost = record.get("cost_usd")
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + float(cost)

    def line(self) -> str:
        text = f"{self.done} done · {100 * self.passed / self.done:.0f}% passed · {self.tokens:,} tokens"
        return text + (f" · ${self.cost_usd:.4f}" if self.cost_usd is not None else "")


def failure_text(result: ItemResult) -> str:
    """What pytest prints for an item that did not pass (report.html shows the same text, rebuilt from its row)."""
    from smoltrace_export.failure_text import ToolCallLine, failure_message

    from .judge import format_checks

    record = result.record
    return failure_message(
        agent_type=record.agent_type,
        task_id=record.task_id,
        outcome=result.verdict.outcome,
        error=result.verdict.error,
        stop_reason=record.stop_reason,
        steps=record.action_steps,
        tokens=record.total_tokens,
        duration_ms=record.duration_ms,
        checks=format_checks(result.verdict),
        tool_calls=[ToolCallLine(c.name, c.arguments, c.ok) for c in record.tool_calls],
        response=record.response,
    )


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


def write_summary(
    tr: pytest.TerminalReporter,
    summaries: list[AgentSummary],
    run_dir: Path | None,
    statistics: Sequence[tuple[str, bool]] = (),
) -> None:
    """The summary table per model and agent type, then ``statistics`` (the statistics and comparison tables, as
    (line, red)), then where the results are."""
    tr.write_sep("=", "smoltrace summary")
    models = list(dict.fromkeys(s.model for s in summaries))
    for model in models:
        if len(models) > 1:
            tr.write_line(f"model {model}:")
        _write_agent_rows(tr, [s for s in summaries if s.model == model])
    for line, red in statistics:
        tr.write_line(line, red=red)
    if run_dir is not None:
        tr.write_line(f"results: {run_dir}")


def _write_agent_rows(tr: pytest.TerminalReporter, summaries: list[AgentSummary]) -> None:
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
        if s.judge_tokens is not None:  # the rubric judge's spend, never part of the agent's
            cost = f", ${s.judge_cost_usd:.4f}" if s.judge_cost_usd is not None else ""
            tr.write_line(f"       rubric judge (apart from the agent's): {s.judge_tokens} tokens{cost}")


def write_otlp_line(tr: pytest.TerminalReporter, reports: list[dict[str, Any]]) -> None:
    """One red line when spans could not be exported over OTLP (the reports of every process, merged)."""
    from .telemetry.otlp import OtlpReport, merge_reports, summary_line

    line = summary_line(merge_reports(OtlpReport.from_dict(r) for r in reports))
    if line is not None:
        tr.write_line(line, red=True)
