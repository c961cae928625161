"""Rows and the five JSON files: every produced row matches its documented schema, for each agent type and both.

Also home of the helpers the other ``test_export_*`` modules use to build run directories from records.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smoltrace_export import json_sink
from smoltrace_export.hub import features_for, hub_row
from smoltrace_export.records import Check, ItemResult, RunRecord, StepInfo, Task, ToolCall, Verdict
from smoltrace_export.rows import (
    EnvironmentFigures,
    RunContext,
    environment_from_metrics,
    leaderboard_row,
    metric_rows,
    read_metrics_document,
    read_trace_document,
    result_row,
    trace_rows,
)
from smoltrace_export.schemas import (
    LEADERBOARD_SCHEMA,
    METRICS_SCHEMA,
    RESULTS_SCHEMA,
    SCHEMAS,
    TRACES_SCHEMA,
    schema_problems,
    schema_table,
)
from smoltrace_export.summary import summarize

STARTED = 1_790_000_000.0  # 2026-09-21T…Z


def item(
    task_id: str,
    agent_type: str,
    *,
    passed: bool = True,
    error: str | None = None,
    run_id: str = "run-a",
    cost: float | None = None,
    repeat: int = 0,
    tools: tuple[str, ...] = ("get_weather",),
    started_at: float = STARTED,
) -> ItemResult:
    calls = tuple(ToolCall(name, {"location": "Paris"}, "20°C", None, 1.5, started_at) for name in tools)
    record = RunRecord(
        task_id=task_id,
        agent_type=agent_type,  # type: ignore[arg-type]
        source="tasks.json",
        model="openai/scripted",
        provider="litellm",
        run_id=run_id,
        response=None if error else "20°C",
        final_answer_called=error is None,
        stop_reason="error" if error else "final_answer",
        steps=(StepInfo("action", 1, 10.0, 100, 20, requested_tools=tools),),
        tool_calls=calls,
        prompt_tokens=100,
        completion_tokens=20,
        duration_ms=250.0,
        started_at=started_at,
        error=error,
        error_type="APIError" if error else None,
        trace_id="ab" * 16,
        span_id="cd" * 8,
        cost_usd=cost,
        repeat=repeat,
        nodeid=f"smoltrace/tasks.json::{agent_type}::{task_id}",
    )
    checks = (
        Check("final_answer", error is None, True, error is None),
        Check("expected_tool", passed, "get_weather", list(tools)),
        Check("expected_keywords", passed, ["20"], {"answer": "20°C", "nested": [1, 2.5, None]}),
    )
    verdict = Verdict(checks, error=error)
    task = Task(task_id, f"Weather? [{task_id}]", difficulty="easy", category="weather", source="tasks.json")
    return ItemResult(record.nodeid, record, verdict, task)


def sample_results(agent_type: str = "both", run_id: str = "run-a", started_at: float = STARTED) -> list[ItemResult]:
    types = ("tool", "code") if agent_type == "both" else (agent_type,)
    out = []
    for at in types:
        out += [
            item("t1", at, run_id=run_id, cost=0.001, started_at=started_at),
            item("t2", at, passed=False, run_id=run_id, tools=(), started_at=started_at),
            item("t3", at, error="model exploded", run_id=run_id, tools=(), started_at=started_at),
        ]
    return out


def write_sample_run(
    root: Path,
    agent_type: str = "both",
    *,
    run_id: str = "run-a",
    started_at: float = STARTED,
    traces: list[dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    planned_extra: int = 0,
) -> Path:
    """A run directory as the plugin writes it, built from records."""
    results = sample_results(agent_type, run_id, started_at)
    planned = {at: sum(r.record.agent_type == at for r in results) + planned_extra for at in ("tool", "code")}
    planned = {k: v for k, v in planned.items() if v > planned_extra}
    summaries = summarize(results, planned)
    ctx = RunContext(
        model="openai/scripted",
        provider="litellm",
        run_id=run_id,
        dataset="tasks.json",
        dataset_revision=None,
        started_at=started_at,
        finished_at=started_at + 12.5,
        run_status="completed" if not planned_extra else "partial",
        task_timeout_s=300.0,
        results_location=f"local:{root / run_id}",
    )
    run_dir = root / run_id
    json_sink.write_run_outputs(
        run_dir,
        results=[result_row(r) for r in results],
        leaderboard=[leaderboard_row(s, ctx, results=results) for s in summaries],
        metadata={
            "run_id": run_id,
            "model": "openai/scripted",
            "timings": {"started_at": started_at, "finished_at": started_at + 12.5},
            "counts": {"completed": len(results)},
        },
        traces=traces,
        metrics=metrics,
    )
    return run_dir


# the telemetry module's formats (pytest_smoltrace.telemetry.tracing / .metrics docstrings)
SAMPLE_TRACES = [
    {
        "trace_id": "ab" * 16,
        "root_span_id": "cd" * 8,
        "run_id": "run-a",
        "nodeid": "smoltrace/tasks.json::tool::t1",
        "task_id": "t1",
        "agent_type": "tool",
        "span_count": 2,
        "spans": [
            {
                "span_id": "cd" * 8,
                "parent_span_id": None,
                "name": "smoltrace.item",
                "kind": "INTERNAL",
                "category": "item",
                "start_time": 1,
                "end_time": 2,
                "duration_ms": 250.0,
                "status": {"code": "OK", "description": None},
                "attributes": {},
                "events": [],
            },
            {
                "span_id": "ef" * 8,
                "parent_span_id": "cd" * 8,
                "name": "chat scripted",
                "kind": "INTERNAL",
                "category": "llm",
                "start_time": 1,
                "end_time": 2,
                "duration_ms": 100.0,
                "status": {"code": "UNSET", "description": None},
                "attributes": {"gen_ai.usage.input_tokens": 100},
                "events": [],
            },
        ],
        "service": "pytest-smoltrace",
    }
]
_FIGURE = {"unit": "g", "label": "estimated", "scope": "local", "method": "local energy × 475 g/kWh"}
SAMPLE_METRICS = {
    "schema_version": 1,
    "run_id": "run-a",
    "processes": [{"process": "controller", "pid": 1, "host": "h", "interval_s": 1.0}],
    "gpus": [{"key": "h/0", "host": "h", "gpu_id": 0, "gpu_name": "NVIDIA H100", "uuid": "u", "memory_total_mib": 80}],
    "series": [
        {
            "timestamp": "2026-09-21T00:00:00Z",
            "timestamp_unix": 1.0,
            "metric": "gpu.utilization",
            "gpu_id": 0,
            "gpu_name": "NVIDIA H100",
            "value": 50.0,
            "unit": "%",
            "process": "controller",
            "host": "h",
        },
        {
            "timestamp": "2026-09-21T00:00:00Z",
            "timestamp_unix": 1.0,
            "metric": "process.cpu.utilization",
            "gpu_id": None,
            "gpu_name": None,
            "value": 12,
            "unit": "%",
            "process": "controller",
            "host": "h",
        },
    ],
    "aggregates": {
        "gpu_utilization_avg": 50.0,
        "gpu_power_avg_w": 71.5,
        "gpu_temperature_max": None,
        "cpu_process_percent_avg": 12.0,
        "per_gpu": [{"key": "h/0", "gpu_id": 0, "utilization_avg": 50.0}],
    },
    "energy": {"gpu_wh": {"value": 0.4, "unit": "Wh", "label": "measured", "scope": "local", "method": "NVML"}},
    "co2_g": {"value": 0.19, **_FIGURE},
    "power_cost_usd": {"value": None, "unit": "USD", "label": "unavailable", "scope": "local", "method": "n/a"},
    "labels": {"gpu_metrics": "measured (NVML)", "cpu_metrics": "measured (psutil)"},
    "assumptions": {"grid_intensity_g_per_kwh": 475},
    "unavailable": {},
}


# -- tests -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent_type", ["tool", "code", "both"])
def test_run_files_match_the_schemas(tmp_path: Path, agent_type: str) -> None:
    run_dir = write_sample_run(tmp_path, agent_type)
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"results.json", "traces.json", "metrics.json", "leaderboard_row.json", "metadata.json"}
    results = json.loads((run_dir / "results.json").read_text())
    board = json.loads((run_dir / "leaderboard_row.json").read_text())
    expected_types = ["tool", "code"] if agent_type == "both" else [agent_type]
    assert [r["agent_type"] for r in board] == expected_types
    assert len(results) == 3 * len(expected_types)
    for row in results:
        assert schema_problems(row, RESULTS_SCHEMA) == []
        assert list(row) == list(RESULTS_SCHEMA)  # the schema's order
    for row in board:
        assert schema_problems(row, LEADERBOARD_SCHEMA) == []
        assert list(row) == list(LEADERBOARD_SCHEMA)
        assert row["total_tests"] == 3 and row["successful_tests"] == 1 and row["errored_tests"] == 1
        assert row["pass_at_1"] == pytest.approx(1 / 3, abs=1e-4) and row["evaluated_prompts"] == 3
        assert row["total_cost_usd"] == 0.001 and row["avg_cost_per_test_usd"] == pytest.approx(0.001 / 3, abs=1e-6)
        # environment: null figures with a label saying why, and the 7 GPU columns null
        assert row["co2_emissions_g"] is None and row["co2_label"] == "unavailable"
        assert row["power_cost_total_usd"] is None and row["power_cost_label"] == "unavailable"
        assert all(row[c] is None for c in LEADERBOARD_SCHEMA if c.startswith("gpu_") and c != "gpu_label")
        assert row["gpu_label"] == "unavailable" and row["schema_version"] == 1
        assert row["results_dataset"].startswith("local:") and row["traces_dataset"] is None
    # nothing traced or measured: traces.json is an empty list, metrics.json says unavailable; counts are real
    assert json.loads((run_dir / "traces.json").read_text()) == []
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "unavailable" and metrics["series"] == [] and metrics["aggregates"] == {}
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["counts"] == {"completed": len(results), "num_results": len(results), "num_traces": 0, "num_metrics": 0}
    assert meta["traces_status"] == "none" and meta["metrics_status"] == "unavailable"


def test_counts_with_traces_and_metrics(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path, traces=SAMPLE_TRACES, metrics=SAMPLE_METRICS)
    meta = json.loads((run_dir / "metadata.json").read_text())
    # numbers with a value: 2 samples + 3 aggregates (not the null one, not the per-GPU entry) + gpu_wh + co2_g
    assert meta["counts"]["num_traces"] == 1 and meta["counts"]["num_metrics"] == 7
    assert meta["metrics_status"] == "recorded" and meta["traces_status"] == "recorded"


def test_row_content_for_each_kind_of_item() -> None:
    ok, failed, errored = sample_results("tool")
    row = result_row(ok)
    assert row["success"] is True and row["pass_at_1_passed"] is True and row["tools_used"] == ["get_weather"]
    assert row["correct_tool"] is True and row["response_correct"] is True and row["cost_usd"] == 0.001
    assert json.loads(row["enhanced_trace_info"])["total_tokens"] == 120
    assert result_row(failed)["outcome"] == "failed" and result_row(failed)["tool_called"] is False
    err = result_row(errored)
    assert err["outcome"] == "error" and err["error"] == "model exploded" and err["error_type"] == "APIError"
    repeat = result_row(item("t1", "code", repeat=1))
    assert repeat["pass_at_1_passed"] is None and repeat["repeat"] == 1
    # the task's columns come from the item's Task; an item that never ran has none
    assert (row["prompt"], row["difficulty"], row["category"]) == (f"Weather? [{ok.record.task_id}]", "easy", "weather")
    unrun = result_row(replace(errored, task=None))
    assert (unrun["prompt"], unrun["difficulty"], unrun["category"]) == (None, None, None)


def test_leaderboard_environment_and_context_fields() -> None:
    results = sample_results("code")
    (summary,) = summarize(results)
    env = EnvironmentFigures(
        co2_emissions_g=1.25, co2_label="estimated", gpu_utilization_avg=40.0, gpu_label="measured"
    )
    ctx = RunContext(
        model="m",
        provider="litellm",
        run_id="r",
        dataset="d",
        dataset_revision="abc",
        started_at=STARTED,
        finished_at=STARTED + 1,
        run_status="completed",
        task_timeout_s=30,
        results_location="local:x",
        hardware_scope="runner",
        environment=env,
    )
    row = leaderboard_row(summary, ctx)
    assert schema_problems(row, LEADERBOARD_SCHEMA) == []
    assert row["co2_emissions_g"] == 1.25 and row["co2_label"] == "estimated" and row["gpu_utilization_avg"] == 40.0
    assert row["run_stop_reason"] == "completed" and row["dataset_revision"] == "abc"
    assert row["hardware_scope"] == "runner" and row["traces_dataset"] is None
    assert row["total_cost_usd"] is None  # no results given: cost unknown, not zero
    # the columns no run fills yet are null, not missing (the publisher fills submitted_by)
    unfilled = ("submitted_by", "use_case", "team", "purpose", "suite_version", "hardware", "hardware_detail")
    unfilled += ("request_timeout_s", "tool_timeout_s", "generation_settings", "notes")
    assert all(name in row and row[name] is None for name in unfilled)
    hub = hub_row({**row, "hardware_detail": {"logical_cores": 2}}, LEADERBOARD_SCHEMA)
    assert json.loads(hub["hardware_detail"]) == {"logical_cores": 2} and isinstance(hub["task_timeout_s"], float)
    assert hub["generation_settings"] is None


def test_trace_and_metric_rows_match_their_schemas() -> None:
    (trace,) = trace_rows(SAMPLE_TRACES, "run-a")
    assert trace["span_count"] == 2 and trace["duration_ms"] == 250.0 and trace["root_span_id"] == "cd" * 8
    assert trace["test_case_uid"] == "smoltrace/tasks.json::tool::t1" and trace["extra"] == {
        "service": "pytest-smoltrace"
    }
    metrics = metric_rows(SAMPLE_METRICS, "run-a")
    kinds = [m["kind"] for m in metrics]
    assert kinds == ["series"] * 2 + ["aggregate"] * 5 + ["figure"] * 3 + ["context"]
    by_name = {m["name"]: m for m in metrics}
    assert by_name["gpu.utilization"]["resource"] == "gpu:0" and by_name["gpu.utilization"]["timestamp"] == 1.0
    assert by_name["gpu_power_avg_w"]["unit"] == "W" and by_name["gpu_power_avg_w"]["label"] == "measured"
    assert by_name["gpu_temperature_max"]["label"] == "unavailable" and by_name["gpu_temperature_max"]["value"] is None
    assert by_name["co2_g"]["label"] == "estimated" and by_name["co2_g"]["extra"]["scope"] == "local"
    assert by_name["energy.gpu_wh"]["label"] == "measured"
    assert by_name["power_cost_usd"]["label"] == "unavailable"
    assert set(metrics[-1]["extra"]) == {"processes", "gpus", "labels", "assumptions", "unavailable"}
    for row, schema in [(trace, TRACES_SCHEMA), *[(m, METRICS_SCHEMA) for m in metrics]]:
        assert schema_problems(row, schema) == []
    assert metric_rows(json_sink.unavailable_metrics("run-a"), "run-a") == []
    generic = {"series": [{"name": "x", "unit": "%", "points": [[1.0, 2.0], {"t": 2.0, "value": 3}]}]}
    assert [m["value"] for m in metric_rows(generic, "r")] == [2.0, 3]


def test_telemetry_readers_name_what_is_wrong() -> None:
    # the documents' readers resolve defaults and skip entries of the wrong kind, as the rows always did
    uncounted = {k: v for k, v in SAMPLE_TRACES[0].items() if k != "span_count"}
    trace = read_trace_document({**uncounted, "spans": "not a list"})
    assert trace.spans == [] and trace.span_count == 0 and trace.duration_ms is None
    assert read_trace_document(SAMPLE_TRACES[0]).duration_ms == 250.0
    doc = read_metrics_document({"series": [1, {"name": "x"}], "energy": {"gpu_wh": 3}, "co2_g": None, "labels": []})
    assert doc.series == [{"name": "x"}] and doc.energy == {} and doc.figures == {} and doc.labels == {}
    assert doc.context == {"labels": []}
    # what they cannot read they name, instead of failing on an attribute or an unpacking
    with pytest.raises(ValueError, match=re.escape("traces.json document 2 is a JSON array, not an object")):
        trace_rows([SAMPLE_TRACES[0], []], "r")
    with pytest.raises(ValueError, match=re.escape("metrics.json is a JSON array, not an object")):
        metric_rows([{"series": []}], "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("series 'x': point 2 is neither [t, value] nor {t, value}: 7")):
        metric_rows({"series": [{"name": "x", "points": [[1.0, 2.0], 7]}]}, "r")
    with pytest.raises(ValueError, match=re.escape("metrics.json co2_g: value 'lots' is not a number")):
        environment_from_metrics({"co2_g": {"value": "lots", "label": "estimated"}})


def test_environment_from_metrics() -> None:
    env = environment_from_metrics(SAMPLE_METRICS)
    assert env.co2_emissions_g == 0.19 and env.co2_label == "estimated"
    assert env.power_cost_total_usd is None and env.power_cost_label == "unavailable"
    assert env.gpu_utilization_avg == 50.0 and env.gpu_power_avg_w == 71.5 and env.gpu_label == "measured"
    assert environment_from_metrics(json_sink.unavailable_metrics("r")) == EnvironmentFigures()


def test_real_telemetry_documents_convert() -> None:
    """The telemetry module's own builder (when present) produces documents the Hub rows accept."""
    metrics_mod = pytest.importorskip("pytest_smoltrace.telemetry.metrics")
    doc = metrics_mod.build_metrics_document([], run_id="r", model_is_local=False)
    rows = metric_rows(doc, "r")
    assert rows and all(schema_problems(row, METRICS_SCHEMA) == [] for row in rows)
    env = environment_from_metrics(doc)
    assert env.gpu_label == "unavailable" and env.gpu_utilization_avg is None


def test_schema_problems_reports_mismatches() -> None:
    row = result_row(sample_results("tool")[0])
    bad = {**row, "steps": "two", "surprise": 1}
    del bad["model"]
    problems = schema_problems(bad, RESULTS_SCHEMA)
    assert "missing column 'model'" in problems and "unexpected column 'surprise'" in problems
    assert any("'steps'" in p for p in problems)


def test_features_accept_hub_rows_with_nulls() -> None:
    import datasets

    rows = [result_row(r) for r in sample_results("both")]
    table = [hub_row(r, RESULTS_SCHEMA) for r in rows]
    table.append(dict.fromkeys(RESULTS_SCHEMA))  # an all-null row keeps every column's type
    ds = datasets.Dataset.from_list(table, features=features_for(RESULTS_SCHEMA))
    assert ds.features["tools_used"].feature.dtype == "string" and ds.features["checks"].dtype == "string"
    assert json.loads(ds[0]["checks"])[0]["name"] == "final_answer"


def test_schema_tables_document_every_column() -> None:
    for schema in SCHEMAS.values():
        table = schema_table(schema)
        assert all(f"`{name}`" in table for name in schema)
    assert len([c for c in LEADERBOARD_SCHEMA if c.startswith("gpu_") and c != "gpu_label"]) == 7


def test_write_json_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    json_sink.write_json(target, [1])

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json_sink.os, "replace", boom)
    with pytest.raises(OSError):
        json_sink.write_json(target, [2])
    assert json.loads(target.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_retry_classification() -> None:
    from smoltrace_export.retry import describe, http_status, is_transient, with_retries

    class Response:
        def __init__(self, status: int) -> None:
            self.status_code = status

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"{status} Server Error: boom\nmore")
            self.response = Response(status)

    def wrapped(status: int) -> Exception:
        try:
            raise HTTPError(status)
        except HTTPError as exc:
            try:
                raise RuntimeError("Error while uploading 'x' to the Hub.") from exc
            except RuntimeError as outer:
                return outer

    assert is_transient(HTTPError(500)) and is_transient(HTTPError(429)) and is_transient(wrapped(503))
    assert not is_transient(HTTPError(401)) and not is_transient(HTTPError(404)) and not is_transient(ValueError())
    assert is_transient(ConnectionResetError()) and http_status(wrapped(502)) == 502
    assert describe(wrapped(500)) == "500 Server Error: boom"
    calls: list[float] = []
    attempts = iter([HTTPError(500), HTTPError(500), None])

    def flaky() -> str:
        err = next(attempts)
        if err:
            raise err
        return "ok"

    assert with_retries("x", flaky, retries=3, backoff_s=0.5, sleep=calls.append) == "ok" and calls == [0.5, 1.0]
    with pytest.raises(HTTPError):
        with_retries("x", lambda: (_ for _ in ()).throw(HTTPError(403)), retries=3, backoff_s=0.5, sleep=calls.append)
    assert calls == [0.5, 1.0]


def test_readme_documents_the_schemas() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Hub publishing, cleanup and copy") :]
    for kind, schema in SCHEMAS.items():
        assert schema_table(schema) in section, f"README's {kind} table is stale: paste schema_table({kind} schema)"
