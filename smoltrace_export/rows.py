"""Records → rows: results rows (SMOLTRACE's 26 columns where they apply, plus ours), leaderboard rows (SMOLTRACE's
57 columns where they apply, one row per agent type, plus ours), and the Hub rows of traces and metrics.

Every row kind has a documented schema, ``column → (type, description)``, in column order:
:data:`RESULTS_SCHEMA`, :data:`LEADERBOARD_SCHEMA`, :data:`TRACES_SCHEMA`, :data:`METRICS_SCHEMA`. The same
schema builds the README table of a dataset card and the explicit ``datasets.Features`` of a Hub push, so a
column that is null in one run has the same type as in every other run (the leaderboard is a union of runs).

Types: ``string``, ``bool``, ``int64``, ``float64``, ``list<string>``, and ``json``: any JSON value in the run
directory's files, a JSON-encoded string on the Hub (``json.loads(row["checks"])`` reads it back). Every column
is nullable. ``schema_version`` marks changes of meaning.

Importing this module is cheap: ``datasets`` is imported only by :func:`features_for`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pytest_smoltrace.records import SCHEMA_VERSION, ItemResult
from pytest_smoltrace.summary import AgentSummary, first_attempt_passes, group_attempts

if TYPE_CHECKING:
    from datasets import Features

ColumnType = Literal["string", "bool", "int64", "float64", "list<string>", "json"]
Schema = Mapping[str, tuple[ColumnType, str]]
#: How a figure was obtained: read from a sensor, computed from a model of the hardware, or not available.
FigureLabel = Literal["measured", "estimated", "unavailable"]

PASS_RULE = "all_checks_passed_first_attempt"

RESULTS_SCHEMA: dict[str, tuple[ColumnType, str]] = {
    # SMOLTRACE's 26 columns, in its order
    "model": ("string", "Model id as given to the run (e.g. `openai/gpt-4.1-nano`)."),
    "evaluation_date": ("string", "When the item's agent run started (ISO 8601, UTC)."),
    "task_id": ("string", "The task's `id` in its source."),
    "test_case_uid": (
        "string",
        "pytest node id `smoltrace/<source>::<agent_type>::<id>`; with `attempt`, unique in a run.",
    ),
    "agent_type": ("string", "`tool` (ToolCallingAgent) or `code` (CodeAgent)."),
    "difficulty": ("string", "The task's difficulty (`easy`/`medium`/`hard`) or null."),
    "prompt": ("string", "The text given to `agent.run`."),
    "success": ("bool", "Every check of this attempt passed (its pytest outcome is `passed`)."),
    "pass_at_1_passed": (
        "bool",
        "`success` on the attempt pass@1 counts (the item's first attempt that finished); null on other attempts "
        "and repeats.",
    ),
    "tool_called": ("bool", "At least one tool other than `final_answer` was executed without raising."),
    "correct_tool": ("bool", "The `expected_tool` check passed; null when the task expects no tool."),
    "final_answer_called": ("bool", "The agent called `final_answer` (a max-steps summary is not one)."),
    "response_correct": ("bool", "The keyword and expected-answer checks passed; null when the task has neither."),
    "tools_used": ("list<string>", "Executed tool calls in order (`final_answer` and calls that raised excluded)."),
    "steps": ("int64", "Action steps the agent took (the forced max-steps summary is not a step)."),
    "response": ("string", "The final answer, or the max-steps summary, as text."),
    "error": ("string", "The agent or model error, if any."),
    "stop_reason": ("string", "`final_answer`, `max_steps`, `timeout` or `error`."),
    "timed_out": ("bool", "The item hit the per-item wall-clock limit."),
    "trace_id": ("string", "OpenTelemetry trace id of the item's root span (hex), when traced."),
    "span_id": ("string", "Root span id (hex), when traced."),
    "run_id": ("string", "The run's id (also the run directory's name)."),
    "execution_time_ms": ("float64", "Wall-clock duration of the agent run in milliseconds."),
    "total_tokens": ("int64", "Prompt + completion tokens of the run, counted once; null when unknown."),
    "cost_usd": ("float64", "Cost of the model calls in USD; null when unknown."),
    "enhanced_trace_info": (
        "string",
        "JSON-encoded string `{trace_id, root_span_id, total_tokens, duration_ms, cost_usd}` (as in SMOLTRACE).",
    ),
    # ours
    "category": ("string", "The task's category, or null."),
    "prompt_tokens": ("int64", "Prompt (input) tokens; null when unknown."),
    "completion_tokens": ("int64", "Completion (output) tokens; null when unknown."),
    "cached_input_tokens": (
        "int64",
        "Prompt tokens read from the provider's prompt cache (part of prompt_tokens); null when not reported.",
    ),
    "cache_creation_input_tokens": (
        "int64",
        "Prompt tokens written to the provider's prompt cache (part of prompt_tokens); null when not reported.",
    ),
    "reasoning_tokens": (
        "int64",
        "Completion tokens spent on hidden reasoning (part of completion_tokens); null when not reported.",
    ),
    "outcome": ("string", "`passed`, `failed` (a check failed) or `error` (agent error or timeout)."),
    "source": ("string", "Where the task came from (bundled set, file or dataset)."),
    "provider": ("string", "Model provider (`litellm`, `inference`, `transformers`, `ollama`)."),
    "checks": ("json", "The verdict's checks: a list of `{name, passed, expected, actual}`."),
    "tool_calls": ("json", "Every executed tool call: `{name, arguments, result, error, duration_ms, started_at}`."),
    "error_type": ("string", "Class name of the error, if any."),
    "repeat": ("int64", "Repeat index of the item (`--smoltrace-repeats`; 0 = the first repeat)."),
    "attempt": (
        "int64",
        "0-based attempt of the item: one row per attempt (pytest-rerunfailures reruns; the re-run of a cancelled "
        "attempt by `--smoltrace-resume`).",
    ),
    "final_attempt": (
        "bool",
        "This attempt's verdict is the item's: its last attempt (a cancelled run after a real attempt aside).",
    ),
    "schema_version": ("int64", "Version of this row schema."),
}

_GPU_COLUMNS: dict[str, tuple[ColumnType, str]] = {
    "gpu_utilization_avg": ("float64", "Mean GPU utilisation in percent; null without a GPU."),
    "gpu_utilization_max": ("float64", "Peak GPU utilisation in percent; null without a GPU."),
    "gpu_memory_avg_mib": ("float64", "Mean GPU memory used in MiB; null without a GPU."),
    "gpu_memory_max_mib": ("float64", "Peak GPU memory used in MiB; null without a GPU."),
    "gpu_temperature_avg": ("float64", "Mean GPU temperature in °C; null without a GPU."),
    "gpu_temperature_max": ("float64", "Peak GPU temperature in °C; null without a GPU."),
    "gpu_power_avg_w": ("float64", "Mean GPU power draw in W; null without a GPU."),
}

LEADERBOARD_SCHEMA: dict[str, tuple[ColumnType, str]] = {
    # 1. identification
    "run_id": ("string", "The run's id; one leaderboard file per run id (republishing replaces it)."),
    "model": ("string", "Model id."),
    "agent_type": ("string", "`tool` or `code`: one row per agent type (SMOLTRACE merged both)."),
    "provider": ("string", "Model provider."),
    "timestamp": ("string", "When the run started (ISO 8601, UTC)."),
    "submitted_by": ("string", "Hub user who published the run; null for a local run."),
    # 2. grouping
    "use_case": ("string", "Free grouping label (lowercase-kebab), or null."),
    "team": ("string", "Team label, or null."),
    "purpose": ("string", "`selection`, `regression` or `monitoring`, or null."),
    "suite_version": ("string", "Version label of the task suite, or null."),
    # 3. hardware
    "hardware": ("string", "Hardware label of the machine that ran the benchmark, or null."),
    "hardware_detail": ("json", "`{cpu_model, logical_cores, memory_gb, os, gpus}`, or null."),
    "hardware_scope": ("string", "`model` when the model ran on this machine, `runner` otherwise; or null."),
    # 4. dataset references
    "results_dataset": ("string", "Hub dataset of the run's results (`local:<dir>` for a local run)."),
    "traces_dataset": ("string", "Hub dataset of the run's traces, or null."),
    "metrics_dataset": ("string", "Hub dataset of the run's metrics, or null."),
    "dataset_used": ("string", "Task source: bundled set name, file path or Hub dataset."),
    # 5. scores
    "total_tests": ("int64", "Items of this agent type that finished (an item's verdict is its last attempt's)."),
    "successful_tests": ("int64", "Items that passed."),
    "failed_tests": ("int64", "Items where a check failed."),
    "success_rate": ("float64", "successful_tests / total_tests × 100, 2 decimals."),
    "pass_at_1": (
        "float64",
        "Share (0–1) of tasks whose first attempt passed (a rerun never counts; a cancelled or crashed attempt is "
        "not one), 4 decimals.",
    ),
    "pass_rule": ("string", f"How pass@1 is decided: `{PASS_RULE}`."),
    "pass_attempts": ("int64", "Attempts per task counted by pass@1 (1)."),
    "evaluated_prompts": ("int64", "Distinct tasks with a first attempt."),
    "passed_prompts": ("int64", "Distinct tasks whose first attempt passed."),
    # 6. efficiency
    "avg_steps": ("float64", "Mean action steps per item."),
    "avg_duration_ms": ("float64", "Mean agent run duration per finished item, its attempts together (ms)."),
    "total_duration_ms": ("float64", "Sum of agent run durations of every attempt (ms)."),
    "total_tokens": ("int64", "Sum of prompt + completion tokens of every attempt (= the sum over results.json)."),
    "avg_tokens_per_test": ("int64", "Tokens of the finished items' attempts / total_tests, rounded."),
    "total_cost_usd": ("float64", "Sum of known costs of every attempt in USD; null when no cost is known."),
    "avg_cost_per_test_usd": (
        "float64",
        "Cost of the finished items' attempts / total_tests; null when no cost is known.",
    ),
    "total_prompt_tokens": ("int64", "Sum of prompt tokens."),
    "total_completion_tokens": ("int64", "Sum of completion tokens."),
    "total_cached_input_tokens": ("int64", "Sum of cached prompt tokens (part of the prompt tokens); null: unknown."),
    "total_cache_creation_input_tokens": ("int64", "Sum of prompt tokens written to the cache; null: unknown."),
    "total_reasoning_tokens": ("int64", "Sum of reasoning tokens (part of the completion tokens); null: unknown."),
    # 7. run status
    "run_status": ("string", "`completed`, `partial` (stopped after some items) or `failed` (none finished)."),
    "run_stop_reason": ("string", "`completed`, or why the run stopped early; null when unknown."),
    "planned_tests": ("int64", "Items of this agent type collected for the run."),
    "completed_tests": ("int64", "Items that finished (= total_tests)."),
    "interrupted_tests": ("int64", "Planned items that never finished."),
    "timed_out_tests": ("int64", "Items stopped by the per-item time limit."),
    "max_steps_tests": ("int64", "Items that ran out of steps."),
    "errored_tests": ("int64", "Items with an agent/model error or timeout (pytest error outcome)."),
    "task_timeout_s": ("float64", "Per-item wall-clock limit (s)."),
    "request_timeout_s": ("float64", "Per-model-request limit (s), or null."),
    "tool_timeout_s": ("float64", "Per-tool-call limit (s), or null."),
    # 8. generation settings
    "generation_settings": ("json", "`{requested, applied, not_applied}` generation parameters, or null."),
    # 9. environment
    "co2_emissions_g": (
        "float64",
        "This row's share (environment_share) of the CO2 the run emitted, in grams; null when unavailable "
        "(see co2_label).",
    ),
    "power_cost_total_usd": (
        "float64",
        "This row's share (environment_share) of the run's energy cost in USD; null when unavailable.",
    ),
    # 10. GPU
    **_GPU_COLUMNS,
    # 11.
    "notes": ("string", "Free text, or null."),
    # ours
    "dataset_revision": ("string", "Pinned revision of the task dataset, or null."),
    "tool_called_rate": ("float64", "Percent of items that executed at least one tool."),
    "correct_tool_rate": ("float64", "Percent of items expecting a tool whose expected_tool check passed; or null."),
    "run_duration_s": ("float64", "Wall-clock duration of the whole run (s)."),
    "co2_label": ("string", "`measured`, `estimated` or `unavailable`: how co2_emissions_g was obtained."),
    "power_cost_label": ("string", "`measured`, `estimated` or `unavailable`: how power_cost_total_usd was obtained."),
    "gpu_label": ("string", "`measured` or `unavailable`: whether the gpu_* columns come from NVML samples."),
    "attempts": ("int64", "Attempts of this agent type's items (its rows of results.json): reruns and cancelled runs."),
    "flaky_tests": ("int64", "Items that passed on a rerun after an attempt that failed or errored."),
    "cancelled_tests": (
        "int64",
        "Items whose run had started ahead but pytest never ran them (-x, --maxfail): spend counted, not completed.",
    ),
    "environment_share": (
        "float64",
        "Share (0–1) of the run's CO2 and energy cost given to this row: its agent type's share of the attempts' run "
        "time (the rows of a run sum to the run's figures); null: the figures are the whole run's.",
    ),
    "schema_version": ("int64", "Version of this row schema."),
}

TRACES_SCHEMA: dict[str, tuple[ColumnType, str]] = {
    "trace_id": ("string", "OpenTelemetry trace id (hex) of the item's root span."),
    "root_span_id": ("string", "Span id (hex) of the item's root span."),
    "run_id": ("string", "The run's id."),
    "test_case_uid": ("string", "pytest node id of the item."),
    "task_id": ("string", "Task id."),
    "agent_type": ("string", "`tool` or `code`."),
    "span_count": ("int64", "Number of spans in the trace."),
    "duration_ms": ("float64", "Duration of the root span (ms), when known."),
    "spans": (
        "json",
        "The spans as in traces.json: `{span_id, parent_span_id, name, kind, category, start_time, "
        "end_time, duration_ms, status, attributes, events}`.",
    ),
    "extra": ("json", "Any other fields of the trace document, or null."),
    "schema_version": ("int64", "Version of this row schema."),
}

METRICS_SCHEMA: dict[str, tuple[ColumnType, str]] = {
    "run_id": ("string", "The run's id."),
    "kind": (
        "string",
        "`series` (one sample), `aggregate` (a run-level statistic), `figure` (energy/CO2/cost with its label) "
        "or `context` (processes, GPUs, labels, assumptions of the run).",
    ),
    "name": ("string", "Metric name: `gpu.utilization`, `gpu_power_avg_w`, `energy.gpu_wh`, `co2_g`, …"),
    "unit": ("string", "Unit of `value` (`%`, `MiB`, `W`, `Cel`, `Wh`, `g`, `USD`, `s`), or null."),
    "label": ("string", "`measured`, `estimated` or `unavailable`."),
    "resource": ("string", "What was measured: `gpu:<id>`, a process (`controller`, `gw0`), a GPU key; or null."),
    "timestamp": ("float64", "Sample time (Unix seconds) of a series sample; null otherwise."),
    "value": ("float64", "The number; null when unavailable."),
    "extra": ("json", "Everything else about the row (GPU name, host, scope, method, context), or null."),
    "schema_version": ("int64", "Version of this row schema."),
}

SCHEMAS: dict[str, dict[str, tuple[ColumnType, str]]] = {
    "results": RESULTS_SCHEMA,
    "leaderboard": LEADERBOARD_SCHEMA,
    "traces": TRACES_SCHEMA,
    "metrics": METRICS_SCHEMA,
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _answer_correct(result: ItemResult) -> bool | None:
    """Keywords and expected answer both hold; None when the task has neither check."""
    checks = [c for c in result.verdict.checks if c.name in ("expected_keywords", "expected_answer")]
    return all(c.passed for c in checks) if checks else None


def result_rows(results: Iterable[ItemResult]) -> list[dict[str, Any]]:
    """Results rows for the attempts ``results`` (in their order), each knowing whether pass@1 counts it and whether
    it is its item's last attempt."""
    results = list(results)
    items = group_attempts(results)
    firsts = {id(g.first) for g in items if not g.cancelled}
    finals = {id(g.final) for g in items}
    return [result_row(r, first=id(r) in firsts, final=id(r) in finals) for r in results]


def result_row(result: ItemResult, *, first: bool | None = None, final: bool = True) -> dict[str, Any]:
    """One results row (columns of :data:`RESULTS_SCHEMA`, in its order) for one attempt of an item.

    ``first``: whether pass@1 counts this attempt (default: it is attempt 0); ``final``: whether it is the item's
    last attempt. :func:`result_rows` decides both from all the attempts."""
    record, verdict, task = result.record, result.verdict, result.task
    counted = record.attempt == 0 if first is None else first
    expected_tool = verdict.check("expected_tool")
    enhanced = {
        "trace_id": record.trace_id,
        "root_span_id": record.span_id,
        "total_tokens": record.total_tokens,
        "duration_ms": round(record.duration_ms, 3),
        "cost_usd": record.cost_usd,
    }
    row = {
        "model": record.model,
        "evaluation_date": iso(record.started_at),
        "task_id": record.task_id,
        "test_case_uid": result.nodeid,
        "agent_type": record.agent_type,
        "difficulty": task.get("difficulty"),
        "prompt": task.get("prompt"),
        "success": verdict.passed,
        "pass_at_1_passed": verdict.passed if record.repeat == 0 and counted else None,
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
        "cost_usd": record.cost_usd,
        "enhanced_trace_info": json.dumps(enhanced),
        "category": task.get("category"),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "cache_creation_input_tokens": record.cache_creation_input_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "outcome": verdict.outcome,
        "source": record.source,
        "provider": record.provider,
        "checks": [c.to_dict() for c in verdict.checks],
        "tool_calls": [c.to_dict() for c in record.tool_calls],
        "error_type": record.error_type,
        "repeat": record.repeat,
        "attempt": record.attempt,
        "final_attempt": final,
        "schema_version": SCHEMA_VERSION,
    }
    return {name: row[name] for name in RESULTS_SCHEMA}


@dataclass(frozen=True)
class EnvironmentFigures:
    """Energy and GPU figures of a run (filled by the telemetry module; unavailable until it measures them)."""

    co2_emissions_g: float | None = None
    co2_label: FigureLabel = "unavailable"
    power_cost_total_usd: float | None = None
    power_cost_label: FigureLabel = "unavailable"
    gpu_utilization_avg: float | None = None
    gpu_utilization_max: float | None = None
    gpu_memory_avg_mib: float | None = None
    gpu_memory_max_mib: float | None = None
    gpu_temperature_avg: float | None = None
    gpu_temperature_max: float | None = None
    gpu_power_avg_w: float | None = None
    gpu_label: FigureLabel = "unavailable"
    #: The fraction of the run's CO2 and energy cost these figures are (one agent type's share); None: the whole run's.
    share: float | None = None

    def apportioned(self, share: float) -> EnvironmentFigures:
        """These figures' ``share`` (0–1): CO2 and energy cost scaled, GPU averages and peaks (not additive) kept."""

        def part(value: float | None) -> float | None:
            return None if value is None else value * share

        return replace(
            self,
            co2_emissions_g=part(self.co2_emissions_g),
            power_cost_total_usd=part(self.power_cost_total_usd),
            share=round(share, 6),
        )


@dataclass(frozen=True)
class RunContext:
    """What a leaderboard row says about the run as a whole (all fields after ``results_location`` optional)."""

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
    traces_location: str | None = None
    metrics_location: str | None = None
    submitted_by: str | None = None
    use_case: str | None = None
    team: str | None = None
    purpose: str | None = None
    suite_version: str | None = None
    hardware: str | None = None
    hardware_detail: Mapping[str, Any] | None = None
    hardware_scope: str | None = None
    run_stop_reason: str | None = None
    request_timeout_s: float | None = None
    tool_timeout_s: float | None = None
    generation_settings: Mapping[str, Any] | None = None
    notes: str | None = None
    environment: EnvironmentFigures = EnvironmentFigures()


def leaderboard_row(
    summary: AgentSummary,
    ctx: RunContext,
    *,
    results: Iterable[ItemResult] = (),
    environment: EnvironmentFigures | None = None,
) -> dict[str, Any]:
    """One leaderboard row (columns of :data:`LEADERBOARD_SCHEMA`, in its order) for one agent type.

    ``results`` (the run's item results; other agent types are ignored) adds what the summary lacks: cost,
    pass@1 over first attempts and the prompt counts. ``environment`` overrides ``ctx.environment`` for this row.
    """
    total = summary.total
    env = environment or ctx.environment
    mine = [r for r in results if r.record.agent_type == summary.agent_type]
    evaluated, passed_prompts = first_attempt_passes(group_attempts(mine))
    pass_at_1: float | None
    if evaluated:
        pass_at_1 = round(passed_prompts / evaluated, 4)
    else:
        evaluated, passed_prompts = total, summary.passed
        pass_at_1 = round(summary.passed / total, 4) if total else None
    costs = [r.record.cost_usd for r in mine if r.record.cost_usd is not None]
    total_cost = float(f"{sum(costs):.10g}") if costs else None  # 10 significant digits: cents of a cent survive
    row: dict[str, Any] = {
        "run_id": ctx.run_id,
        "model": ctx.model,
        "agent_type": summary.agent_type,
        "provider": ctx.provider,
        "timestamp": iso(ctx.started_at),
        "submitted_by": ctx.submitted_by,
        "use_case": ctx.use_case,
        "team": ctx.team,
        "purpose": ctx.purpose,
        "suite_version": ctx.suite_version,
        "hardware": ctx.hardware,
        "hardware_detail": dict(ctx.hardware_detail) if ctx.hardware_detail is not None else None,
        "hardware_scope": ctx.hardware_scope,
        "results_dataset": ctx.results_location,
        "traces_dataset": ctx.traces_location,
        "metrics_dataset": ctx.metrics_location,
        "dataset_used": ctx.dataset,
        "total_tests": total,
        "successful_tests": summary.passed,
        "failed_tests": summary.failed,
        "success_rate": summary.success_rate,
        "pass_at_1": pass_at_1,
        "pass_rule": PASS_RULE,
        "pass_attempts": 1,
        "evaluated_prompts": evaluated,
        "passed_prompts": passed_prompts,
        "avg_steps": summary.avg_steps,
        "avg_duration_ms": summary.avg_duration_ms,
        "total_duration_ms": round(summary.total_duration_ms, 3),
        "total_tokens": summary.total_tokens,
        "avg_tokens_per_test": summary.avg_tokens,
        "total_cost_usd": total_cost,
        "avg_cost_per_test_usd": (
            float(f"{(total_cost - summary.cancelled_cost_usd) / total:.10g}")
            if total_cost is not None and total
            else None
        ),
        "total_prompt_tokens": summary.prompt_tokens,
        "total_completion_tokens": summary.completion_tokens,
        "total_cached_input_tokens": summary.cached_input_tokens,
        "total_cache_creation_input_tokens": summary.cache_creation_input_tokens,
        "total_reasoning_tokens": summary.reasoning_tokens,
        "run_status": ctx.run_status,
        "run_stop_reason": ctx.run_stop_reason or ("completed" if ctx.run_status == "completed" else None),
        "planned_tests": summary.planned,
        "completed_tests": total,
        "interrupted_tests": max(summary.planned - total, 0),
        "timed_out_tests": summary.timed_out,
        "max_steps_tests": summary.max_steps,
        "errored_tests": summary.errored,
        "task_timeout_s": ctx.task_timeout_s,
        "request_timeout_s": ctx.request_timeout_s,
        "tool_timeout_s": ctx.tool_timeout_s,
        "generation_settings": dict(ctx.generation_settings) if ctx.generation_settings is not None else None,
        "co2_emissions_g": env.co2_emissions_g,
        "power_cost_total_usd": env.power_cost_total_usd,
        **{name: getattr(env, name) for name in _GPU_COLUMNS},
        "notes": ctx.notes,
        "dataset_revision": ctx.dataset_revision,
        "tool_called_rate": summary.tool_called_rate,
        "correct_tool_rate": summary.correct_tool_rate,
        "run_duration_s": round(ctx.finished_at - ctx.started_at, 3),
        "co2_label": env.co2_label,
        "power_cost_label": env.power_cost_label,
        "gpu_label": env.gpu_label,
        "attempts": summary.attempts or len(mine) or total,
        "flaky_tests": summary.flaky,
        "cancelled_tests": summary.cancelled,
        "environment_share": env.share,
        "schema_version": SCHEMA_VERSION,
    }
    return {name: row[name] for name in LEADERBOARD_SCHEMA}


# -- traces.json / metrics.json → Hub rows ---------------------------------------------------------------------------


def trace_rows(documents: Iterable[Mapping[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """Hub rows (:data:`TRACES_SCHEMA`) for the documents of ``traces.json``, one row per item trace.

    Reads the telemetry module's document ``{trace_id, root_span_id, run_id, nodeid, task_id, agent_type,
    span_count, spans}``; other fields go to ``extra``.
    """
    named = {"trace_id", "root_span_id", "run_id", "test_case_uid", "nodeid", "task_id", "agent_type"}
    named |= {"span_count", "duration_ms", "spans"}
    rows = []
    for doc in documents:
        found = doc.get("spans")
        spans: list[Any] = found if isinstance(found, list) else []
        root = next(
            (sp for sp in spans if isinstance(sp, Mapping) and sp.get("span_id") == doc.get("root_span_id")), None
        )
        duration = doc.get("duration_ms", root.get("duration_ms") if root is not None else None)
        rows.append(
            {
                "trace_id": doc.get("trace_id"),
                "root_span_id": doc.get("root_span_id"),
                "run_id": doc.get("run_id") or run_id,
                "test_case_uid": doc.get("test_case_uid") or doc.get("nodeid"),
                "task_id": doc.get("task_id"),
                "agent_type": doc.get("agent_type"),
                "span_count": doc.get("span_count", len(spans)),
                "duration_ms": duration,
                "spans": spans,
                "extra": {k: v for k, v in doc.items() if k not in named} or None,
                "schema_version": SCHEMA_VERSION,
            }
        )
    return rows


_LABELS: tuple[FigureLabel, ...] = ("measured", "estimated", "unavailable")
_METRICS_DOC_KEYS = {"schema_version", "run_id", "series", "aggregates", "energy", "co2_g", "power_cost_usd"}


def _label(value: Any) -> FigureLabel:
    text = str(value or "").lower()
    return next((label for label in _LABELS if text.startswith(label)), "unavailable")


def _unit_of(name: str) -> str | None:
    for suffix, unit in (("_mib", "MiB"), ("_w", "W"), ("_seconds", "s"), ("_wh", "Wh"), ("_usd", "USD")):
        if name.endswith(suffix):
            return unit
    if "utilization" in name or "percent" in name:
        return "%"
    if "temperature" in name:
        return "Cel"
    return None


def _metric_row(
    base: Mapping[str, Any],
    kind: str,
    name: str | None = None,
    *,
    unit: str | None = None,
    label: FigureLabel | None = None,
    resource: str | None = None,
    timestamp: float | None = None,
    value: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {**base, "kind": kind, "name": name, "unit": unit, "label": label, "resource": resource}
    row.update(timestamp=timestamp, value=value, extra=dict(extra) if extra else None)
    return {column: row.get(column) for column in METRICS_SCHEMA}


def _figure_row(base: Mapping[str, Any], kind: str, name: str, figure: Mapping[str, Any]) -> dict[str, Any]:
    value = figure.get("value")
    return _metric_row(
        base,
        kind,
        name,
        unit=figure.get("unit"),
        label=_label(figure.get("label")) if value is not None else "unavailable",
        resource=figure.get("resource"),
        value=value,
        extra={k: v for k, v in figure.items() if k not in ("value", "unit", "label", "resource")},
    )


def _series_rows(base: Mapping[str, Any], sample: Mapping[str, Any]) -> list[dict[str, Any]]:
    points = sample.get("points")
    if isinstance(points, list):  # {name, unit, label, resource, points: [[t, v] | {t, value}]}
        out = []
        for point in points:
            if isinstance(point, Mapping):
                t, v = point.get("t", point.get("timestamp")), point.get("value")
            else:
                t, v = point
            out.append(
                _metric_row(
                    base,
                    "series",
                    sample.get("name"),
                    unit=sample.get("unit"),
                    label=_label(sample.get("label") or "measured"),
                    resource=sample.get("resource"),
                    timestamp=t,
                    value=v,
                )
            )
        return out
    known = {"timestamp", "timestamp_unix", "metric", "name", "gpu_id", "value", "unit", "label", "resource"}
    gpu_id = sample.get("gpu_id")
    stamp = sample.get("timestamp_unix", sample.get("timestamp"))
    return [
        _metric_row(
            base,
            "series",
            sample.get("metric") or sample.get("name"),
            unit=sample.get("unit"),
            label=_label(sample.get("label") or "measured"),
            resource=f"gpu:{gpu_id}" if gpu_id is not None else sample.get("resource") or sample.get("process"),
            timestamp=stamp if isinstance(stamp, (int, float)) else None,
            value=sample.get("value"),
            extra={k: v for k, v in sample.items() if k not in known},
        )
    ]


def metric_rows(metrics: Mapping[str, Any] | None, run_id: str) -> list[dict[str, Any]]:
    """Hub rows (:data:`METRICS_SCHEMA`) for a ``metrics.json`` document (the telemetry module's format).

    ``series`` samples ``{timestamp_unix, metric, gpu_id, value, unit, …}`` become ``series`` rows;
    ``aggregates`` (numbers, and ``per_gpu`` entries) ``aggregate`` rows labelled from the document's ``labels``;
    ``energy.*``, ``co2_g`` and ``power_cost_usd`` (``{value, unit, label, scope, method}``) ``figure`` rows; the
    rest (processes, GPUs, labels, assumptions, unavailable) one ``context`` row. A placeholder document
    (``status: unavailable`` and nothing else) gives no rows.
    """
    if not metrics:
        return []
    base = {"run_id": metrics.get("run_id") or run_id, "schema_version": SCHEMA_VERSION}
    found = metrics.get("labels")
    labels: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    rows: list[dict[str, Any]] = []
    series = metrics.get("series")
    for sample in series if isinstance(series, list) else []:
        if isinstance(sample, Mapping):
            rows += _series_rows(base, sample)
    aggregates = metrics.get("aggregates")
    for name, value in (aggregates if isinstance(aggregates, Mapping) else {}).items():
        if isinstance(value, list):  # per_gpu entries
            for entry in value:
                if isinstance(entry, Mapping):
                    key = entry.get("key")
                    rows.append(_metric_row(base, "aggregate", name, label="measured", resource=key, extra=entry))
        elif isinstance(value, Mapping):
            rows.append(_figure_row(base, "aggregate", name, value))
        else:
            source = labels.get("gpu_metrics") if name.startswith("gpu_") else labels.get("cpu_metrics")
            label: FigureLabel = _label(source or "measured") if value is not None else "unavailable"
            rows.append(_metric_row(base, "aggregate", name, unit=_unit_of(name), label=label, value=value))
    energy = metrics.get("energy")
    for name, figure in (energy if isinstance(energy, Mapping) else {}).items():
        if isinstance(figure, Mapping):
            rows.append(_figure_row(base, "figure", f"energy.{name}", figure))
    for name in ("co2_g", "power_cost_usd"):
        figure = metrics.get(name)
        if isinstance(figure, Mapping):
            rows.append(_figure_row(base, "figure", name, figure))
    context = {k: v for k, v in metrics.items() if k not in _METRICS_DOC_KEYS}
    if context and not (context.get("status") == "unavailable" and not rows):
        rows.append(_metric_row(base, "context", extra=context))
    return rows


def metric_value_count(metrics: Mapping[str, Any] | None) -> int:
    """How many numbers a ``metrics.json`` document holds (rows of :func:`metric_rows` with a value)."""
    return sum(row["value"] is not None for row in metric_rows(metrics, ""))


def environment_from_metrics(metrics: Mapping[str, Any] | None) -> EnvironmentFigures:
    """The leaderboard's environment columns from a ``metrics.json`` document (all unavailable without one)."""
    if not metrics:
        return EnvironmentFigures()

    def figure(name: str) -> tuple[float | None, FigureLabel]:
        fig = metrics.get(name)
        if not isinstance(fig, Mapping) or fig.get("value") is None:
            return None, "unavailable"
        return float(fig["value"]), _label(fig.get("label"))

    found = metrics.get("aggregates")
    aggregates: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    gpu = {name: aggregates.get(name) for name in _GPU_COLUMNS}
    co2, co2_label = figure("co2_g")
    cost, cost_label = figure("power_cost_usd")
    return EnvironmentFigures(
        co2_emissions_g=co2,
        co2_label=co2_label,
        power_cost_total_usd=cost,
        power_cost_label=cost_label,
        **{k: float(v) if isinstance(v, (int, float)) else None for k, v in gpu.items()},
        gpu_label="measured" if any(v is not None for v in gpu.values()) else "unavailable",
    )


# -- schema checks, Hub encoding, Features ----------------------------------------------------------------------------


def _type_ok(kind: ColumnType, value: Any) -> bool:
    if value is None:
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int64":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float64":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "list<string>":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True  # json: anything JSON-serialisable


def schema_problems(row: Mapping[str, Any], schema: Schema) -> list[str]:
    """What is wrong with ``row`` against ``schema`` (missing/extra columns, wrong types); empty when it matches."""
    problems = [f"missing column {name!r}" for name in schema if name not in row]
    problems += [f"unexpected column {name!r}" for name in row if name not in schema]
    for name, (kind, _) in schema.items():
        if name in row and not _type_ok(kind, row[name]):
            problems.append(f"column {name!r}: {type(row[name]).__name__} is not {kind}")
    return problems


def hub_row(row: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``row`` conformed to ``schema`` for a Hub push: columns in order, missing ones null, unknown ones dropped,
    ``json`` columns JSON-encoded, integers of ``float64`` columns as floats."""
    out: dict[str, Any] = {}
    for name, (kind, _) in schema.items():
        value = row.get(name)
        if value is None:
            out[name] = None
        elif kind == "json":
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
        elif kind == "float64":
            out[name] = float(value)
        elif kind == "int64":
            out[name] = int(value)
        elif kind == "bool":
            out[name] = bool(value)
        elif kind == "string":
            out[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        else:
            out[name] = [str(v) for v in value]
    return out


def features_for(schema: Schema) -> Features:
    """Explicit ``datasets.Features`` for Hub rows of ``schema`` (``json`` columns are strings)."""
    import datasets

    list_type = getattr(datasets, "List", None) or datasets.Sequence
    mapping: dict[str, Any] = {}
    for name, (kind, _) in schema.items():
        if kind == "list<string>":
            mapping[name] = list_type(datasets.Value("string"))
        else:
            mapping[name] = datasets.Value({"json": "string"}.get(kind, kind))
    return datasets.Features(mapping)


def schema_table(schema: Schema) -> str:
    """The schema as a Markdown table (for dataset cards and the README)."""
    lines = ["| column | type | description |", "|---|---|---|"]
    for name, (kind, description) in schema.items():
        shown = "string (JSON)" if kind == "json" else kind
        lines.append(f"| `{name}` | {shown} | {description.replace('|', '/')} |")
    return "\n".join(lines)
