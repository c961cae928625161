"""Trajectories, argument matchers and loops (issue 16, parts 2-4): ``tool_order``, ``tool_args:<tool>`` and
``repeated_calls``.

First the rules on records, then the fields' validation (a malformed field is an error naming source, row, field and
rule), the journal's byte-for-byte round trip, and a real run of both agent types against the scripted model server
in which every mode and every matcher passes and fails at least once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import run_record

from pytest_smoltrace.arguments import check_tool_args, matcher_problem, matches
from pytest_smoltrace.judge import format_checks, judge
from pytest_smoltrace.records import ItemResult, RunRecord, Task, ToolCall, Verdict, repeated_calls
from pytest_smoltrace.tasks import TaskError, validate_row
from pytest_smoltrace.trajectory import check_repeated_calls, check_tool_order, order_holds
from smoltrace_export.rows import result_row
from smoltrace_export.summary import summarize


def call(name: str, error: str | None = None, **arguments: Any) -> ToolCall:
    return ToolCall(name=name, arguments=arguments, result=None if error else "ok", error=error, duration_ms=1.0)


def record(*calls: ToolCall, answer: str = "done") -> RunRecord:
    final = call("final_answer", answer=answer)
    return run_record(tool_calls=(*calls, final), response=answer, final_answer_called=True)


WEATHER = call("get_weather", location="Paris, France")
CALC = call("calculator", expression="2*3")
SEARCH = call("search_files", pattern="*.json", max_results=5)
TRAJECTORY = record(WEATHER, CALC, WEATHER, SEARCH)  # executed: get_weather, calculator, get_weather, search_files


# ------------------------------------------------------------------------------------------------ tool order


@pytest.mark.parametrize(
    ("mode", "expected", "holds"),
    [
        ("exact", ["get_weather", "calculator", "get_weather", "search_files"], True),
        ("exact", ["get_weather", "calculator", "search_files"], False),
        ("exact", [], False),
        ("in_order", ["get_weather", "get_weather"], True),
        ("in_order", ["calculator", "search_files"], True),
        ("in_order", ["search_files", "calculator"], False),
        ("in_order", ["calculator", "calculator"], False),
        ("any_order", ["search_files", "get_weather", "get_weather"], True),
        ("any_order", ["calculator", "calculator"], False),
        ("any_order", ["get_current_time"], False),
        ("subset", ["get_weather", "calculator", "search_files", "get_current_time"], True),
        ("subset", ["get_weather", "calculator"], False),
    ],
)
def test_tool_order_modes(mode: Any, expected: list[str], holds: bool) -> None:
    executed = TRAJECTORY.executed_tools
    assert order_holds(mode, expected, executed) is holds
    check = check_tool_order(tuple(expected), mode, TRAJECTORY)
    assert (check.name, check.passed, check.expected, check.actual) == ("tool_order", holds, {mode: expected}, executed)


def test_tool_order_counts_executed_calls_only() -> None:
    raised = record(call("calculator", error="ZeroDivisionError"), WEATHER)
    assert not check_tool_order(("calculator", "get_weather"), "in_order", raised).passed
    assert check_tool_order(("get_weather",), "exact", raised).passed  # final_answer and raised calls left out
    assert check_tool_order((), "subset", record()).passed  # no tool at all: nothing outside the list


# ------------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("actual", "matcher", "verdict"),
    [
        # a value: strings trimmed and case-folded, numbers numerically
        ("Paris, France", " paris, FRANCE ", True),
        ("Paris", "Rome", False),
        (5, 5.0, True),
        (5, 6, False),
        (True, 1, False),  # a boolean is no number
        (True, True, True),
        (None, None, True),
        ("5", 5, False),
        # a list: acceptable values (BFCL)
        ("2*3", ["3*2", "2*3"], True),
        ("6", ["3*2", "2*3"], False),
        ([1, 2], [[1, 2], [2, 1]], True),  # a list argument against acceptable lists
        ([1, 3], [[1, 2]], False),
        ("abc", [{"regex": "a.c"}, "x"], True),
        # regex: a full match
        ("*.json", {"regex": r"\*\.json"}, True),
        ("*.json.bak", {"regex": r"\*\.json"}, False),
        (42, {"regex": r"\d+"}, True),
        (None, {"regex": ".*"}, False),
        # approx
        (5, {"approx": 5.2, "tol": 0.5}, True),
        (5, {"approx": 50, "tol": 1}, False),
        ("5", {"approx": 5, "tol": 1}, False),
    ],
)
def test_matchers(actual: Any, matcher: Any, verdict: bool) -> None:
    assert matcher_problem(matcher) is None
    assert matches(actual, matcher) is verdict


@pytest.mark.parametrize(
    ("matcher", "problem"),
    [
        ([], "must not be empty"),
        ({"regex": "("}, "not a valid regular expression"),
        ({"regex": 3}, '"regex" must be a string'),
        ({"approx": "x", "tol": 1}, '"approx" must be a finite number'),
        ({"approx": 1, "tol": -1}, '"tol" must be a finite number ≥ 0'),
        ({"approx": 1}, 'must be {"regex": "…"} or {"approx": x, "tol": t}'),
        ({"city": "Paris"}, "for acceptable values use a list"),
        ([{"x": 1}], "acceptable value 1"),
    ],
)
def test_bad_matchers_are_named(matcher: Any, problem: str) -> None:
    found = matcher_problem(matcher)
    assert found is not None and problem in found


def test_tool_args_check_shows_the_matching_or_the_closest_call() -> None:
    two = record(call("calculator", expression="1+1"), CALC)
    passed = check_tool_args("calculator", {"expression": "2*3"}, two)
    assert passed.passed and passed.actual == {"call": "calculator(expression='2*3')"}
    failed = check_tool_args("search_files", {"pattern": "*.md", "max_results": 5}, TRAJECTORY)
    assert not failed.passed
    assert failed.actual == {
        "closest call": "search_files(pattern='*.json', max_results=5)",
        "mismatched": ["pattern"],
    }
    missing = check_tool_args("get_weather", {"units": "metric"}, TRAJECTORY)
    assert missing.actual["mismatched"] == ["units"]
    assert check_tool_args("get_weather", {"units": None}, TRAJECTORY).passed  # not passed matches null
    raised = check_tool_args("calculator", {"expression": "2*3"}, record(call("calculator", error="boom", x=1)))
    assert (raised.passed, raised.actual) == (False, "no successful call of calculator (1 raised)")
    never = check_tool_args("get_current_time", {"timezone": "UTC"}, TRAJECTORY)
    assert (never.name, never.passed, never.actual) == (
        "tool_args:get_current_time",
        False,
        "no successful call of get_current_time",
    )


# ------------------------------------------------------------------------------------------------ loops


def test_repeated_calls_figure_and_check() -> None:
    assert TRAJECTORY.repeated_calls == 2
    count, first = repeated_calls(TRAJECTORY.tool_calls)
    assert (count, first) == (2, WEATHER)
    assert record().repeated_calls == 0
    assert record(call("calculator", expression="1"), call("calculator", expression="2")).repeated_calls == 1
    loop = record(*[call("calculator", error="boom", expression="1/0")] * 4)  # failing calls loop too
    assert loop.repeated_calls == 4
    argument_order = record(call("t", a=1, b=2), call("t", b=2, a=1))
    assert argument_order.repeated_calls == 2  # identical arguments, whatever their order
    ok = check_repeated_calls(2, TRAJECTORY)
    assert (ok.name, ok.passed, ok.actual) == ("repeated_calls", True, "2 × get_weather(location='Paris, France')")
    over = check_repeated_calls(3, loop)
    assert not over.passed and over.actual == "4 × calculator(expression='1/0')"
    assert check_repeated_calls(1, record()).actual == "no tool calls"
    assert check_repeated_calls(1, record(CALC)).actual == "no call repeated"


def test_the_figure_reaches_results_and_the_summary() -> None:
    result = ItemResult(nodeid="n", record=TRAJECTORY, verdict=Verdict(checks=()), task=Task(id="t", prompt="p"))
    row = result_row(result)
    assert (row["repeated_calls"], row["judge_tokens"], row["judge_cost_usd"]) == (2, None, None)
    (summary,) = summarize([result])
    assert summary.max_repeated_calls == 2 and summary.to_dict()["max_repeated_calls"] == 2
    assert summary.judge_tokens is None and summary.judge_cost_usd is None


# ------------------------------------------------------------------------------------------------ the verdict


def test_checks_come_in_order_and_read_well_in_a_failure_message() -> None:
    task = validate_row(
        {
            "id": "t",
            "prompt": "p",
            "expected_tool_order": ["calculator", "get_weather"],
            "tool_order_mode": "EXACT",
            "max_repeated_calls": 1,
            "expected_tool_args": {"get_weather": {"location": "Rome"}, "calculator": {"expression": ["2*3"]}},
        },
        source="s",
        row_number=1,
    )
    assert task.tool_order_mode == "exact"
    verdict = judge(task, TRAJECTORY)
    names = [c.name for c in verdict.checks]
    assert names == ["final_answer", "tool_order", "repeated_calls", "tool_args:get_weather", "tool_args:calculator"]
    assert [c.passed for c in verdict.checks] == [True, False, False, False, True]
    table = format_checks(verdict, width=200)
    assert "FAIL  tool_order             expected={exact: [calculator, get_weather]}" in table
    assert "actual=[get_weather, calculator, get_weather, search_files]" in table
    assert "FAIL  repeated_calls" in table and "2 × get_weather(location='Paris, France')" in table
    assert "actual={closest call: get_weather(location='Paris, France'), mismatched: [location], calls: 2}" in table


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"expected_tool_order": "calculator"}, "expected_tool_order", "must be a list of strings"),
        ({"expected_tool_order": ["calculator", 3]}, "expected_tool_order", "item 2 must be a non-empty string"),
        ({"expected_tool_order": ["final_answer"]}, "expected_tool_order", "must not list final_answer"),
        ({"tool_order_mode": "exact"}, "tool_order_mode", "has no effect without expected_tool_order"),
        (
            {"expected_tool_order": ["a"], "tool_order_mode": "strict"},
            "tool_order_mode",
            "must be one of exact, in_order, any_order, subset; got 'strict'",
        ),
        ({"expected_tool_args": ["calculator"]}, "expected_tool_args", "must be a non-empty object"),
        ({"expected_tool_args": {}}, "expected_tool_args", "must be a non-empty object"),
        ({"expected_tool_args": {"calculator": {}}}, "expected_tool_args", "expected_tool_args.calculator must be"),
        (
            {"expected_tool_args": {"calculator": {"expression": {"regex": "("}}}},
            "expected_tool_args",
            "expected_tool_args.calculator.expression: \"regex\" '(' is not a valid regular expression",
        ),
        (
            {"expected_tool_args": {"calculator": {"expression": {"approx": 1}}}},
            "expected_tool_args",
            'an object matcher must be {"regex": "…"} or {"approx": x, "tol": t}',
        ),
        ({"max_repeated_calls": 0}, "max_repeated_calls", "must be a whole number ≥ 1"),
        ({"max_repeated_calls": 2.0}, "max_repeated_calls", "write 2 without the decimal point"),
        ({"max_repeated_calls": "3"}, "max_repeated_calls", "write 3 without quotes"),
        ({"max_repeated_calls": True}, "max_repeated_calls", "must be a whole number ≥ 1"),
        (
            {"expected_tool_order": ["calculator"], "forbidden_tools": ["calculator"]},
            "forbidden_tools",
            "also in expected_tool_order (in_order)",
        ),
        (
            {"expected_tool_args": {"calculator": {"expression": "1"}}, "forbidden_tools": ["calculator"]},
            "forbidden_tools",
            "also in expected_tool_args",
        ),
        ({"rubric": 3}, "rubric", "must be a string"),
        ({"rubric": "  "}, "rubric", "must not be empty"),
    ],
)
def test_a_malformed_field_names_source_row_field_and_rule(fields: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(TaskError) as info:
        validate_row({"id": "t", "prompt": "p", **fields}, source="tasks.jsonl", row_number=3)
    assert (info.value.source, info.value.row, info.value.field) == ("tasks.jsonl", 3, field)
    assert rule in info.value.rule
    assert str(info.value).startswith(f"tasks.jsonl: row 3: field '{field}': ")


def test_subset_may_list_a_forbidden_tool() -> None:
    row = {"id": "t", "prompt": "p", "expected_tool_order": ["a", "b"], "tool_order_mode": "subset"}
    task = validate_row({**row, "forbidden_tools": ["b"]}, source="s", row_number=1)
    assert task.expected_tool_order == ("a", "b") and task.forbidden_tools == ("b",)


def test_old_journal_lines_round_trip_byte_for_byte() -> None:
    old_task = validate_row({"id": "t", "prompt": "p", "expected_answer": 4}, source="s", row_number=1)
    old = ItemResult(nodeid="n", record=run_record(), verdict=Verdict(checks=()), task=old_task)
    line = json.dumps(old.to_dict(), sort_keys=True)
    for key in ("judge_tokens", "judge_cost_usd", "rubric", "expected_tool_order", "tool_order_mode"):
        assert f'"{key}"' not in line
    assert json.dumps(ItemResult.from_dict(json.loads(line)).to_dict(), sort_keys=True) == line
    new_task = validate_row(
        {
            "id": "t",
            "prompt": "p",
            "rubric": "says hello",
            "expected_tool_order": ["a"],
            "tool_order_mode": "any_order",
            "expected_tool_args": {"a": {"x": [1, 2]}},
            "max_repeated_calls": 2,
        },
        source="s",
        row_number=1,
    )
    new = ItemResult(
        nodeid="n", record=run_record(judge_tokens=12, judge_cost_usd=0.5), verdict=Verdict(checks=()), task=new_task
    )
    again = ItemResult.from_dict(json.loads(json.dumps(new.to_dict())))
    assert again.task == new_task and again.record.judge_tokens == 12 and again.record.judge_cost_usd == 0.5
    assert again.record.total_tokens == new.record.total_tokens  # judge tokens are never the agent's


# ------------------------------------------------------------------------------------------------ a real run

TOOL_STEPS = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2*3"}}]},
    {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
    {"tool_calls": [{"name": "search_files", "arguments": {"pattern": "*.json", "max_results": 5}}]},
    {"final_answer": "done"},
]
CODE_STEPS = [
    {
        "code": "get_weather(location='Paris, France')\ncalculator(expression='2*3')\n"
        "get_weather('Paris, France')\nprint(search_files(pattern='*.json', max_results=5))"
    },
    {"final_answer": "done"},
]
SCRIPTS = {"[t-seq]": {"tool": TOOL_STEPS, "code": CODE_STEPS}}
ORDER = ["get_weather", "calculator", "get_weather", "search_files"]


def seq_task(task_id: str, agent_type: str = "tool", **fields: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "prompt": f"Weather, sum and files. [t-seq] ({task_id})",
        "agent_type": agent_type,
        "required_tools": ["search_files"],
        **fields,
    }


TASKS = [
    seq_task(
        "all_pass",
        "both",
        expected_tool_order=ORDER,
        tool_order_mode="exact",
        expected_tool_args={
            "get_weather": {"location": " paris, FRANCE "},
            "calculator": {"expression": ["3*2", "2*3"]},
            "search_files": {"pattern": {"regex": r"\*\.json"}, "max_results": {"approx": 5.2, "tol": 0.5}},
        },
        max_repeated_calls=2,
    ),
    seq_task("exact_fail", expected_tool_order=["get_weather", "calculator"], tool_order_mode="exact"),
    seq_task("in_order_pass", expected_tool_order=["calculator", "search_files"]),
    seq_task("in_order_fail", "code", expected_tool_order=["search_files", "calculator"], tool_order_mode="in_order"),
    seq_task(
        "any_order_pass",
        expected_tool_order=["search_files", "get_weather", "get_weather"],
        tool_order_mode="any_order",
    ),
    seq_task("any_order_fail", expected_tool_order=["calculator", "calculator"], tool_order_mode="any_order"),
    seq_task("subset_pass", expected_tool_order=[*ORDER, "get_current_time"], tool_order_mode="subset"),
    seq_task("subset_fail", expected_tool_order=["get_weather", "calculator"], tool_order_mode="subset"),
    seq_task(
        "value_list_fail",
        expected_tool_args={"get_weather": {"location": "Rome"}, "calculator": {"expression": ["3*2", "6"]}},
        max_repeated_calls=1,
    ),
    seq_task("regex_fail", expected_tool_args={"search_files": {"pattern": {"regex": r"\*\.md"}, "max_results": 5}}),
    seq_task(
        "approx_fail",
        "code",
        expected_tool_args={"search_files": {"pattern": "*.JSON", "max_results": {"approx": 50, "tol": 1}}},
    ),
    seq_task("never_called", expected_tool_args={"get_current_time": {"timezone": "UTC"}}),
]


def checks_of(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in row["checks"]}


def test_every_mode_and_matcher_passes_and_fails_in_a_real_run(bench: Any) -> None:
    run = bench(TASKS, SCRIPTS, subprocess=True)
    passed = {"all_pass", "in_order_pass", "any_order_pass", "subset_pass"}
    run.result.assert_outcomes(passed=len(passed) + 1, failed=len(TASKS) - len(passed))
    for row in run.rows:
        assert row["repeated_calls"] == 2 and row["judge_tokens"] is None, row["task_id"]
        assert row["outcome"] == ("passed" if row["task_id"] in passed else "failed"), (row["task_id"], row["checks"])
    for agent in ("tool", "code"):
        checks = checks_of(run.row("all_pass", agent))
        assert checks["tool_order"]["actual"] == ORDER  # the CodeAgent's calls, positional ones too, in order
        assert all(checks[f"tool_args:{tool}"]["passed"] for tool in ("get_weather", "calculator", "search_files"))
        assert checks["repeated_calls"]["passed"] is True
    assert checks_of(run.row("exact_fail", "tool"))["tool_order"]["passed"] is False
    assert checks_of(run.row("in_order_fail", "code"))["tool_order"]["passed"] is False
    assert checks_of(run.row("any_order_fail", "tool"))["tool_order"]["passed"] is False
    assert checks_of(run.row("subset_fail", "tool"))["tool_order"]["passed"] is False
    value_list = checks_of(run.row("value_list_fail", "tool"))
    assert value_list["tool_args:get_weather"]["actual"] == {
        "closest call": "get_weather(location='Paris, France')",
        "mismatched": ["location"],
        "calls": 2,
    }
    assert value_list["tool_args:calculator"]["actual"]["mismatched"] == ["expression"]
    assert value_list["repeated_calls"]["passed"] is False
    assert value_list["repeated_calls"]["actual"] == "2 × get_weather(location='Paris, France')"
    regex = checks_of(run.row("regex_fail", "tool"))["tool_args:search_files"]
    assert regex["actual"]["mismatched"] == ["pattern"]  # max_results (a value) matched
    approx = checks_of(run.row("approx_fail", "code"))["tool_args:search_files"]
    assert approx["actual"]["mismatched"] == ["max_results"]  # the pattern matched, case-folded
    never = checks_of(run.row("never_called", "tool"))["tool_args:get_current_time"]
    assert never["actual"] == "no successful call of get_current_time"
    # a failure's message is the table of checks
    for line in ("FAIL  tool_order", "FAIL  tool_args:get_current_time", "FAIL  repeated_calls"):
        assert line in run.stdout
    summary = run.read("leaderboard_row.json")
    assert {r["agent_type"]: r["max_repeated_calls"] for r in summary} == {"tool": 2, "code": 2}
    assert all(r["total_judge_tokens"] is None for r in summary)
