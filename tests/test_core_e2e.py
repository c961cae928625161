"""End to end: real smolagents agents, real litellm, real HTTP to the scripted model server, pytester sessions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_smoltrace.testing import ScriptedModelServer

WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
WEATHER_CODE = {"code": "w = get_weather(location='Paris, France')\nprint(w)"}
CALC_TOOL = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "234*67"}}]}
CALC_CODE = {"code": "r = calculator(expression='234*67')\nprint(r)"}


def task(task_id: str, prompt: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "prompt": prompt, **fields}


CHECKS_TASKS = [
    task(
        "weather_ok",
        "Weather in Paris? [k-weather-ok]",
        expected_tool="get_weather",
        expected_keywords=["20"],
        difficulty="easy",
        category="weather",
    ),
    task(
        "answer_wrong",
        "Multiply 234 by 67. [k-answer-wrong]",
        expected_tool="calculator",
        expected_answer=15678,
        difficulty="medium",
        category="math",
    ),
    task(
        "kw_all_missing",
        "Weather in Paris, all words. [k-kw-all]",
        expected_tool="get_weather",
        expected_keywords=["20", "cloudy", "umbrella"],
        keyword_mode="all",
        agent_type="tool",
    ),
    task(
        "forbidden",
        "Multiply without the calculator. [k-forbidden]",
        forbidden_tools=["calculator"],
        expected_answer="15678",
        agent_type="tool",
    ),
]
CHECKS_SCRIPTS: dict[str, Any] = {
    "[k-weather-ok]": {
        "tool": [WEATHER_TOOL, {"final_answer": "It is 20°C and partly cloudy."}],
        "code": [WEATHER_CODE, {"final_answer": "20°C, partly cloudy"}],
    },
    "[k-answer-wrong]": {"tool": [CALC_TOOL, {"final_answer": "15000"}], "code": [CALC_CODE, {"final_answer": 15000}]},
    "[k-kw-all]": {"tool": [WEATHER_TOOL, {"final_answer": "20°C and partly cloudy"}]},
    "[k-forbidden]": {"tool": [CALC_TOOL, {"final_answer": "15678"}]},
}


def check(row: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in row["checks"] if c["name"] == name]
    assert matches, f"no check {name} in {row['checks']}"
    return matches[0]


def test_both_agent_types_checks_pass_and_fail(bench: Any, server: ScriptedModelServer) -> None:
    run = bench(CHECKS_TASKS, CHECKS_SCRIPTS)
    run.result.assert_outcomes(passed=2, failed=4)
    ok_tool, ok_code = run.row("weather_ok", "tool"), run.row("weather_ok", "code")
    for row in (ok_tool, ok_code):
        assert row["success"] is True and row["tools_used"] == ["get_weather"] and row["stop_reason"] == "final_answer"
        assert {c["name"] for c in row["checks"]} == {
            "final_answer",
            "tool_called",
            "expected_tool",
            "expected_keywords",
        }
    # a wrong answer fails only expected_answer, for both agent types, and the message shows expected vs actual
    for agent in ("tool", "code"):
        row = run.row("answer_wrong", agent)
        assert row["success"] is False and check(row, "expected_answer")["passed"] is False
        assert check(row, "expected_tool")["passed"] is True and check(row, "final_answer")["passed"] is True
    stdout = run.stdout
    assert "FAIL" in stdout and "expected_answer" in stdout and "15678" in stdout and "15000" in stdout
    # keywords: all mode needs every keyword
    assert check(run.row("kw_all_missing", "tool"), "expected_keywords")["passed"] is False
    # forbidden tool executed → fails, although the answer (with a thousands separator in the truth) is right
    forbidden = run.row("forbidden", "tool")
    assert check(forbidden, "forbidden_tools")["passed"] is False
    assert check(forbidden, "expected_answer")["passed"] is True
    # the failure message is the table, not a traceback
    assert "Traceback" not in stdout and "runner.py" not in stdout


def test_token_totals_equal_server_usage(bench: Any, server: ScriptedModelServer) -> None:
    run = bench(CHECKS_TASKS, CHECKS_SCRIPTS)
    for key, task_id in (
        ("[k-weather-ok]", "weather_ok"),
        ("[k-answer-wrong]", "answer_wrong"),
        ("[k-forbidden]", "forbidden"),
    ):
        rows = [r for r in run.rows if r["task_id"] == task_id]
        usage = server.usage_for(key)
        assert usage["requests"] > 0
        assert sum(r["prompt_tokens"] for r in rows) == usage["prompt_tokens"]
        assert sum(r["completion_tokens"] for r in rows) == usage["completion_tokens"]
        assert sum(r["total_tokens"] for r in rows) == usage["total_tokens"]


CODE_TASKS = [
    task(
        "code_no_tool",
        "Compute 234*67 [k-code-no-tool]",
        agent_type="code",
        expected_tool="calculator",
        expected_answer=15678,
    ),
    task(
        "code_comment",
        "Compute 234*67 [k-code-comment]",
        agent_type="code",
        expected_tool="calculator",
        expected_answer=15678,
    ),
    task(
        "code_uses_tool",
        "Compute 234*67 [k-code-uses]",
        agent_type="code",
        expected_tool="calculator",
        expected_answer=15678,
    ),
]
CODE_SCRIPTS = {
    "[k-code-no-tool]": {"code": [{"code": "x = 234 * 67\nprint(x)"}, {"final_answer": 15678}]},
    "[k-code-comment]": {
        "code": [
            {
                "code": "# r = calculator(expression='234*67')\nif False:\n"
                "    calculator(expression='1+1')\nx = 234 * 67\nprint(x)"
            },
            {"final_answer": 15678},
        ]
    },
    "[k-code-uses]": {"code": [CALC_CODE, {"final_answer": 15678}]},
}


def test_code_agent_must_execute_the_expected_tool(bench: Any) -> None:
    run = bench(CODE_TASKS, CODE_SCRIPTS)
    run.result.assert_outcomes(passed=1, failed=2)
    for task_id in ("code_no_tool", "code_comment"):
        row = run.row(task_id, "code")
        assert row["tools_used"] == [] and row["tool_called"] is False
        assert check(row, "expected_tool")["passed"] is False and check(row, "tool_called")["passed"] is False
        assert check(row, "expected_answer")["passed"] is True  # right answer, wrong way: still a failure
    assert run.row("code_uses_tool", "code")["tools_used"] == ["calculator"]


def test_max_steps_is_not_a_final_answer(bench: Any, server: ScriptedModelServer) -> None:
    tasks = [
        task("loops", "Weather loop [k-loop]", agent_type="both", expected_tool="get_weather", expected_keywords=["20"])
    ]
    scripts = {
        "[k-loop]": {
            "tool": [WEATHER_TOOL, WEATHER_TOOL, WEATHER_TOOL],
            "code": [WEATHER_CODE, WEATHER_CODE],
            "summary": "The weather is 20°C and partly cloudy.",
        }
    }
    run = bench(tasks, scripts, "--smoltrace-max-steps", "2")
    run.result.assert_outcomes(failed=2)
    for agent in ("tool", "code"):
        row = run.row("loops", agent)
        assert row["stop_reason"] == "max_steps" and row["final_answer_called"] is False
        assert row["steps"] == 2  # each step once; the forced summary is not a step
        assert row["tools_used"] == ["get_weather", "get_weather"]
        assert "20°C" in row["response"]
        assert check(row, "expected_keywords") == {
            "name": "expected_keywords",
            "passed": False,
            "expected": "any of [20]",
            "actual": "no final answer: max steps reached (the summary is not a final answer)",
        }
        assert check(row, "final_answer")["passed"] is False
    # the forced summary's tokens are counted too
    usage = server.usage_for("[k-loop]")
    assert sum(r["total_tokens"] for r in run.rows) == usage["total_tokens"]
    lb = {r["agent_type"]: r for r in run.read("leaderboard_row.json")}
    assert lb["tool"]["max_steps_tests"] == 1 and lb["tool"]["successful_tests"] == 0


def test_model_http_500_is_an_error_and_the_session_goes_on(bench: Any) -> None:
    tasks = [
        task("broken", "Broken model [k-500]", agent_type="tool"),
        task("fine", "Weather in Paris? [k-fine]", agent_type="tool", expected_tool="get_weather"),
    ]
    scripts = {
        "[k-500]": {"tool": [{"status": 500, "body": {"error": {"message": "upstream exploded"}}}]},
        "[k-fine]": {"tool": [WEATHER_TOOL, {"final_answer": "20°C"}]},
    }
    run = bench(tasks, scripts)
    run.result.assert_outcomes(passed=1, errors=1)
    broken = run.row("broken", "tool")
    assert broken["outcome"] == "error" and broken["stop_reason"] == "error" and broken["success"] is False
    assert "500" in broken["error"] or "exploded" in broken["error"]
    assert "ERROR at setup of" in run.stdout and "stop reason: error" in run.stdout
    meta = run.read("metadata.json")
    assert meta["counts"]["errored"] == 1 and meta["counts"]["passed"] == 1 and meta["counts"]["completed"] == 2


def test_timeout_stops_waiting(bench: Any) -> None:
    tasks = [task("slow", "Slow model [k-slow]", agent_type="tool")]
    scripts = {"[k-slow]": {"tool": [{"delay": 5, "final_answer": "late"}]}}
    # a fresh interpreter: the run goes on in its thread after pytest stops waiting, and in-process its imports raced
    # pytester's restore of sys.modules ("dictionary changed size during iteration", seen once in CI)
    run = bench(tasks, scripts, "--smoltrace-timeout", "0.5", subprocess=True)
    run.result.assert_outcomes(errors=1)
    row = run.row("slow", "tool")
    assert row["stop_reason"] == "timeout" and row["timed_out"] is True
    assert row["execution_time_ms"] < 3000


#: The first two of CHECKS_TASKS, the second one hard and multi-step.
SELECT_TASKS = [CHECKS_TASKS[0], {**CHECKS_TASKS[1], "difficulty": "hard", "category": "multi-step math"}]


def test_k_m_and_lf_select_the_right_items(bench: Any) -> None:
    run = bench(SELECT_TASKS, CHECKS_SCRIPTS, "-k", "weather", run_id="r-k")
    assert set(run.verdicts()) == {"smoltrace/tasks.json::tool::weather_ok", "smoltrace/tasks.json::code::weather_ok"}
    run = bench(SELECT_TASKS, None, "-m", "code and hard", "--co", "-q")
    run.result.stdout.fnmatch_lines(["smoltrace/tasks.json::code::answer_wrong", "*1/4 tests collected*"])
    run = bench(SELECT_TASKS, None, "-m", "multi_step_math and tool", "--co", "-q")
    run.result.stdout.fnmatch_lines(["smoltrace/tasks.json::tool::answer_wrong"])
    first = bench(SELECT_TASKS, None, run_id="r-all")
    first.result.assert_outcomes(passed=2, failed=2)
    rerun = bench(SELECT_TASKS, None, "--lf", run_id="r-lf")
    rerun.result.assert_outcomes(failed=2)
    assert set(rerun.verdicts()) == {
        "smoltrace/tasks.json::tool::answer_wrong",
        "smoltrace/tasks.json::code::answer_wrong",
    }


def test_exitfirst_stops_and_marks_the_run_partial(bench: Any) -> None:
    tasks = [
        task("answer_wrong", "Multiply 234 by 67. [k-answer-wrong]", expected_answer=15678, agent_type="tool"),
        task("weather_ok", "Weather in Paris? [k-weather-ok]", agent_type="tool"),
    ]
    run = bench(tasks, CHECKS_SCRIPTS, "-x")
    run.result.assert_outcomes(failed=1)
    lb = run.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "partial" and lb["planned_tests"] == 2 and lb["completed_tests"] == 1
    assert lb["interrupted_tests"] == 1


def test_xdist_gives_the_same_verdicts_and_aggregates(bench: Any) -> None:
    serial = bench(CHECKS_TASKS, CHECKS_SCRIPTS, run_id="serial")
    parallel = bench(CHECKS_TASKS, None, "-n", "2", run_id="parallel")
    parallel.result.assert_outcomes(passed=2, failed=4)
    assert serial.verdicts() == parallel.verdicts()
    keep = ("success", "tools_used", "steps", "stop_reason", "total_tokens", "checks", "response")
    by_uid = {r["test_case_uid"]: {k: r[k] for k in keep} for r in serial.rows}
    assert by_uid == {r["test_case_uid"]: {k: r[k] for k in keep} for r in parallel.rows}
    scores = (
        "model",
        "agent_type",
        "provider",
        "total_tests",
        "successful_tests",
        "failed_tests",
        "errored_tests",
        "success_rate",
        "pass_at_1",
        "tool_called_rate",
        "correct_tool_rate",
        "avg_steps",
        "total_tokens",
        "total_prompt_tokens",
        "total_completion_tokens",
        "avg_tokens_per_test",
        "total_cost_usd",
        "run_status",
        "planned_tests",
        "completed_tests",
        "timed_out_tests",
        "max_steps_tests",
    )

    def board(run: Any) -> list[dict[str, Any]]:
        return [{k: row[k] for k in scores} for row in run.read("leaderboard_row.json")]

    assert board(serial) == board(parallel)
    assert parallel.read("metadata.json")["run_id"] == "parallel"
    assert len((parallel.run_dir / "journal.jsonl").read_text().splitlines()) == 6


def test_output_files_and_terminal_summary(bench: Any) -> None:
    run = bench(CHECKS_TASKS, CHECKS_SCRIPTS)
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"journal.jsonl", "results.json", "leaderboard_row.json", "metadata.json"} <= names
    journal = [json.loads(line) for line in (run.run_dir / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == 6 and all(j["record"]["run_id"] == "test-run" for j in journal)
    row = run.row("weather_ok", "code")
    required = {
        "task_id",
        "test_case_uid",
        "agent_type",
        "difficulty",
        "category",
        "prompt",
        "success",
        "tool_called",
        "correct_tool",
        "final_answer_called",
        "response_correct",
        "tools_used",
        "steps",
        "response",
        "error",
        "stop_reason",
        "execution_time_ms",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "checks",
        "model",
        "evaluation_date",
        "pass_at_1_passed",
        "timed_out",
        "trace_id",
        "span_id",
        "run_id",
        "cost_usd",
        "enhanced_trace_info",
    }
    assert required <= set(row)
    assert row["test_case_uid"] == "smoltrace/tasks.json::code::weather_ok" and row["model"] == "openai/scripted"
    assert row["difficulty"] == "easy" and row["category"] == "weather"
    lb = {r["agent_type"]: r for r in run.read("leaderboard_row.json")}
    assert set(lb) == {"tool", "code"}
    assert lb["tool"]["total_tests"] == 4 and lb["tool"]["successful_tests"] == 1 and lb["tool"]["success_rate"] == 25.0
    assert lb["code"]["total_tests"] == 2 and lb["code"]["successful_tests"] == 1
    assert lb["tool"]["total_tokens"] == sum(r["total_tokens"] for r in run.rows if r["agent_type"] == "tool")
    assert lb["tool"]["run_status"] == "completed" and lb["tool"]["provider"] == "litellm"
    meta = run.read("metadata.json")
    assert meta["counts"] | {"num_metrics": 0} == {
        "planned": 6,
        "completed": 6,
        "passed": 2,
        "failed": 4,
        "errored": 0,
        "num_results": 6,
        "num_traces": 6,
        "num_metrics": 0,
    }
    assert meta["counts"]["num_metrics"] > 0 and meta["pricing"]["source"] == "unknown"
    assert meta["dataset"] == "tasks.json" and meta["versions"]["smolagents"]
    run.result.stdout.fnmatch_lines(
        [
            "*smoltrace summary*",
            "agent*items*passed*success*tool called*right tool*",
            "tool * 4 * 1 * 25.0%*",
            "code * 2 * 1 * 50.0%*",
            f"results: {run.run_dir}",
        ]
    )
    run.result.stdout.fnmatch_lines(["smoltrace: run test-run · model openai/scripted (litellm at http://127.0.0.1:*"])


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([{"id": "a", "prompt": "p", "difficulty": "extreme"}], "row 1: field 'difficulty'"),
        ([{"id": "a", "prompt": "p"}, {"prompt": "no id"}], "row 2: field 'id'"),
        ([{"id": "a", "prompt": "p", "expected_keywords": "Paris"}], "row 1: field 'expected_keywords'"),
    ],
)
def test_malformed_tasks_are_collection_errors_without_traceback(bench: Any, rows: Any, expected: str) -> None:
    run = bench(rows, None)
    assert run.result.ret == pytest.ExitCode.INTERRUPTED
    run.result.stdout.fnmatch_lines(["*ERROR collecting smoltrace/tasks.json*", f"*tasks.json: {expected}*"])
    assert "Traceback" not in run.stdout and "tasks.py" not in run.stdout


def test_task_files_hooks_and_user_judge(pytester: pytest.Pytester, bench: Any) -> None:
    pytester.makeconftest(
        """
        from pytest_smoltrace.records import Check

        def pytest_smoltrace_tasks(config):
            return [{"id": "hooked", "prompt": "Hooked weather [k-hooked]", "agent_type": "code",
                     "expected_tool": "get_weather"}]

        def pytest_smoltrace_judge(task, record):
            return Check("short_run", record.action_steps <= 1, expected="≤ 1 step", actual=record.action_steps)
        """
    )
    (pytester.path / "smoltrace_extra.jsonl").write_text(
        json.dumps({"id": "from_file", "prompt": "Answer directly [k-direct]", "agent_type": "tool"}) + "\n\n"
    )
    scripts = {
        "[k-hooked]": {"code": [WEATHER_CODE, {"final_answer": "20°C"}]},
        "[k-direct]": {"tool": [{"final_answer": "42"}]},
    }
    run = bench(None, scripts, "--smoltrace-dataset", "none")
    run.result.assert_outcomes(passed=1, failed=1)
    assert set(run.verdicts()) == {"smoltrace/conftest::code::hooked", "smoltrace_extra.jsonl::tool::from_file"}
    hooked = run.row("hooked", "code")
    assert check(hooked, "short_run") == {"name": "short_run", "passed": False, "expected": "≤ 1 step", "actual": 2}
    assert check(run.row("from_file", "tool"), "short_run")["passed"] is True


def test_default_set_node_ids(pytester: pytest.Pytester) -> None:
    from pytest_smoltrace.tasks import load_source

    tasks = load_source("default").tasks
    result = pytester.runpytest(
        "--smoltrace-model", "openai/x", "--smoltrace-api-base", "http://127.0.0.1:9/v1", "--co", "-q"
    )
    expected = [
        f"smoltrace/default::{agent}::{t.id}" for agent in ("tool", "code") for t in tasks if agent in t.agent_types
    ]
    lines = [line for line in result.stdout.lines if line.startswith("smoltrace/")]
    assert lines == expected
    assert len(tasks) >= 12
    assert "smoltrace summary" not in result.stdout.str() and not (pytester.path / "smoltrace_results").exists()


def test_scripted_model_runs_the_default_set(pytester: pytest.Pytester) -> None:
    """README's main job: the bundled tasks, real agents, the bundled scripted server."""
    result = pytester.runpytest("--smoltrace-model", "scripted", "--smoltrace-run-id", "main")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 20 and "failed" not in outcomes and "errors" not in outcomes
    run_dir = pytester.path / "smoltrace_results" / "main"
    rows = json.loads((run_dir / "results.json").read_text())
    assert len(rows) == outcomes["passed"] and all(r["success"] for r in rows)
    assert all(r["total_tokens"] > 0 for r in rows)


@pytest.mark.parametrize("provider", ["inference", "ollama"])
def test_other_providers_through_their_own_clients(bench: Any, server: ScriptedModelServer, provider: str) -> None:
    tasks = [
        task("weather_ok", "Weather in Paris? [k-weather-ok]", expected_tool="get_weather", expected_keywords=["20"])
    ]
    base = server.url if provider == "ollama" else server.base_url
    run = bench(tasks, CHECKS_SCRIPTS, "--smoltrace-provider", provider, "--smoltrace-api-base", base)
    run.result.assert_outcomes(passed=2)
    assert {r["provider"] for r in run.rows} == {provider}
    assert sum(r["total_tokens"] for r in run.rows) == server.usage_for("[k-weather-ok]")["total_tokens"]


def test_concurrency_overlaps_runs_and_gives_the_same_results(bench: Any, server: ScriptedModelServer) -> None:
    tasks = [
        task(f"slow_{i}", f"Weather in Paris? [k-slow-{i}]", expected_tool="get_weather", expected_keywords=["20"])
        for i in range(6)
    ]
    scripts = {
        f"[k-slow-{i}]": {
            "tool": [{**WEATHER_TOOL, "delay": 0.2}, {"final_answer": f"20°C ({i})"}],
            "code": [{**WEATHER_CODE, "delay": 0.2}, {"final_answer": f"20°C ({i})"}],
        }
        for i in range(6)
    }

    def most_in_flight() -> int:
        """The most first requests of items (each answered 0.2 s later) that arrived within one 0.2 s window."""
        starts = sorted(r.received_at for r in server.requests if r.turn_index == 0 and r.status == 200)
        return max(sum(1 for t in starts if s <= t < s + 0.2) for s in starts)

    sequential = bench(tasks, scripts, "--smoltrace-concurrency", "1", "-v", run_id="c1")
    sequential_in_flight = most_in_flight()
    server.reset_log()
    concurrent = bench(tasks, None, "--smoltrace-concurrency", "8", "-v", run_id="c8")
    concurrent.result.assert_outcomes(passed=12)
    # the runs really overlapped (the speed-up itself is measured by benchmarks/throughput.py, not by a timed test)
    assert sequential_in_flight == 1 and most_in_flight() >= 3, (sequential_in_flight, most_in_flight())

    def comparable(run: Any) -> list[dict[str, Any]]:
        keep = (
            "test_case_uid",
            "success",
            "tools_used",
            "steps",
            "prompt_tokens",
            "completion_tokens",
            "checks",
            "response",
        )
        rows = sorted(run.rows, key=lambda r: r["test_case_uid"])
        return [
            {**{k: r[k] for k in keep}, "calls": [(c["name"], c["arguments"], c["result"]) for c in r["tool_calls"]]}
            for r in rows
        ]

    assert comparable(sequential) == comparable(concurrent)
    # each row's answer is its own task's: nothing was attributed to the wrong item
    assert all(r["response"].endswith(f"({r['task_id'].split('_')[1]})") for r in concurrent.rows)

    # pytest still reports item by item, in collection order
    def reported(run: Any) -> list[str]:
        return [  # the items' own lines (a warnings summary may name an item too)
            line.split()[0]
            for line in run.result.outlines
            if line.startswith("smoltrace/tasks.json::") and line.split()[1:2] == ["PASSED"]
        ]

    assert reported(concurrent) == reported(sequential) and len(reported(concurrent)) == 12


def test_rate_limit_storm_is_retried_and_visible(bench: Any, server: ScriptedModelServer) -> None:
    storm = {"status": 429, "times": 2, "retry_after": 0.2, "body": {"error": {"message": "slow down"}}}
    tasks = [
        task("stormy", "Weather in Paris? [k-storm]", expected_tool="get_weather", expected_keywords=["20"]),
        task("flaky", "Weather in Paris? [k-flaky]", agent_type="tool", expected_tool="get_weather"),
        task("dead", "Always failing [k-dead]", agent_type="tool"),
    ]
    scripts = {
        "[k-storm]": {
            "tool": [{**storm, "then": WEATHER_TOOL}, {"final_answer": "20°C"}],
            "code": [{**storm, "then": WEATHER_CODE}, {"final_answer": "20°C"}],
        },
        "[k-flaky]": {"tool": [{"status": 503, "times": 1, "then": WEATHER_TOOL}, {"final_answer": "20°C"}]},
        "[k-dead]": {"tool": [{"status": 500}]},
    }
    run = bench(tasks, scripts, "-v", "--smoltrace-retries", "2", "--smoltrace-concurrency", "1")
    run.result.assert_outcomes(passed=3, errors=1)
    assert run.row("stormy", "tool")["success"] is True and run.row("stormy", "code")["success"] is True
    journal = {
        json.loads(line)["nodeid"]: json.loads(line)["record"]
        for line in (run.run_dir / "journal.jsonl").read_text().splitlines()
    }
    stormy = journal["smoltrace/tasks.json::tool::stormy"]["retries"]
    assert [r["reason"] for r in stormy] == ["HTTP 429", "HTTP 429"]
    assert all(r["wait_s"] >= 0.2 for r in stormy)  # Retry-After honoured
    assert [r["reason"] for r in journal["smoltrace/tasks.json::tool::flaky"]["retries"]] == ["HTTP 503"]
    dead = run.row("dead", "tool")
    assert dead["outcome"] == "error" and len(journal["smoltrace/tasks.json::tool::dead"]["retries"]) == 2
    run.result.stdout.fnmatch_lines(
        [
            "*::tool::stormy PASSED (2 retries: HTTP 429)*",
            "*::tool::flaky PASSED (1 retry: HTTP 503)*",
            "*::tool::dead ERROR (2 retries: HTTP 500)*",
        ]
    )
    # only successful responses carry usage: tokens still equal the server's sums
    assert (
        sum(r["total_tokens"] for r in run.rows if r["task_id"] == "stormy")
        == server.usage_for("[k-storm]")["total_tokens"]
    )


def test_max_rpm_is_one_limit_for_all_workers(bench: Any, server: ScriptedModelServer) -> None:
    tasks = [task(f"rpm_{i}", f"Answer directly [k-rpm-{i}]", agent_type="tool") for i in range(10)]
    scripts = {f"[k-rpm-{i}]": {"tool": [{"final_answer": "ok"}]} for i in range(10)}
    run = bench(tasks, scripts, "-n", "2", "--smoltrace-max-rpm", "300", "--smoltrace-concurrency", "4")
    run.result.assert_outcomes(passed=10)
    # 10 requests at ≤ 300/min are slots 0.2 s apart shared by both workers and all their threads (1.8 s from first to
    # last); unlimited, 8 runs in flight send them within a few ms. Slots bind when a request starts, so a loaded
    # machine may delay the first arrivals: allow 0.6 s of jitter.
    arrivals = sorted(r.received_at for r in server.requests)
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] >= 1.8 - 0.6, arrivals
