"""Every attempt counted under the pytest plugins people combine (issue 11, part 1): pytest-rerunfailures (one row
per attempt, the verdict is the last attempt's, pass@1 the first's), pytest-timeout (both methods) and any plugin that
fails an item from outside. Each test runs pytest in a fresh interpreter against the scripted server."""

from __future__ import annotations

from typing import Any

import pytest
from test_attempts import WEATHER_TOOL, assert_totals_agree, tokens, weather_tasks

from pytest_smoltrace.testing import ScriptedModelServer

# -- 2. pytest-rerunfailures: one row per attempt, the verdict is the last attempt's, pass@1 the first's -------------

RERUN_TASKS = [
    {"id": "flaky", "prompt": "Weather? [k-flaky]", "agent_type": "tool", "expected_keywords": ["20"]},
    {"id": "wrong", "prompt": "Weather? [k-wrong]", "agent_type": "tool", "expected_keywords": ["20"]},
    {"id": "fine", "prompt": "Weather? [k-fine]", "agent_type": "tool", "expected_keywords": ["20"]},
]
RERUN_SCRIPTS: dict[str, Any] = {
    # the first request gets HTTP 500 (no model retries): the first attempt errors, the rerun passes
    "[k-flaky]": {"tool": [{"status": 500, "times": 1, "then": WEATHER_TOOL}, {"final_answer": "20°C"}]},
    "[k-wrong]": {"tool": [WEATHER_TOOL, {"final_answer": "cold"}]},
    "[k-fine]": {"tool": [WEATHER_TOOL, {"final_answer": "20°C"}]},
}


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_reruns_record_every_attempt(bench: Any, server: ScriptedModelServer, xdist: bool) -> None:
    extra = ("-n", "2") if xdist else ()
    run = bench(RERUN_TASKS, RERUN_SCRIPTS, "--reruns", "2", "--smoltrace-retries", "0", *extra, subprocess=True)
    outcomes = run.result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed"), outcomes.get("rerun")) == (2, 1, 3), outcomes
    assert_totals_agree(run, server)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in run.rows:
        by_task.setdefault(row["task_id"], []).append(row)
    assert {k: [r["attempt"] for r in v] for k, v in by_task.items()} == {
        "flaky": [0, 1],
        "wrong": [0, 1, 2],
        "fine": [0],
    }
    first, second = by_task["flaky"]
    assert first["outcome"] == "error" and first["pass_at_1_passed"] is False and first["final_attempt"] is False
    assert second["success"] is True and second["pass_at_1_passed"] is None and second["final_attempt"] is True
    assert all(r["repeat"] == 0 for r in run.rows)
    for key, task_id in (("[k-wrong]", "wrong"), ("[k-fine]", "fine"), ("[k-flaky]", "flaky")):
        assert tokens(by_task[task_id]) == server.usage_for(key)["total_tokens"]
    lb = run.read("leaderboard_row.json")[0]
    assert lb["total_tests"] == 3 and lb["successful_tests"] == 2 and lb["failed_tests"] == 1
    assert lb["pass_at_1"] == round(1 / 3, 4) and lb["success_rate"] == round(200 / 3, 2)
    assert lb["flaky_tests"] == 1 and lb["attempts"] == 6 and lb["errored_tests"] == 0
    assert "1 flaky (passed on rerun)" in run.stdout


def test_resume_after_reruns_keeps_every_attempt_once(bench: Any, server: ScriptedModelServer) -> None:
    first = bench(
        RERUN_TASKS, RERUN_SCRIPTS, "--reruns", "2", "--smoltrace-retries", "0", "-k", "not fine", subprocess=True
    )
    assert len(first.rows) == 5
    resumed = bench(RERUN_TASKS, None, "--reruns", "2", "--smoltrace-resume", "test-run", subprocess=True)
    resumed.result.assert_outcomes(passed=1, deselected=2)
    assert_totals_agree(resumed, server)
    keys = [(r["task_id"], r["attempt"]) for r in resumed.rows]
    assert sorted(keys) == sorted([("flaky", 0), ("flaky", 1), ("wrong", 0), ("wrong", 1), ("wrong", 2), ("fine", 0)])
    assert [r["task_id"] for r in resumed.rows if r["final_attempt"]] == ["flaky", "wrong", "fine"]  # collection order
    lb = resumed.read("leaderboard_row.json")[0]
    assert lb["flaky_tests"] == 1 and lb["pass_at_1"] == round(1 / 3, 4) and lb["completed_tests"] == 3


# -- 3. pytest-timeout and other plugins that fail an item from outside -----------------------------------------------


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_pytest_timeout_records_the_item_as_timed_out(bench: Any, server: ScriptedModelServer, method: str) -> None:
    tasks, scripts = weather_tasks(3)
    scripts["[k-t1]"] = {"tool": [{**WEATHER_TOOL, "delay": 4.0}, {"final_answer": "20°C late"}]}
    run = bench(tasks, scripts, "--timeout", "2", "--timeout-method", method, subprocess=True)
    run.result.assert_outcomes(passed=2, errors=1)
    assert "Timeout (>2" in run.stdout and "from pytest-timeout" in run.stdout
    assert_totals_agree(run, server)
    slow = run.row("t1", "tool")
    assert slow["outcome"] == "error" and slow["stop_reason"] == "timeout" and slow["timed_out"] is True
    assert slow["total_tokens"] == server.usage_for("[k-t1]")["total_tokens"] > 0  # the run finished: all of it
    lb = run.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "completed" and lb["run_stop_reason"] == "completed"
    assert lb["timed_out_tests"] == 1 and lb["errored_tests"] == 1 and lb["completed_tests"] == 3
    assert lb["interrupted_tests"] == 0
    summary = run.stdout[run.stdout.index("smoltrace summary") :]
    assert "1 timed out" in summary and "not run" not in summary


def test_other_plugins_failing_an_item_from_outside(
    bench: Any, server: ScriptedModelServer, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        import pytest

        def pytest_runtest_setup(item):
            if item.name == "t1":
                raise RuntimeError("lab is closed")  # before the item's own setup, where its agent runs

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_call(item):
            yield
            if item.name == "t2":
                raise AssertionError("the answer is not in French")

        class Audit:
            @pytest.hookimpl(wrapper=True)
            def pytest_runtest_setup(self, item):
                yield
                if item.name == "t3":
                    raise RuntimeError("audit failed")  # after the item's own setup: its run has finished

        def pytest_configure(config):
            config.pluginmanager.register(Audit())
        """
    )
    tasks, scripts = weather_tasks(5)
    run = bench(tasks, scripts, "--smoltrace-concurrency", "4", subprocess=True)
    run.result.assert_outcomes(passed=2, failed=1, errors=2)
    assert_totals_agree(run, server)
    closed = run.row("t1", "tool")
    assert closed["outcome"] == "error" and "lab is closed" in closed["error"]
    assert closed["error_type"] == "RuntimeError"
    french = run.row("t2", "tool")
    assert french["outcome"] == "failed" and french["success"] is False
    assert next(c for c in french["checks"] if c["name"] == "pytest_outcome")["passed"] is False
    audited = run.row("t3", "tool")
    assert audited["outcome"] == "error" and "audit failed" in audited["error"]
    assert audited["total_tokens"] == server.usage_for("[k-t3]")["total_tokens"] > 0
    lb = run.read("leaderboard_row.json")[0]
    assert lb["completed_tests"] == 5 and lb["errored_tests"] == 2 and lb["failed_tests"] == 1
