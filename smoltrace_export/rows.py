"""Records → rows: the builders of the four row kinds whose columns :mod:`smoltrace_export.schemas` documents.

- an item's attempts (:class:`~smoltrace_export.records.ItemResult`) → results rows (:func:`result_rows`,
  :func:`result_row`);
- an agent type's :class:`~smoltrace_export.summary.AgentSummary` and the run's :class:`RunContext` → a leaderboard
  row (:func:`leaderboard_row`);
- the documents of ``traces.json`` → trace rows (:func:`trace_rows`), read by :func:`read_trace_document`;
- the ``metrics.json`` document → metric rows (:func:`metric_rows`) and the leaderboard's environment columns
  (:func:`environment_from_metrics`), read by :func:`read_metrics_document`.

Every builder returns its schema's columns in the schema's order, with JSON values as the run directory's files hold
them; :mod:`smoltrace_export.hub` encodes rows for the Hub. Importing this module is cheap (no ``datasets``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .records import SCHEMA_VERSION, ItemResult
from .schemas import GPU_COLUMNS, LEADERBOARD_SCHEMA, METRICS_SCHEMA, PASS_RULE, RESULTS_SCHEMA, FigureLabel
from .summary import AgentSummary, Attempt, first_attempt_passes, group_attempts

if TYPE_CHECKING:
    from .statistics import StatisticsRow


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
        "difficulty": task.difficulty if task is not None else None,
        "prompt": task.prompt if task is not None else None,
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
        "category": task.category if task is not None else None,
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
        "model_label": record.model_label,
        "replayed": record.replayed,
        "recorded_cost_usd": record.recorded_cost_usd,
        "attempt": record.attempt,
        "final_attempt": final,
        "repeated_calls": record.repeated_calls,
        "judge_tokens": record.judge_tokens,
        "judge_cost_usd": record.judge_cost_usd,
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
    """What a leaderboard row says about the run as a whole (all fields after ``results_location`` optional).

    The leaderboard columns no run fills yet (SMOLTRACE's grouping and hardware labels, the request and tool time
    limits, the generation settings, notes) have no field here: :func:`leaderboard_row` writes them null, and the Hub
    publisher fills ``submitted_by`` and the dataset columns.
    """

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
    #: ``model`` when the model ran on this machine, ``runner`` otherwise.
    hardware_scope: str | None = None
    #: Why the run stopped; None: ``completed`` for a completed run, unknown otherwise.
    run_stop_reason: str | None = None
    environment: EnvironmentFigures = EnvironmentFigures()


def leaderboard_row(
    summary: AgentSummary,
    ctx: RunContext,
    *,
    results: Iterable[Attempt] = (),
    environment: EnvironmentFigures | None = None,
    statistics: StatisticsRow | None = None,
) -> dict[str, Any]:
    """One leaderboard row (columns of :data:`LEADERBOARD_SCHEMA`, in its order) for one agent type.

    ``results`` (the run's item results; other agent types and models are ignored) adds what the summary lacks: cost,
    pass@1 over first attempts and the prompt counts. ``environment`` overrides ``ctx.environment`` for this row;
    ``statistics`` (this model and agent type's row of statistics.json) gives the interval, pass@k and pass^k.
    """
    total = summary.total
    env = environment or ctx.environment
    mine = [
        r
        for r in results
        if r.record.agent_type == summary.agent_type and (not summary.model or r.record.model_name == summary.model)
    ]
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
        "submitted_by": None,  # the publisher fills it
        "use_case": None,
        "team": None,
        "purpose": None,
        "suite_version": None,
        "hardware": None,
        "hardware_detail": None,
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
        "request_timeout_s": None,
        "tool_timeout_s": None,
        "generation_settings": None,
        "co2_emissions_g": env.co2_emissions_g,
        "power_cost_total_usd": env.power_cost_total_usd,
        **{name: getattr(env, name) for name in GPU_COLUMNS},
        "notes": None,
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
        "model_label": next((r.record.model_label for r in mine), None),
        "repeats": statistics.repeats if statistics else None,
        "success_rate_ci95": list(statistics.success_rate_ci95) if statistics else None,
        "pass_at_k": dict(statistics.pass_at_k) if statistics else None,
        "pass_hat_k": dict(statistics.pass_hat_k) if statistics else None,
        "flaky_task_count": len(statistics.flaky_tasks) if statistics else None,
        "environment_share": env.share,
        "max_repeated_calls": summary.max_repeated_calls,
        "total_judge_tokens": summary.judge_tokens,
        "total_judge_cost_usd": summary.judge_cost_usd,
        "schema_version": SCHEMA_VERSION,
    }
    return {name: row[name] for name in LEADERBOARD_SCHEMA}


# -- traces.json → trace rows ----------------------------------------------------------------------------------------

#: The trace document's fields that have a column of their own (the rest go to ``extra``).
_TRACE_DOC_FIELDS = frozenset(
    {"trace_id", "root_span_id", "run_id", "test_case_uid", "nodeid", "task_id", "agent_type"}
    | {"span_count", "duration_ms", "spans"}
)


@dataclass(frozen=True)
class TraceDocument:
    """One document of ``traces.json`` as :func:`trace_rows` reads it.

    Identifying values are kept as found (the Hub's column check judges them); what has a default is resolved here.
    """

    trace_id: Any
    root_span_id: Any
    run_id: Any
    #: ``test_case_uid``, else the telemetry module's ``nodeid``.
    nodeid: Any
    task_id: Any
    agent_type: Any
    #: The document's ``span_count``, else the number of spans.
    span_count: Any
    #: The document's ``duration_ms``, else the root span's duration (None when unknown).
    duration_ms: Any
    #: The span dicts (empty when the document has no list of them).
    spans: list[Any]
    #: The document's other fields, or None.
    extra: dict[str, Any] | None


def read_trace_document(doc: Any, number: int = 1) -> TraceDocument:
    """Read the ``number``-th document of ``traces.json``: the telemetry module's ``{trace_id, root_span_id, run_id,
    nodeid, task_id, agent_type, span_count, spans}``.

    ``duration_ms`` is the root span's ``end_time - start_time`` (Unix ns); span dicts written before the format was
    compacted carry their own ``duration_ms``. Raises ``ValueError`` when the document is not a JSON object.
    """
    if not isinstance(doc, Mapping):
        raise ValueError(f"traces.json document {number} is a JSON {_json_kind(doc)}, not an object")
    found = doc.get("spans")
    spans: list[Any] = found if isinstance(found, list) else []
    root_id = doc.get("root_span_id")
    root = next((sp for sp in spans if isinstance(sp, Mapping) and sp.get("span_id") == root_id), None)
    return TraceDocument(
        trace_id=doc.get("trace_id"),
        root_span_id=root_id,
        run_id=doc.get("run_id"),
        nodeid=doc.get("test_case_uid") or doc.get("nodeid"),
        task_id=doc.get("task_id"),
        agent_type=doc.get("agent_type"),
        span_count=doc.get("span_count", len(spans)),
        duration_ms=doc.get("duration_ms", _span_duration_ms(root) if root is not None else None),
        spans=spans,
        extra={k: v for k, v in doc.items() if k not in _TRACE_DOC_FIELDS} or None,
    )


def _span_duration_ms(span: Mapping[str, Any]) -> float | None:
    """A span dict's duration in ms: its ``duration_ms`` (the format before compaction), else ``end - start``."""
    if isinstance(span.get("duration_ms"), (int, float)):
        return float(span["duration_ms"])
    start, end = span.get("start_time"), span.get("end_time")
    if isinstance(start, int) and isinstance(end, int):
        return (end - start) / 1e6
    return None


def trace_rows(documents: Iterable[Any], run_id: str) -> list[dict[str, Any]]:
    """Hub rows (:data:`~smoltrace_export.schemas.TRACES_SCHEMA`) for the documents of ``traces.json``, one row per
    item trace (see :func:`read_trace_document`); ``run_id`` stands in for a document without one."""
    rows = []
    for number, doc in enumerate(documents, start=1):
        trace = read_trace_document(doc, number)
        rows.append(
            {
                "trace_id": trace.trace_id,
                "root_span_id": trace.root_span_id,
                "run_id": trace.run_id or run_id,
                "test_case_uid": trace.nodeid,
                "task_id": trace.task_id,
                "agent_type": trace.agent_type,
                "span_count": trace.span_count,
                "duration_ms": trace.duration_ms,
                "spans": trace.spans,
                "extra": trace.extra,
                "schema_version": SCHEMA_VERSION,
            }
        )
    return rows


# -- metrics.json → metric rows and the leaderboard's environment ----------------------------------------------------

_LABELS: tuple[FigureLabel, ...] = ("measured", "estimated", "unavailable")
#: The metrics document's fields that have rows of their own (the rest is the ``context`` row).
_METRICS_DOC_FIELDS = frozenset(
    {"schema_version", "run_id", "series", "aggregates", "energy", "co2_g", "power_cost_usd"}
)
#: The top-level figures of a metrics document, besides ``energy.*``.
_FIGURES = ("co2_g", "power_cost_usd")


@dataclass(frozen=True)
class MetricsDocument:
    """A ``metrics.json`` document as :func:`metric_rows` and :func:`environment_from_metrics` read it.

    Containers of the wrong JSON kind read as empty and entries of the wrong kind are skipped (as a placeholder
    document has none of them); numbers and labels are kept as found.
    """

    run_id: Any
    #: How each kind of figure was obtained: ``{gpu_metrics, cpu_metrics, …}`` → a label text.
    labels: Mapping[str, Any]
    #: The ``series`` samples that are objects, in order.
    series: list[Mapping[str, Any]]
    #: ``aggregates``: name → a number, a figure object, or a list of ``per_gpu`` entries.
    aggregates: Mapping[str, Any]
    #: The ``energy`` figures that are objects: name → ``{value, unit, label, scope, method}``.
    energy: dict[str, Mapping[str, Any]]
    #: ``co2_g`` and ``power_cost_usd``, those that are objects, in that order.
    figures: dict[str, Mapping[str, Any]]
    #: Everything else (processes, GPUs, labels, assumptions, unavailable, status).
    context: dict[str, Any]


def read_metrics_document(metrics: Any) -> MetricsDocument:
    """Read a ``metrics.json`` document (the telemetry module's format); raises ``ValueError`` when it is not a JSON
    object."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics.json is a JSON {_json_kind(metrics)}, not an object")

    def mapping(name: str) -> Mapping[str, Any]:
        found = metrics.get(name)
        return found if isinstance(found, Mapping) else {}

    series = metrics.get("series")
    figures = {name: metrics.get(name) for name in _FIGURES}
    return MetricsDocument(
        run_id=metrics.get("run_id"),
        labels=mapping("labels"),
        series=[sample for sample in (series if isinstance(series, list) else []) if isinstance(sample, Mapping)],
        aggregates=mapping("aggregates"),
        energy={name: figure for name, figure in mapping("energy").items() if isinstance(figure, Mapping)},
        figures={name: figure for name, figure in figures.items() if isinstance(figure, Mapping)},
        context={k: v for k, v in metrics.items() if k not in _METRICS_DOC_FIELDS},
    )


def _json_kind(value: Any) -> str:
    """The JSON name of ``value``'s kind, for error messages."""
    if value is None:
        return "null"
    for kind, names in (("boolean", (bool,)), ("number", (int, float)), ("string", (str,)), ("array", (list, tuple))):
        if isinstance(value, names):
            return kind
    return type(value).__name__


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


def _points(sample: Mapping[str, Any], points: list[Any]) -> list[tuple[Any, Any]]:
    """A point series' ``(t, value)`` pairs: each point is ``[t, value]`` or ``{t (or timestamp), value}``."""
    pairs = []
    for number, point in enumerate(points, start=1):
        if isinstance(point, Mapping):
            pairs.append((point.get("t", point.get("timestamp")), point.get("value")))
            continue
        try:
            t, value = point
        except (TypeError, ValueError):
            raise ValueError(
                f"metrics.json series {sample.get('name')!r}: point {number} is neither [t, value] nor "
                f"{{t, value}}: {point!r}"
            ) from None
        pairs.append((t, value))
    return pairs


def _series_rows(base: Mapping[str, Any], sample: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``series`` rows of one sample: a point series ``{name, unit, label, resource, points}`` gives one row per
    point, the telemetry module's flat sample ``{timestamp_unix, metric, gpu_id, value, unit, …}`` one row."""
    label = _label(sample.get("label") or "measured")
    points = sample.get("points")
    if isinstance(points, list):
        name, unit, resource = sample.get("name"), sample.get("unit"), sample.get("resource")
        return [
            _metric_row(base, "series", name, unit=unit, label=label, resource=resource, timestamp=t, value=v)
            for t, v in _points(sample, points)
        ]
    known = {"timestamp", "timestamp_unix", "metric", "name", "gpu_id", "value", "unit", "label", "resource"}
    gpu_id = sample.get("gpu_id")
    stamp = sample.get("timestamp_unix", sample.get("timestamp"))
    return [
        _metric_row(
            base,
            "series",
            sample.get("metric") or sample.get("name"),
            unit=sample.get("unit"),
            label=label,
            resource=f"gpu:{gpu_id}" if gpu_id is not None else sample.get("resource") or sample.get("process"),
            timestamp=stamp if isinstance(stamp, (int, float)) else None,
            value=sample.get("value"),
            extra={k: v for k, v in sample.items() if k not in known},
        )
    ]


def _aggregate_rows(base: Mapping[str, Any], name: str, value: Any, labels: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``aggregate`` rows of one aggregate: one per ``per_gpu`` entry, a figure object's row, or a number labelled
    from the document's ``labels`` (``gpu_metrics`` for ``gpu_*``, else ``cpu_metrics``)."""
    if isinstance(value, list):  # per_gpu entries
        return [
            _metric_row(base, "aggregate", name, label="measured", resource=entry.get("key"), extra=entry)
            for entry in value
            if isinstance(entry, Mapping)
        ]
    if isinstance(value, Mapping):
        return [_figure_row(base, "aggregate", name, value)]
    source = labels.get("gpu_metrics") if name.startswith("gpu_") else labels.get("cpu_metrics")
    label: FigureLabel = _label(source or "measured") if value is not None else "unavailable"
    return [_metric_row(base, "aggregate", name, unit=_unit_of(name), label=label, value=value)]


def metric_rows(metrics: Mapping[str, Any] | None, run_id: str) -> list[dict[str, Any]]:
    """Hub rows (:data:`~smoltrace_export.schemas.METRICS_SCHEMA`) for a ``metrics.json`` document (see
    :func:`read_metrics_document`); ``run_id`` stands in for a document without one.

    ``series`` samples become ``series`` rows; ``aggregates`` (numbers, and ``per_gpu`` entries) ``aggregate`` rows
    labelled from the document's ``labels``; ``energy.*``, ``co2_g`` and ``power_cost_usd`` (``{value, unit, label,
    scope, method}``) ``figure`` rows; the rest (processes, GPUs, labels, assumptions, unavailable) one ``context``
    row. A placeholder document (``status: unavailable`` and nothing else) gives no rows.
    """
    if not metrics:
        return []
    doc = read_metrics_document(metrics)
    base = {"run_id": doc.run_id or run_id, "schema_version": SCHEMA_VERSION}
    rows: list[dict[str, Any]] = []
    for sample in doc.series:
        rows += _series_rows(base, sample)
    for name, value in doc.aggregates.items():
        rows += _aggregate_rows(base, name, value, doc.labels)
    rows += [_figure_row(base, "figure", f"energy.{name}", figure) for name, figure in doc.energy.items()]
    rows += [_figure_row(base, "figure", name, figure) for name, figure in doc.figures.items()]
    if doc.context and not (doc.context.get("status") == "unavailable" and not rows):
        rows.append(_metric_row(base, "context", extra=doc.context))
    return rows


def metric_value_count(metrics: Mapping[str, Any] | None) -> int:
    """How many numbers a ``metrics.json`` document holds (rows of :func:`metric_rows` with a value)."""
    return sum(row["value"] is not None for row in metric_rows(metrics, ""))


def environment_from_metrics(metrics: Mapping[str, Any] | None) -> EnvironmentFigures:
    """The leaderboard's environment columns from a ``metrics.json`` document (all unavailable without one).

    Raises ``ValueError`` when a figure's value is not a number."""
    if not metrics:
        return EnvironmentFigures()
    doc = read_metrics_document(metrics)

    def figure(name: str) -> tuple[float | None, FigureLabel]:
        fig = doc.figures.get(name)
        if fig is None or fig.get("value") is None:
            return None, "unavailable"
        try:
            value = float(fig["value"])
        except (TypeError, ValueError):
            raise ValueError(f"metrics.json {name}: value {fig['value']!r} is not a number") from None
        return value, _label(fig.get("label"))

    gpu = {name: doc.aggregates.get(name) for name in GPU_COLUMNS}
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
