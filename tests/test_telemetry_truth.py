"""Telemetry that is true in a real run, checked in fresh interpreters (what a user runs, not what a test shares).

- every model call is a ``chat`` span with its tokens, under its step, in every kind of process: a plain run, xdist
  workers (``-n 2``) and ``smoltrace-eval`` (the console script);
- cached prompt tokens and reasoning tokens: counted per call and per item, summed, priced, and on the spans;
- a failed verdict is an ERROR root described by its failing checks; an agent that raised is still one tree;
- a retried model call shows each attempt (an ERROR ``chat`` span, then the good one) and a retry event.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.retry import RETRY_EVENT
from pytest_smoltrace.telemetry import tracing
from pytest_smoltrace.testing import ScriptedModelServer

TASKS = [
    {
        "id": "weather",
        "prompt": "Weather please [k-weather]",
        "expected_tool": "get_weather",
        "expected_keywords": ["20"],
    },
    {"id": "sum", "prompt": "Add please [k-sum]", "expected_tool": "calculator", "expected_keywords": ["5"]},
]
SCRIPTS = {
    "[k-weather]": {
        "tool": [
            {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
            {"final_answer": "20°C"},
        ],
        "code": [{"code": "w = get_weather(location='Paris, France')\nprint(w)"}, {"final_answer": "20°C"}],
    },
    "[k-sum]": {
        "tool": [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]},
            {"final_answer": "5"},
        ],
        "code": [{"code": "r = calculator(expression='2+3')\nprint(r)"}, {"final_answer": "5"}],
    },
}
NODEIDS = {f"smoltrace/tasks.json::{agent}::{task['id']}" for agent in ("tool", "code") for task in TASKS}


def llm_spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in doc["spans"] if s["category"] == "llm"]


def assert_one_tree(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spans = {s["span_id"]: s for s in doc["spans"]}
    orphans = [s["name"] for s in spans.values() if s.get("parent_span_id") not in spans]
    assert orphans == [spans[doc["root_span_id"]]["name"]], orphans
    return spans


def assert_traces_match_results(run_dir: Path, model_name: str | None = "chat openai/scripted") -> None:
    """Every item: one tree, ≥1 chat span under a step, and Σ chat-span usage = the item's recorded tokens."""
    rows = {r["test_case_uid"]: r for r in json.loads((run_dir / "results.json").read_text())}
    docs = {d["nodeid"]: d for d in json.loads((run_dir / "traces.json").read_text())}
    assert set(rows) == set(docs) == NODEIDS
    for nodeid, doc in docs.items():
        row = rows[nodeid]
        spans = assert_one_tree(doc)
        llm = llm_spans(doc)
        assert len(llm) == 2, [s["name"] for s in doc["spans"]]
        assert all(s["name"] == model_name if model_name else s["name"].startswith("chat ") for s in llm)
        assert all(spans[s["parent_span_id"]]["category"] == "step" for s in llm)
        assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == row["prompt_tokens"] > 0
        assert sum(s["attributes"]["gen_ai.usage.output_tokens"] for s in llm) == row["completion_tokens"] > 0


@pytest.mark.parametrize("how", ["pytest", "pytest -n 2", "smoltrace-eval"])
def test_every_model_call_is_a_span_in_every_kind_of_process(
    pytester: pytest.Pytester, server: ScriptedModelServer, bench: Any, how: str
) -> None:
    for key, script in SCRIPTS.items():
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(TASKS), encoding="utf-8")
    if how == "smoltrace-eval":
        exe = shutil.which("smoltrace-eval", path=str(Path(sys.executable).parent))
        assert exe is not None, "the console script is installed with the package"
        argv = [exe, "--model", "openai/scripted", "--api-base", server.base_url, "--dataset-name", "tasks.json"]
        argv += ["--run-id", "truth"]
        proc = subprocess.run(argv, cwd=pytester.path, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        extra = ["-n", "2"] if how.endswith("-n 2") else []
        bench(TASKS, None, *extra, run_id="truth", subprocess=True).result.assert_outcomes(passed=4)
    assert_traces_match_results(pytester.path / "smoltrace_results" / "truth")


def test_cached_and_reasoning_tokens_are_counted_priced_and_traced(bench: Any, server: ScriptedModelServer) -> None:
    import litellm

    server.usage_details = {"cached_tokens": 40, "reasoning_tokens": 3, "cache_creation_tokens": 7}
    run = bench(TASKS, SCRIPTS, subprocess=True, model="openai/gpt-4o-mini")
    run.result.assert_outcomes(passed=4)
    sent = server.usage_for()
    assert sent["requests"] == 8 and sent["cached_tokens"] == 8 * 40 and sent["reasoning_tokens"] < 8 * 3 + 1
    rows = run.rows
    # per item and in total, exactly what the provider reported
    assert sum(r["cached_input_tokens"] for r in rows) == sent["cached_tokens"]
    assert sum(r["cache_creation_input_tokens"] for r in rows) == sent["cache_creation_tokens"]
    assert sum(r["reasoning_tokens"] for r in rows) == sent["reasoning_tokens"]
    # reasoning tokens are part of the completion tokens, not added to them
    assert sum(r["total_tokens"] for r in rows) == sent["total_tokens"]
    info = litellm.get_model_info("gpt-4o-mini")
    read_price = info["cache_read_input_token_cost"]
    write_price = info.get("cache_creation_input_token_cost") or info["input_cost_per_token"]
    assert read_price < info["input_cost_per_token"]
    for row in rows:
        fresh = row["prompt_tokens"] - row["cached_input_tokens"] - row["cache_creation_input_tokens"]
        expected = (
            fresh * info["input_cost_per_token"]
            + row["cached_input_tokens"] * read_price
            + row["cache_creation_input_tokens"] * write_price
            + row["completion_tokens"] * info["output_cost_per_token"]
        )
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
        naive = (
            row["prompt_tokens"] * info["input_cost_per_token"]
            + row["completion_tokens"] * info["output_cost_per_token"]
        )
        assert row["cost_usd"] < naive
    # the leaderboard and the terminal summary sum them per agent type
    for board in run.read("leaderboard_row.json"):
        mine = [r for r in rows if r["agent_type"] == board["agent_type"]]
        assert board["total_cached_input_tokens"] == sum(r["cached_input_tokens"] for r in mine)
        assert board["total_reasoning_tokens"] == sum(r["reasoning_tokens"] for r in mine)
        assert board["total_cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine))
        prompt = sum(r["prompt_tokens"] for r in mine)
        cached = board["total_cached_input_tokens"]
        assert f"tokens: {cached} of {prompt} prompt tokens cached" in run.stdout
    # and each chat span carries its call's counts under the GenAI names, and a cost priced the same way
    for doc in run.read("traces.json"):
        row = next(r for r in rows if r["trace_id"] == doc["trace_id"])
        llm = llm_spans(doc)
        assert all(s["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 40 for s in llm)
        assert sum(s["attributes"]["gen_ai.usage.reasoning.output_tokens"] for s in llm) == row["reasoning_tokens"]
        assert sum(s["attributes"]["gen_ai.usage.cost.total"] for s in llm) == pytest.approx(row["cost_usd"])


def test_no_usage_details_reported_is_null_not_zero(bench: Any) -> None:
    run = bench(TASKS[:1], SCRIPTS, "--smoltrace-agent-type", "tool", subprocess=True)
    run.result.assert_outcomes(passed=1)
    (row,) = run.rows
    assert row["cached_input_tokens"] is None and row["reasoning_tokens"] is None
    (board,) = run.read("leaderboard_row.json")
    assert board["total_cached_input_tokens"] is None
    assert "prompt tokens cached" not in run.stdout


def test_failed_verdicts_and_agent_errors_are_error_roots_and_one_tree(bench: Any) -> None:
    tasks = [
        {"id": "wrong", "prompt": "Weather please [k-weather]", "expected_keywords": ["31"]},
        {"id": "broken", "prompt": "Break [k-broken]"},
    ]
    scripts = {**SCRIPTS, "[k-broken]": {"tool": [{"status": 400, "body": {"error": "bad request"}}], "code": []}}
    run = bench(tasks, scripts, "--smoltrace-agent-type", "tool", "--smoltrace-retries", "0", subprocess=True)
    run.result.assert_outcomes(failed=1, errors=1)
    docs = {d["task_id"]: d for d in run.read("traces.json")}
    wrong = assert_one_tree(docs["wrong"])[docs["wrong"]["root_span_id"]]
    assert wrong["name"] == "tool wrong"
    assert wrong["status"] == "ERROR"
    assert wrong["status_description"].startswith("failed checks: expected_keywords (expected: any of [31]")
    spans = assert_one_tree(docs["broken"])
    root = spans[docs["broken"]["root_span_id"]]
    assert root["status"] == "ERROR" and root["attributes"]["smoltrace.outcome"] == "error"
    (agent,) = [s for s in spans.values() if s["category"] == "agent"]
    assert agent["parent_span_id"] == root["span_id"]
    assert (agent["status"], agent["status_description"]) == ("ERROR", tracing.LEFT_OPEN)
    (failed_call,) = llm_spans(docs["broken"])
    assert failed_call["status"] == "ERROR" and failed_call["attributes"]["error.type"]


def test_a_retried_call_shows_every_attempt(bench: Any) -> None:
    flaky = {
        "tool": [{"status": 503, "times": 1, "then": {"final_answer": "20°C"}}],
        "code": [],
    }
    tasks = [{"id": "flaky", "prompt": "Weather please [k-flaky]", "expected_keywords": ["20"]}]
    run = bench(tasks, {"[k-flaky]": flaky}, "--smoltrace-agent-type", "tool", subprocess=True)
    run.result.assert_outcomes(passed=1)
    (doc,) = run.read("traces.json")
    spans = assert_one_tree(doc)
    attempts = llm_spans(doc)
    assert [s["status"] for s in attempts] == ["ERROR", "OK"]
    assert attempts[0]["parent_span_id"] == attempts[1]["parent_span_id"]
    step = spans[attempts[0]["parent_span_id"]]
    (event,) = [e for e in step["events"] if e["name"] == RETRY_EVENT]
    assert event["attributes"]["smoltrace.retry.attempt"] == 1 and event["attributes"]["error.type"] == "HTTP 503"
    (row,) = run.rows
    assert (
        row["total_tokens"]
        == attempts[1]["attributes"]["gen_ai.usage.input_tokens"]
        + attempts[1]["attributes"]["gen_ai.usage.output_tokens"]
    )


@pytest.mark.parametrize("provider", ["inference", "ollama"])
def test_every_provider_traces_its_model_calls(bench: Any, server: ScriptedModelServer, provider: str) -> None:
    base = server.url if provider == "ollama" else server.base_url
    run = bench(TASKS, SCRIPTS, "--smoltrace-provider", provider, "--smoltrace-api-base", base, subprocess=True)
    run.result.assert_outcomes(passed=4)
    assert {r["provider"] for r in run.rows} == {provider}
    assert_traces_match_results(run.run_dir, model_name=None)
