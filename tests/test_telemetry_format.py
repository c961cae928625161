"""The traces.json span format: what :func:`span_document` writes and what :func:`read_span` reads back.

Spans come from a private SDK tracer provider (never the global one), so these tests need neither smolagents nor a
model server. The OTLP export of the same spans is tested in ``test_telemetry_tracing.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from pytest_smoltrace.telemetry.spans import (
    EVALUATION_EVENT,
    SPAN_DEFAULTS,
    SpanOptions,
    read_span,
    span_document,
)
from smoltrace_export.rows import trace_rows

OPTIONS = SpanOptions()


@pytest.fixture
def finished() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    from opentelemetry import context as otel_context

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # an empty context: these spans are roots whatever an earlier in-process test left current in this thread
    token = otel_context.attach(otel_context.Context())
    try:
        yield provider.get_tracer("test"), exporter
    finally:
        otel_context.detach(token)
        provider.shutdown()


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_a_span_at_its_defaults_is_ids_name_category_and_times(finished: Any) -> None:
    tracer, exporter = finished
    with tracer.start_as_current_span("plain"):
        pass
    span = only(exporter)
    doc = span_document(span, OPTIONS)
    assert doc == {
        "span_id": format(span.context.span_id, "016x"),
        "name": "plain",
        "category": "other",
        "start_time": span.start_time,
        "end_time": span.end_time,
    }
    assert doc["end_time"] >= doc["start_time"] > 10**18  # Unix epoch nanoseconds
    full = read_span(doc)
    assert {k: full[k] for k in SPAN_DEFAULTS} == SPAN_DEFAULTS
    assert full["parent_span_id"] is None and full["kind"] == "INTERNAL" and full["status"] == "UNSET"


def test_what_differs_from_a_default_is_written(finished: Any) -> None:
    tracer, exporter = finished
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span("call", kind=SpanKind.CLIENT) as span,
    ):
        parent.set_attributes({"input.mime_type": "application/json", "output.mime_type": "text/plain"})
        span.set_attributes(
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "add",
                "input.value": json.dumps({"args": [], "kwargs": {"a": 1, "b": 2}}),
            }
        )
        span.add_event("marker")
        span.add_event("exception", {"exception.type": "ValueError", "exception.message": "no"})
        span.set_status(Status(StatusCode.ERROR, "it broke"))
    tool = next(s for s in exporter.get_finished_spans() if s.name == "call")
    doc = span_document(tool, OPTIONS)
    assert tool.parent is not None and doc["parent_span_id"] == format(tool.parent.span_id, "016x")
    assert (doc["name"], doc["category"], doc["kind"]) == ("execute_tool add", "tool", "CLIENT")
    assert (doc["status"], doc["status_description"]) == ("ERROR", "it broke")
    # gen_ai.operation.name (the category's) and gen_ai.tool.type=function (the default) are left to the OTLP export
    assert doc["attributes"] == {
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.arguments": '{"a": 1, "b": 2}',
        "error.type": "ValueError",
    }
    marker, exception = doc["events"]
    assert marker == {"name": "marker", "timestamp": marker["timestamp"]} and marker["timestamp"] > 10**18
    assert exception["attributes"] == {"exception.type": "ValueError", "exception.message": "no"}
    assert "duration_ms" not in doc and "evaluations" not in doc
    assert read_span(doc)["events"][0]["attributes"] == {}
    # a MIME type is left out when it is text/plain (OpenInference's default), kept otherwise
    outer = span_document(next(s for s in exporter.get_finished_spans() if s.name == "parent"), OPTIONS)
    assert outer["attributes"] == {"input.mime_type": "application/json"} and "parent_span_id" not in outer


def test_evaluation_events_are_written_short(finished: Any) -> None:
    tracer, exporter = finished
    with tracer.start_as_current_span("t1") as span:
        for name, label, value in [("final_answer", "pass", 1.0), ("judge", "fail", 0.0), ("graded", "pass", 0.75)]:
            span.add_event(
                EVALUATION_EVENT,
                {
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.label": label,
                    "gen_ai.evaluation.score.value": value,
                    "gen_ai.evaluation.explanation": f"expected: x; actual: {name}",
                },
            )
        span.add_event("exception", {"exception.type": "E"})
    doc = span_document(only(exporter), OPTIONS, is_root=True)
    assert doc["category"] == "item"
    assert doc["evaluations"] == [
        {"name": "final_answer", "score.label": "pass", "explanation": "expected: x; actual: final_answer"},
        {"name": "judge", "score.label": "fail", "explanation": "expected: x; actual: judge"},
        # a score that is not the label's number is kept
        {"name": "graded", "score.label": "pass", "score.value": 0.75, "explanation": "expected: x; actual: graded"},
    ]
    assert [e["name"] for e in doc["events"]] == ["exception"]


def _old_format(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as traces.json wrote it before the format was compacted (every field, status objects, events)."""
    full = read_span(doc)
    old = {k: v for k, v in full.items() if k not in ("status_description", "evaluations")}
    old["duration_ms"] = (full["end_time"] - full["start_time"]) / 1e6
    old["status"] = {"code": full["status"], "description": full["status_description"]}
    old["events"] = [
        *full["events"],
        *(
            {
                "name": EVALUATION_EVENT,
                "timestamp": full["end_time"],
                "attributes": {f"gen_ai.evaluation.{k}": v for k, v in e.items()},
            }
            for e in full["evaluations"]
        ),
    ]
    return old


def test_read_span_reads_both_formats_alike(finished: Any) -> None:
    tracer, exporter = finished
    with tracer.start_as_current_span("t1") as span:
        span.set_attribute("smoltrace.outcome", "failed")
        span.add_event(EVALUATION_EVENT, {"gen_ai.evaluation.name": "c", "gen_ai.evaluation.score.label": "fail"})
        span.set_status(Status(StatusCode.ERROR, "failed checks: c"))
    doc = span_document(only(exporter), OPTIONS, is_root=True)
    old = _old_format(doc)
    assert old["status"] == {"code": "ERROR", "description": "failed checks: c"} and old["parent_span_id"] is None
    assert read_span(old) == read_span(doc)
    assert read_span(doc)["evaluations"] == [{"name": "c", "score.label": "fail"}]
    # the Hub's trace rows read either: the root's duration is end - start
    trace = {"trace_id": "ab" * 16, "root_span_id": doc["span_id"], "run_id": "r", "nodeid": "n", "span_count": 1}
    (new_row,) = trace_rows([{**trace, "spans": [doc]}], "r")
    (old_row,) = trace_rows([{**trace, "spans": [old]}], "r")
    assert (
        new_row["duration_ms"] == pytest.approx(old_row["duration_ms"]) == (doc["end_time"] - doc["start_time"]) / 1e6
    )
    assert new_row["spans"] == [doc] and new_row["extra"] is None
