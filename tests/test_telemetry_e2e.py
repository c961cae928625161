"""Telemetry through the plugin: traces.json, span trees, verdict events, cost, metrics.json, OTLP export.

Every run here starts a fresh interpreter (``subprocess=True``): in-process pytester runs share the process's
instrumentation with earlier tests, which once hid that no model-call span was produced at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from helpers import decode_spans, otlp_receiver, scripted_args, task_row
from test_telemetry_tracing import assert_lean

from pytest_smoltrace.testing import ScriptedModelServer

WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
CALC_CODE = {"code": "a = calculator(expression='2+3')\nb = get_weather(location='Paris, France')\nprint(a, b)"}
TASKS = [task_row("traced", "Weather then maths [k-traced]", "get_weather", "20")]
SCRIPTS = {
    "[k-traced]": {
        "tool": [
            WEATHER_TOOL,
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]},
            {"final_answer": "20°C and 5"},
        ],
        "code": [
            {"code": "w = get_weather(location='Paris, France')\nprint(w)"},
            CALC_CODE,
            {"final_answer": "20°C and 5"},
        ],
    }
}


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["span_id"]: s for s in doc["spans"]}


def test_traces_json_holds_one_correct_tree_per_item(bench: Any, server: ScriptedModelServer) -> None:
    run = bench(TASKS, SCRIPTS, subprocess=True)
    run.result.assert_outcomes(passed=2)
    docs = {d["nodeid"]: d for d in run.read("traces.json")}
    assert set(docs) == {"smoltrace/tasks.json::tool::traced", "smoltrace/tasks.json::code::traced"}
    for row in run.rows:
        doc = docs[row["test_case_uid"]]
        spans = by_id(doc)
        # results rows carry the item's trace id and root span id
        assert row["trace_id"] == doc["trace_id"] and row["span_id"] == doc["root_span_id"]
        root = spans[doc["root_span_id"]]
        # the lean file format: defaults, nulls, empties and duration_ms left out; the item's ids stated once
        assert_lean(doc)
        assert "parent_span_id" not in root and doc["nodeid"] == row["test_case_uid"]
        assert doc["agent_type"] == row["agent_type"] and doc["task_id"] == "traced" and doc["run_id"] == row["run_id"]
        # what a backend lists: the agent type and task in the name, the prompt in, the answer out, status OK
        assert root["name"] == f"{row['agent_type']} traced"
        assert root["attributes"]["input.value"] == TASKS[0]["prompt"]
        assert root["attributes"]["output.value"] == row["response"] == "20°C and 5"
        assert root["status"] == "OK"
        assert [e["name"] for e in root["evaluations"]] == [c["name"] for c in row["checks"]]
        assert all(e["score.label"] == "pass" for e in root["evaluations"])
        (agent,) = [s for s in doc["spans"] if s["category"] == "agent"]
        assert agent["parent_span_id"] == root["span_id"]
        steps = {s["name"]: s for s in doc["spans"] if s["category"] == "step"}
        assert set(steps) == {"Step 1", "Step 2", "Step 3"}
        assert all(s["parent_span_id"] == agent["span_id"] for s in steps.values())
        # each executed tool call sits under the step that ran it — for the CodeAgent too
        tools = [(s["name"], spans[s["parent_span_id"]]["name"]) for s in doc["spans"] if s["category"] == "tool"]
        expected = {
            ("execute_tool get_weather", "Step 1"),
            ("execute_tool calculator", "Step 2"),
            ("execute_tool final_answer", "Step 3"),
        }
        if row["agent_type"] == "code":
            expected.add(("execute_tool get_weather", "Step 2"))
        assert set(tools) == expected
        llm = [s for s in doc["spans"] if s["category"] == "llm"]
        assert len(llm) == 3 and all(spans[s["parent_span_id"]]["category"] == "step" for s in llm)
        # tokens: the record (RunResult.token_usage) equals the sum over LLM spans
        assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == row["prompt_tokens"]
        assert sum(s["attributes"]["gen_ai.usage.output_tokens"] for s in llm) == row["completion_tokens"]
    assert sum(r["total_tokens"] for r in run.rows) == server.usage_for("[k-traced]")["total_tokens"]
    # the journal stays small: traces live in traces.jsonl / traces.json, not in journal lines
    journal = [json.loads(line) for line in (run.run_dir / "journal.jsonl").read_text().splitlines()]
    assert all("trace" not in line for line in journal)
    # traces.json: a JSON array, one compact document per line
    lines = (run.run_dir / "traces.json").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 2 + len(docs)
    for line in lines[1:-1]:
        text = line.removesuffix(",")
        assert text == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))


def test_the_bundled_scripted_run_writes_lean_traces_every_reader_reads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10's size target, ≤ 4 KB of traces.json per item without content capture (``benchmarks/trace_size.py``
    measures it in full), and the Hub's trace rows read the file back: durations, spans, ids."""
    from smoltrace_export.rows import trace_rows

    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--smoltrace-model", "scripted", "--smoltrace-run-id", "lean"
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    run_dir = pytester.path / "smoltrace_results" / "lean"
    path = run_dir / "traces.json"
    docs = json.loads(path.read_text(encoding="utf-8"))
    rows = {r["trace_id"]: r for r in json.loads((run_dir / "results.json").read_text(encoding="utf-8"))}
    assert len(docs) == len(rows) >= 20
    per_item = path.stat().st_size / len(docs)
    assert per_item <= 4096, f"traces.json holds {per_item:.0f} bytes per item"
    for doc in docs:
        assert_lean(doc)
        llm = [s for s in doc["spans"] if s["category"] == "llm"]
        used = sum(
            s["attributes"]["gen_ai.usage.input_tokens"] + s["attributes"]["gen_ai.usage.output_tokens"] for s in llm
        )
        assert used == rows[doc["trace_id"]]["total_tokens"] > 0  # lean, and still the truth
    for doc, hub in zip(docs, trace_rows(docs, "lean"), strict=True):
        root = next(s for s in doc["spans"] if s["span_id"] == doc["root_span_id"])
        assert hub["duration_ms"] == (root["end_time"] - root["start_time"]) / 1e6 > 0
        assert (hub["trace_id"], hub["test_case_uid"], hub["task_id"]) == (
            doc["trace_id"],
            doc["nodeid"],
            doc["task_id"],
        )
        assert hub["spans"] == doc["spans"] and hub["span_count"] == len(doc["spans"])
        assert hub["extra"] == {"attempt": 0}


@pytest.mark.parametrize(
    ("model", "extra", "expected_per_token"),
    [
        ("openai/gpt-4o-mini", (), "litellm"),
        ("openai/my-finetune", ("--smoltrace-price-input", "2", "--smoltrace-price-output", "8"), (2e-6, 8e-6)),
        ("openai/unknown-model", (), None),
    ],
)
def test_cost_is_tokens_times_price_or_null(
    bench: Any, server: ScriptedModelServer, model: str, extra: tuple[str, ...], expected_per_token: Any
) -> None:
    run = bench(TASKS, SCRIPTS, *extra, subprocess=True, model=model)
    run.result.assert_outcomes(passed=2)
    if expected_per_token == "litellm":
        import litellm

        info = litellm.get_model_info("gpt-4o-mini")
        expected_per_token = (info["input_cost_per_token"], info["output_cost_per_token"])
    lb = {r["agent_type"]: r for r in run.read("leaderboard_row.json")}
    for row in run.rows:
        if expected_per_token is None:
            assert row["cost_usd"] is None
        else:
            expected = row["prompt_tokens"] * expected_per_token[0] + row["completion_tokens"] * expected_per_token[1]
            assert row["cost_usd"] == pytest.approx(expected, rel=1e-9) and row["cost_usd"] > 0
        board = lb[row["agent_type"]]
        assert board["total_cost_usd"] == (None if expected_per_token is None else pytest.approx(row["cost_usd"]))
        assert board["avg_cost_per_test_usd"] == board["total_cost_usd"]
    pricing = run.read("metadata.json")["pricing"]
    assert (
        pricing["source"]
        == {None: "unknown", "litellm": "litellm"}.get(
            expected_per_token if isinstance(expected_per_token, str) or expected_per_token is None else "x", "custom"
        )
        or expected_per_token is not None
    )


def test_metrics_json_without_gpu_is_labelled_not_invented(bench: Any) -> None:
    run = bench(TASKS, SCRIPTS, "--smoltrace-gpu-metrics", "--smoltrace-sample-interval", "0.1", subprocess=True)
    run.result.assert_outcomes(passed=2)
    metrics = run.read("metrics.json")
    assert metrics["unavailable"]["gpu"] == "unavailable: no NVIDIA GPU"
    assert any(row["metric"].startswith("cpu") or "cpu" in row["metric"] for row in metrics["series"])
    for board in run.read("leaderboard_row.json"):
        assert board["gpu_utilization_avg"] is None and board["gpu_power_avg_w"] is None
        assert board["gpu_label"] == "unavailable"


def test_otlp_export_from_the_plugin_reaches_a_real_receiver(
    pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    for key, script in SCRIPTS.items():
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(TASKS))
    with otlp_receiver() as receiver:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *scripted_args(server.base_url),
                "--smoltrace-otlp",
                "--smoltrace-run-id",
                "otlp",
            ],
            cwd=pytester.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert proc.returncode == 0, proc.stdout[-3000:]
    received = decode_spans(receiver.bodies)
    docs = json.loads((pytester.path / "smoltrace_results" / "otlp" / "traces.json").read_text())
    assert docs
    for doc in docs:
        mine = {s["span_id"]: s for s in received if s["trace_id"] == doc["trace_id"]}
        assert {(s["span_id"], s.get("parent_span_id"), s["name"]) for s in doc["spans"]} == {
            (s["span_id"], s["parent_span_id"], s["name"]) for s in mine.values()
        }
        root = mine[doc["root_span_id"]]
        checks = ("final_answer", "tool_called", "expected_tool", "expected_keywords")
        assert [
            e["attributes"]["gen_ai.evaluation.name"] for e in root["events"] if e["name"] == "gen_ai.evaluation.result"
        ] == list(checks)
        # the model calls reach the backend with their tokens, under OpenInference's names too (what Phoenix reads)
        llm = [s for s in mine.values() if s["name"] == "chat openai/scripted"]
        assert len(llm) == 3
        assert all(s["attributes"]["openinference.span.kind"] == "LLM" for s in llm)
        row = next(
            r
            for r in json.loads((pytester.path / "smoltrace_results" / "otlp" / "results.json").read_text())
            if r["trace_id"] == doc["trace_id"]
        )
        assert sum(s["attributes"]["llm.token_count.total"] for s in llm) == row["total_tokens"] > 0
        assert root["attributes"]["openinference.span.kind"] == "CHAIN"
