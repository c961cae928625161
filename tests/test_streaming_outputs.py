"""Issue 17, scale: the controller keeps a compact digest per attempt, results.json is streamed from the journal, the
reports pytest holds to the end are released of their payloads, and report.html caps its item table.

The outputs equal what the held-in-memory path gave (rows, summaries, statistics, leaderboard rows), and the memory
bound is checked structurally (what is reachable from the aggregator, what the reports keep), never by timing.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_record, weather_script

from pytest_smoltrace.aggregate import Aggregator, result_rows
from pytest_smoltrace.records import CANCELLED, Check, ItemResult, RunRecord, StepInfo, ToolCall, Verdict
from pytest_smoltrace.tasks import Task
from smoltrace_export import html_report, rows
from smoltrace_export.json_sink import write_json, write_json_rows
from smoltrace_export.records import jsonable
from smoltrace_export.statistics import outcomes_from_results, statistics
from smoltrace_export.summary import AttemptDigest, summarize


def _result(task_id: str, attempt: int = 0, *, passed: bool = True, agent: str = "tool", **fields: Any) -> ItemResult:
    nodeid = f"smoltrace/tasks.json::{agent}::{task_id}"
    calls = (
        ToolCall("get_weather", {"location": "Paris, France"}, "20°C, sunny", None, 3.5, 1.0),
        ToolCall("get_weather", {"location": "Paris, France"}, None, "boom", 1.25, 2.0),
        ToolCall("final_answer", {"answer": "20°C"}, "20°C", None, 0.5, 3.0),
    )
    record = run_record(
        "It is 20°C — ensoleillé ✓",
        task_id=task_id,
        agent_type=agent,
        nodeid=nodeid,
        attempt=attempt,
        steps=(StepInfo("action", 1, 1.0, 20, 2), StepInfo("action", 2, 2.0, 30, 3, code="print(1)")),
        tool_calls=calls,
        prompt_tokens=123,
        completion_tokens=7,
        cost_usd=0.000123,
        duration_ms=12.345678,
        trace_id=f"{abs(hash((task_id, agent, attempt))):032x}"[:32],
        **fields,
    )
    long_actual = "x" * 5000  # longer than a check value's 2000 characters: cut once, never again
    checks = (
        Check("final_answer", True, "called", "called"),
        Check("expected_tool", passed, "get_weather", ["get_weather"]),
        Check("expected_keywords", passed, ["20"], long_actual),
    )
    error = "error: x" if fields.get("error_type") else None
    task = Task(task_id, f"What is the weather? [{task_id}]", difficulty="easy", category="weather")
    return ItemResult(nodeid, record, Verdict(checks, error=error), task)


def _results() -> list[ItemResult]:
    """Attempts in collection order: reruns, a cancelled run, an error, both agent types."""
    return [
        _result("a", 0, passed=False),
        _result("a", 1),
        _result("b", 0),
        _result("c", 0, error_type="Timeout", stop_reason="timeout"),
        _result("d", 0, error_type=CANCELLED, stop_reason="error"),
        _result("a", 0, agent="code"),
        _result("b", 0, agent="code", passed=False),
    ]


def _filed(tmp_path: Path) -> tuple[Aggregator, list[ItemResult]]:
    """An aggregator with the attempts filed through the journal, and the attempts as filed (the old in-memory path)."""
    aggregator = Aggregator(tmp_path)
    aggregator.set_order(dict.fromkeys(r.nodeid for r in _results()))
    # filed as from the wire (a JSON round trip), as the controller gets them from reports
    filed = [aggregator.add(ItemResult.from_dict(json.loads(json.dumps(r.to_dict())))) for r in _results()]
    return aggregator, filed


def test_results_json_streamed_from_the_journal_equals_the_held_results_byte_for_byte(tmp_path: Path) -> None:
    aggregator, held = _filed(tmp_path / "run")
    write_json(tmp_path / "held.json", rows.result_rows(held))
    count = write_json_rows(tmp_path / "streamed.json", result_rows(aggregator))
    aggregator.close()
    assert count == len(held) == 7
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "held.json").read_bytes()
    streamed = json.loads((tmp_path / "streamed.json").read_text(encoding="utf-8"))
    assert [r["final_attempt"] for r in streamed] == [False, True, True, True, True, True, True]
    # the long check value was cut once, with the true count of what was cut
    keywords = next(c for c in streamed[1]["checks"] if c["name"] == "expected_keywords")
    assert keywords["actual"].endswith("… [3000 more chars]")


def test_summaries_statistics_and_leaderboard_from_digests_equal_those_from_the_full_results(tmp_path: Path) -> None:
    aggregator, held = _filed(tmp_path)
    digests = aggregator.digests
    aggregator.close()
    assert all(isinstance(d, AttemptDigest) for d in digests)
    planned = {("openai/scripted", "tool"): 5, ("openai/scripted", "code"): 2}
    assert summarize(digests, planned) == summarize(held, planned)
    assert outcomes_from_results(digests) == outcomes_from_results(held)
    assert statistics(outcomes_from_results(digests)) == statistics(outcomes_from_results(held))
    ctx = rows.RunContext(
        model="openai/scripted",
        provider="litellm",
        run_id="r",
        dataset="tasks.json",
        dataset_revision=None,
        started_at=1.0,
        finished_at=2.0,
        run_status="completed",
        task_timeout_s=300,
        results_location="local:r",
    )
    for summary in summarize(held, planned):
        assert rows.leaderboard_row(summary, ctx, results=digests) == rows.leaderboard_row(summary, ctx, results=held)


def _reachable_types(root: object, limit: int = 200_000) -> set[type]:
    seen: set[int] = set()
    types: set[type] = set()
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        types.add(type(obj))
        todo.extend(gc.get_referents(obj))
    return types


def test_the_aggregator_holds_no_run_record_after_filing(tmp_path: Path) -> None:
    aggregator, held = _filed(tmp_path)
    del held
    types = _reachable_types(aggregator)
    assert AttemptDigest in types
    assert not types & {ItemResult, RunRecord, ToolCall, StepInfo, Task, Verdict}
    # read back on demand, one at a time, in full
    assert [r.record.tool_calls[0].result for r in aggregator.iter_attempts()] == ["20°C, sunny"] * 7
    aggregator.close()


def test_without_a_run_directory_the_full_results_are_held(tmp_path: Path) -> None:
    aggregator = Aggregator(None)
    result = aggregator.add(_result("a"))
    assert aggregator.attempts == [result]


def test_a_resumed_aggregator_reads_digests_and_offsets_from_the_journal(tmp_path: Path) -> None:
    first, held = _filed(tmp_path)
    first.close()
    done = [r for r in held if r.nodeid.endswith("::a")]
    resumed = Aggregator(tmp_path, done, resumed=True)
    assert not _reachable_types(resumed) & {ItemResult, RunRecord}
    # every attempt spent tokens, so every one is kept (in journal order), read back in full
    assert [r.to_dict() for r in resumed.iter_attempts()] == [r.to_dict() for r in held]
    assert resumed.add(_result("a")).record.attempt == 2  # numbered after the attempts the journal holds
    resumed.close()


def test_jsonable_cuts_a_long_text_once() -> None:
    once = jsonable("y" * 4321)
    assert once == "y" * 2000 + "… [2321 more chars]"
    assert jsonable(once) == once
    assert jsonable("z" * 2001) == "z" * 2000 + "… [1 more chars]"


@pytest.mark.parametrize("data", [[], [{}], [{"a": [1, {"b": []}], "c": "x\ny\u2028é"}, {"z": {}, "n": None}], [1, []]])
def test_streamed_rows_file_is_byte_identical_to_the_whole_list(tmp_path: Path, data: list[Any]) -> None:
    write_json(tmp_path / "whole.json", data)
    assert write_json_rows(tmp_path / "streamed.json", iter(data)) == len(data)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


# -- end to end: a real run --------------------------------------------------------------------------------------------

RELEASED_PROBE = """
import json
import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    kept = [
        sorted(rep.__dict__["smoltrace"]["record"]) + ["trace" in rep.__dict__["smoltrace"]]
        for reports in reporter.stats.values()
        for rep in reports
        if isinstance(getattr(rep, "__dict__", None), dict) and "smoltrace" in rep.__dict__
    ]
    with open("released.json", "w") as handle:
        json.dump(kept, handle)
"""


def test_a_run_streams_its_outputs_and_releases_the_payloads_pytest_holds(
    pytester: pytest.Pytester, bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = [
        {"id": f"t{i}", "prompt": f"Weather {i}? [k-s{i}]", "expected_tool": "get_weather", "expected_keywords": ["20"]}
        for i in range(4)
    ]
    scripts = {f"[k-s{i}]": weather_script("20°C" if i != 2 else "no idea") for i in range(4)}
    pytester.makeconftest(RELEASED_PROBE)
    run = bench(tasks, scripts, "--smoltrace-agent-type", "tool", subprocess=True)
    run.result.assert_outcomes(passed=3, failed=1)
    # the reports pytest's terminal reporter holds to the end keep only what their status line reads
    kept = json.loads((pytester.path / "released.json").read_text())
    assert len(kept) == 4
    assert all(k == ["attempt", "completion_tokens", "cost_usd", "prompt_tokens", "retries", False] for k in kept)
    # results.json is what the journal's results give as rows, in collection order
    from pytest_smoltrace.aggregate import journal_attempts

    journaled = journal_attempts(run.run_dir)
    by_node = {r["test_case_uid"]: r for r in rows.result_rows(journaled)}
    assert run.rows == [by_node[r["test_case_uid"]] for r in run.rows]
    assert [r["task_id"] for r in run.rows] == ["t0", "t1", "t2", "t3"]
    assert run.read("metadata.json")["counts"]["num_results"] == 4
    # report.html past its item limit: the item that failed is listed first among those shown, with a note
    monkeypatch.setattr(html_report, "ITEM_LIMIT", 2)
    page = html_report.render_html_report([html_report.load_run(run.run_dir)])
    assert 'id="capped"' in page and "lists 2 of the 4 items" in page
    loaded = html_report.load_run(run.run_dir)
    shown = {nodeid.rsplit("::", 1)[1] for nodeid, _ in loaded.traces}
    assert shown == {"t0", "t2"}  # the traces of the items the table leaves out are not read
    monkeypatch.setattr(html_report, "ITEM_LIMIT", 2000)
    assert 'id="capped"' not in html_report.render_html_report([html_report.load_run(run.run_dir)])
