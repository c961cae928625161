"""Every attempt counted (issue 11, part 1 and part 8): whatever stops an item, every agent run that started is in the
run directory with its spend, and results.json, the leaderboard, metadata.json and the terminal summary agree with
each other and with what the scripted server served. Each test runs pytest in a fresh interpreter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import run_record
from test_resilience import WEATHER_TOOL, tasks_and_scripts

from pytest_smoltrace.testing import ScriptedModelServer

#: ``weather_tasks(n, delay)``: n tool tasks t0…t(n-1) and their scripts (the resilience tests' set)
weather_tasks = tasks_and_scripts


def tokens(rows: list[dict[str, Any]]) -> int:
    return sum(r["total_tokens"] or 0 for r in rows)


def assert_totals_agree(run: Any, server: ScriptedModelServer) -> None:
    """results.json, the leaderboard rows, metadata.json and the terminal summary all say what the server served."""
    served = server.usage_for()["total_tokens"]
    rows, board, meta = run.rows, run.read("leaderboard_row.json"), run.read("metadata.json")
    assert tokens(rows) == served
    assert sum(r["total_tokens"] for r in board) == served
    assert meta["totals"]["total_tokens"] == served
    assert sum(r["attempts"] for r in board) == len(rows) == meta["totals"]["attempts"]
    assert sum(r["completed_tests"] for r in board) == meta["counts"]["completed"]
    assert sum(r["completed_tests"] for r in board) == sum(
        r["final_attempt"] and r["error_type"] != "Cancelled" for r in rows
    )
    summary = run.stdout[run.stdout.index("smoltrace summary") :]
    shown = [int(line.split()[7]) for line in summary.splitlines() if line.split()[:1] in (["tool"], ["code"])]
    assert sum(shown) == served


# -- 1. -x / --maxfail: the runs started ahead are recorded, cancelled, with their spend ------------------------------


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_exitfirst_records_the_runs_started_ahead_with_their_spend(
    bench: Any, server: ScriptedModelServer, xdist: bool
) -> None:
    tasks, scripts = weather_tasks(6, delay=1.0)
    scripts["[k-t0]"] = {"tool": [WEATHER_TOOL, {"final_answer": "cold"}]}  # fails fast, the others are in flight
    extra = ("-n", "2", "--dist", "loadscope") if xdist else ()
    run = bench(tasks, scripts, "-x", "--smoltrace-concurrency", "4", *extra, subprocess=True)
    assert run.result.ret in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED)  # xdist: interrupted
    served = server.usage_for()
    assert served["requests"] > 2  # runs started ahead did reach the model
    rows = run.rows
    assert_totals_agree(run, server)
    failed = [r for r in rows if r["outcome"] == "failed"]
    cancelled = [r for r in rows if r["error_type"] == "Cancelled"]
    assert [r["task_id"] for r in failed] == ["t0"] and cancelled
    assert len(failed) + len(cancelled) + sum(r["success"] for r in rows) == len(rows)
    for row in cancelled:
        assert row["outcome"] == "error" and row["total_tokens"] > 0 and "--smoltrace-resume" in row["error"]
        assert row["pass_at_1_passed"] is None and row["final_attempt"] is True
    lb = run.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "partial" and lb["planned_tests"] == 6
    assert lb["cancelled_tests"] == len(cancelled)
    assert lb["completed_tests"] == len(rows) - len(cancelled)
    assert lb["interrupted_tests"] == 6 - lb["completed_tests"]
    assert lb["run_stop_reason"] == "stopping after 1 failures"
    if not xdist:
        assert [r["task_id"] for r in rows] == [f"t{i}" for i in range(len(rows))]  # collection order
        assert f"{len(cancelled)} cancelled" in run.stdout

    # a resume runs the cancelled items again: their cancelled attempt stays (it was spent), the re-run is attempt 1
    resumed = bench(tasks, None, "--smoltrace-resume", "test-run", subprocess=True)
    assert resumed.result.ret == pytest.ExitCode.TESTS_FAILED or resumed.result.ret == pytest.ExitCode.OK
    assert_totals_agree(resumed, server)
    finals = [r for r in resumed.rows if r["final_attempt"]]
    assert sorted(r["task_id"] for r in finals) == [f"t{i}" for i in range(6)]
    assert all(r["success"] for r in finals if r["task_id"] != "t0")
    again = [r for r in resumed.rows if r["attempt"] == 1]
    assert sorted(r["task_id"] for r in again) == sorted(r["task_id"] for r in cancelled)
    lb = resumed.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "completed" and lb["completed_tests"] == 6 and lb["cancelled_tests"] == 0
    assert lb["pass_at_1"] == round(5 / 6, 4)  # a cancelled attempt is no attempt of the model


# -- 8. a file collected once, CO2 not double-counted, rows in collection order ---------------------------------------


def test_a_dataset_file_inside_the_test_path_is_collected_once(bench: Any, pytester: pytest.Pytester) -> None:
    tasks, scripts = weather_tasks(3)
    (pytester.path / "bench").mkdir()
    (pytester.path / "bench" / "smoltrace_tasks.json").write_text(json.dumps(tasks))
    run = bench(None, scripts, "bench", "--smoltrace-dataset", "bench/smoltrace_tasks.json", subprocess=True)
    run.result.assert_outcomes(passed=3)
    assert len(run.rows) == 3 and run.read("metadata.json")["counts"]["planned"] == 3


def test_leaderboard_rows_share_the_runs_co2(bench: Any) -> None:
    tasks = [
        {"id": "w", "prompt": "Weather? [k-w]", "expected_keywords": ["20"]},
        {"id": "v", "prompt": "Weather again? [k-v]", "agent_type": "tool", "expected_keywords": ["20"]},
    ]
    scripts = {
        "[k-w]": {"tool": [WEATHER_TOOL, {"final_answer": "20°C"}], "code": [{"final_answer": "20°C", "delay": 0.5}]},
        "[k-v]": {"tool": [WEATHER_TOOL, {"final_answer": "20°C"}]},
    }
    run = bench(tasks, scripts, "--smoltrace-sample-interval", "0.1", subprocess=True)
    metrics = run.read("metrics.json")
    board = {r["agent_type"]: r for r in run.read("leaderboard_row.json")}
    assert set(board) == {"tool", "code"}
    run_co2 = metrics["co2_g"]["value"]
    assert run_co2 is not None and run_co2 > 0
    assert sum(r["co2_emissions_g"] for r in board.values()) == pytest.approx(run_co2)
    assert sum(r["environment_share"] for r in board.values()) == pytest.approx(1.0)
    time_by_type = {t: sum(r["execution_time_ms"] for r in run.rows if r["agent_type"] == t) for t in board}
    for agent_type, row in board.items():
        assert row["environment_share"] == pytest.approx(
            time_by_type[agent_type] / sum(time_by_type.values()), abs=1e-5
        )
        assert row["co2_emissions_g"] < run_co2 and row["co2_label"] == metrics["co2_g"]["label"]


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_results_come_in_collection_order(bench: Any, pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makeconftest(
        """
        def pytest_collection_modifyitems(items):
            items.reverse()  # run (and finish) in the reverse of the collection order
        """
    )
    tasks, scripts = weather_tasks(5)
    extra = ("-n", "2") if xdist else ()
    run = bench(tasks, scripts, "--smoltrace-concurrency", "1", *extra, subprocess=True)
    run.result.assert_outcomes(passed=5)
    rows = run.rows
    assert [r["task_id"] for r in rows] == [f"t{i}" for i in range(5)]
    if not xdist:
        assert rows[0]["evaluation_date"] >= rows[-1]["evaluation_date"]  # t0 ran last


# -- the counting rules, in process ------------------------------------------------------------------------------------


def attempt(task_id: str, n: int, *, passed: bool = True, error_type: str | None = None, tokens: int = 100) -> Any:
    from pytest_smoltrace.records import Check, ItemResult, Verdict
    from pytest_smoltrace.tasks import Task

    record = run_record(
        "20°C",
        task_id=task_id,
        model="m",
        stop_reason="error" if error_type else "final_answer",
        prompt_tokens=tokens if tokens else None,
        completion_tokens=0 if tokens else None,
        duration_ms=10.0,
        error="x" if error_type else None,
        error_type=error_type,
        nodeid=f"smoltrace/tasks.json::tool::{task_id}",
        attempt=n,
    )
    verdict = Verdict((Check("expected_keywords", passed, ["20"], "20°C"),), error="error: x" if error_type else None)
    return ItemResult(record.nodeid, record, verdict, Task(task_id, "What is the weather?"))


def test_summary_counts_items_by_verdict_and_spend_by_attempt() -> None:
    from pytest_smoltrace.summary import summarize
    from smoltrace_export.rows import result_rows

    results = [
        attempt("a", 0, passed=False, error_type="APIError"),
        attempt("a", 1),  # flaky
        attempt("b", 0, passed=False),
        attempt("c", 0, error_type="Cancelled", tokens=50),  # started ahead, never run: not completed
        attempt("d", 0, error_type="Cancelled", tokens=70),
        attempt("d", 1),  # resumed after a cancelled attempt: pass@1 is this one
    ]
    (s,) = summarize(results, {"tool": 5})
    assert (s.total, s.passed, s.failed, s.errored, s.cancelled, s.flaky, s.attempts) == (3, 2, 1, 0, 1, 1, 6)
    assert s.total_tokens == 520 and s.cancelled_tokens == 50 and s.not_run == 1
    rows = result_rows(results)
    assert [r["pass_at_1_passed"] for r in rows] == [False, None, False, None, None, True]
    assert [r["final_attempt"] for r in rows] == [False, True, True, True, False, True]


def test_aggregator_numbers_attempts_after_those_a_resume_keeps(tmp_path: Any) -> None:
    from pytest_smoltrace.aggregate import Aggregator, journal_attempts

    first = Aggregator(tmp_path)
    for result in (
        attempt("a", 0, passed=False),
        attempt("a", 1),
        attempt("b", 0, error_type="Cancelled"),
        attempt("c", 0, error_type="WorkerCrashed", tokens=0),
    ):
        first.add(result)
    first.close()
    assert len(journal_attempts(tmp_path)) == 4
    done = [r for r in journal_attempts(tmp_path) if r.nodeid.endswith("::a")][-1:]
    resumed = Aggregator(tmp_path, done)
    # b's cancelled attempt spent tokens and stays; c's crashed one spent nothing known and is replaced by its re-run
    assert [(r.record.task_id, r.record.attempt) for r in resumed.attempts] == [("a", 0), ("a", 1), ("b", 0)]
    assert resumed.add(attempt("b", 0)).record.attempt == 1
    assert resumed.add(attempt("c", 0)).record.attempt == 0
    # a cancelled run for an attempt another worker reported (work stealing) is an attempt of its own, not the verdict
    assert resumed.add(attempt("c", 0, error_type="Cancelled")).record.attempt == 1
    assert resumed.results["smoltrace/tasks.json::tool::c"].record.error_type is None
    resumed.close()
    # 7 journal lines; c's re-run is a later line for the crashed attempt's key and replaces it
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 7 and len(journal_attempts(tmp_path)) == 6
