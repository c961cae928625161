"""The row schemas: for each row kind its columns, in order, as ``column → (type, description)``.

:data:`RESULTS_SCHEMA` (SMOLTRACE's 26 columns where they apply, plus ours), :data:`LEADERBOARD_SCHEMA` (SMOLTRACE's
57 columns where they apply, one row per agent type, plus ours), :data:`TRACES_SCHEMA` and :data:`METRICS_SCHEMA` (the
Hub rows of ``traces.json`` and ``metrics.json``); :data:`SCHEMAS` names them by kind. The builders in
:mod:`smoltrace_export.rows` fill them; the same schema builds the README table of a dataset card
(:func:`schema_table`) and the explicit ``datasets.Features`` of a Hub push (:func:`smoltrace_export.hub.features_for`),
so a column that is null in one run has the same type as in every other run (the leaderboard is a union of runs).

Types: ``string``, ``bool``, ``int64``, ``float64``, ``list<string>``, and ``json``: any JSON value in the run
directory's files, a JSON-encoded string on the Hub (``json.loads(row["checks"])`` reads it back). Every column
is nullable. ``schema_version`` marks changes of meaning.

This module imports nothing of the project: it is data, a type check and a Markdown table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

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
    "provider": ("string", "Model provider (`litellm`, `openai`, `inference`, `transformers`, `ollama`, `local`)."),
    "checks": ("json", "The verdict's checks: a list of `{name, passed, expected, actual}`."),
    "tool_calls": ("json", "Every executed tool call: `{name, arguments, result, error, duration_ms, started_at}`."),
    "error_type": ("string", "Class name of the error, if any."),
    "repeat": ("int64", "Repeat index of the item (`--smoltrace-repeats`; 0 = the first repeat)."),
    "model_label": (
        "string",
        "The model's name in the session (--smoltrace-models label, or made for one of several --smoltrace-model "
        "values); null for a session's only, unnamed model. Statistics group by it, else by `model`.",
    ),
    "replayed": (
        "bool",
        "Every model call came from a cassette (--smoltrace-record-mode): cost_usd is 0; see recorded_cost_usd.",
    ),
    "recorded_cost_usd": (
        "float64",
        "What a replayed item's recorded model calls cost (at this run's price); or null.",
    ),
    "attempt": (
        "int64",
        "0-based attempt of the item: one row per attempt (pytest-rerunfailures reruns; the re-run of a cancelled "
        "attempt by `--smoltrace-resume`).",
    ),
    "final_attempt": (
        "bool",
        "This attempt's verdict is the item's: its last attempt (a cancelled run after a real attempt aside).",
    ),
    "repeated_calls": (
        "int64",
        "The most times one tool was called with identical arguments (final_answer excluded, calls that raised "
        "included; 0 without tool calls): a loop shows as a high count. A check with the task's max_repeated_calls.",
    ),
    "judge_tokens": (
        "int64",
        "Tokens of the rubric judge's calls (--smoltrace-judge-model), never part of total_tokens; null when no "
        "judge was called.",
    ),
    "judge_cost_usd": (
        "float64",
        "Cost of the rubric judge's calls in USD, never part of cost_usd; null when no judge was called or its "
        "model has no price.",
    ),
    "schema_version": ("int64", "Version of this row schema."),
}

#: The leaderboard's GPU columns (section 10), filled from the metrics document's aggregates.
GPU_COLUMNS: dict[str, tuple[ColumnType, str]] = {
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
    **GPU_COLUMNS,
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
    "model_label": ("string", "The model's name in the session (several models, or a models-file label); or null."),
    "repeats": ("int64", "Counted attempts per task (--smoltrace-repeats when nothing was lost); statistics.json."),
    "success_rate_ci95": ("json", "Wilson score 95 % interval of the success rate over every attempt: [low, high]."),
    "pass_at_k": ("json", 'Unbiased pass@k averaged over tasks, keyed by k ("1" … repeats): a success in k tries.'),
    "pass_hat_k": ("json", "Unbiased pass^k averaged over tasks, keyed by k: all k tries succeed (reliability)."),
    "flaky_task_count": ("int64", "Tasks with some attempts passed and some not (statistics.json lists them)."),
    "environment_share": (
        "float64",
        "Share (0–1) of the run's CO2 and energy cost given to this row: its agent type's share of the attempts' run "
        "time (the rows of a run sum to the run's figures); null: the figures are the whole run's.",
    ),
    "max_repeated_calls": (
        "int64",
        "The most times one tool was called with identical arguments in any finished item (results' repeated_calls).",
    ),
    "total_judge_tokens": (
        "int64",
        "Sum of the rubric judge's tokens over every attempt (judge_tokens), never part of total_tokens; null when "
        "no judge was called.",
    ),
    "total_judge_cost_usd": (
        "float64",
        "Sum of the rubric judge's known costs in USD (judge_cost_usd), never part of total_cost_usd; null when no "
        "judge cost is known.",
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
        "The spans as in traces.json: `{span_id, parent_span_id, name, category, kind, start_time, end_time, "
        "status, status_description, attributes, events, evaluations}`, a field at its default left out.",
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


# -- checks and rendering --------------------------------------------------------------------------------------------


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


def schema_table(schema: Schema) -> str:
    """The schema as a Markdown table (for dataset cards and the README)."""
    lines = ["| column | type | description |", "|---|---|---|"]
    for name, (kind, description) in schema.items():
        shown = "string (JSON)" if kind == "json" else kind
        lines.append(f"| `{name}` | {shown} | {description.replace('|', '/')} |")
    return "\n".join(lines)
