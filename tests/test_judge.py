"""The verdict (DESIGN §4), GAIA's quasi-exact match and the failure table."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import run_record

from pytest_smoltrace.judge import (
    format_checks,
    judge,
    normalize_number_str,
    normalize_str,
    quasi_exact_match,
    split_string,
)
from pytest_smoltrace.records import Check, RunRecord, StopReason, ToolCall, Verdict
from pytest_smoltrace.tasks import Task


def call(name: str, error: str | None = None, **arguments: Any) -> ToolCall:
    return ToolCall(
        name=name,
        arguments=arguments,
        result=None if error else "ok",
        error=error,
        duration_ms=1.0,
        started_at=1.0,
    )


def record(
    *calls: ToolCall,
    response: str | None = "done",
    final: bool = True,
    stop_reason: StopReason = "final_answer",
    error: str | None = None,
) -> RunRecord:
    tool_calls = (*calls, call("final_answer", answer=response)) if final else calls
    return run_record(response, final_answer_called=final, stop_reason=stop_reason, tool_calls=tool_calls, error=error)


def task(**fields: Any) -> Task:
    return Task(id="t", prompt="p", **fields)


def names(verdict: Verdict) -> list[str]:
    return [c.name for c in verdict.checks]


def passed(verdict: Verdict, name: str) -> bool:
    check = verdict.check(name)
    assert check is not None, f"no check {name!r} in {names(verdict)}"
    return check.passed


# ----------------------------------------------------------------------------------------------- final_answer


def test_final_answer_only_check_for_a_plain_task() -> None:
    verdict = judge(task(), record())
    assert names(verdict) == ["final_answer"]
    assert verdict.passed and verdict.outcome == "passed"


def test_final_answer_fails_when_not_called() -> None:
    verdict = judge(task(), record(final=False, stop_reason="max_steps"))
    assert not passed(verdict, "final_answer")
    assert verdict.outcome == "failed" and verdict.error is None


def test_max_steps_summary_with_keywords_still_fails_final_answer() -> None:
    rec = record(call("get_weather", location="Paris"), response="Paris is 20°C", final=False, stop_reason="max_steps")
    verdict = judge(task(expected_tool="get_weather", expected_keywords=("20",)), rec)
    assert passed(verdict, "expected_tool")
    # the max-steps summary is no answer: keywords are judged on a final answer only (it mentions "20" all the same)
    assert not passed(verdict, "expected_keywords")
    assert not passed(verdict, "final_answer")
    assert not verdict.passed


def test_final_answer_called_but_stop_reason_not_final_answer_fails() -> None:
    verdict = judge(task(), record(stop_reason="max_steps"))
    assert not passed(verdict, "final_answer")


# ---------------------------------------------------------------------------------------- tool_called / expected


def test_tool_called_and_expected_tool_pass() -> None:
    verdict = judge(task(expected_tool="get_weather"), record(call("get_weather", location="Paris")))
    assert names(verdict) == ["final_answer", "tool_called", "expected_tool"]
    assert verdict.passed
    tool_called = verdict.check("tool_called")
    assert tool_called is not None and tool_called.actual == ["get_weather"]
    expected_tool = verdict.check("expected_tool")
    assert expected_tool is not None
    assert expected_tool.expected == {"get_weather": "≥1"} and expected_tool.actual == {"get_weather": 1}


def test_tool_checks_fail_without_calls() -> None:
    verdict = judge(task(expected_tool="get_weather"), record())
    assert not passed(verdict, "tool_called") and not passed(verdict, "expected_tool")


def test_final_answer_alone_is_not_a_tool_call() -> None:
    verdict = judge(task(expected_tool="multiple"), record())
    assert not passed(verdict, "tool_called")


def test_wrong_tool_fails_expected_tool_but_passes_tool_called() -> None:
    verdict = judge(task(expected_tool="get_weather"), record(call("calculator", expression="1+1")))
    assert passed(verdict, "tool_called")
    assert not passed(verdict, "expected_tool")


def test_expected_tool_calls_minimum() -> None:
    the_task = task(expected_tool="get_weather", expected_tool_calls=2)
    assert not passed(judge(the_task, record(call("get_weather", location="Paris"))), "expected_tool")
    two = record(call("get_weather", location="Paris"), call("get_weather", location="Rome"))
    assert passed(judge(the_task, two), "expected_tool")


def test_raised_calls_do_not_count_for_expected_tool() -> None:
    rec = record(call("get_weather", error="ValueError: No weather data for 'Atlantis'", location="Atlantis"))
    verdict = judge(task(expected_tool="get_weather"), rec)
    assert not passed(verdict, "tool_called")
    assert not passed(verdict, "expected_tool")
    check = verdict.check("expected_tool")
    assert check is not None and check.actual == {"get_weather": 0}


def test_expected_tool_list_needs_each_tool() -> None:
    the_task = task(expected_tool=("get_weather", "calculator"))
    both = record(call("get_weather", location="Paris"), call("calculator", expression="1+1"))
    assert judge(the_task, both).passed
    one = judge(the_task, record(call("get_weather", location="Paris"), call("get_weather", location="Rome")))
    assert not passed(one, "expected_tool")
    check = one.check("expected_tool")
    assert check is not None and check.actual == {"get_weather": 2, "calculator": 0}


def test_expected_tool_multiple_counts_calls() -> None:
    the_task = task(expected_tool="multiple", expected_tool_calls=2)
    assert not passed(judge(the_task, record(call("calculator", expression="1"))), "expected_tool")
    same_tool_twice = record(call("calculator", expression="1"), call("calculator", expression="2"))
    assert passed(judge(the_task, same_tool_twice), "expected_tool")
    with_failure = record(call("calculator", expression="1"), call("calculator", error="ValueError: x", expression="/"))
    assert not passed(judge(the_task, with_failure), "expected_tool")


# ----------------------------------------------------------------------------------------------- forbidden_tools


def test_forbidden_tools_pass_when_unused() -> None:
    verdict = judge(task(forbidden_tools=("calculator",)), record(call("get_weather", location="Paris")))
    assert passed(verdict, "forbidden_tools")


def test_forbidden_tool_executed_fails() -> None:
    verdict = judge(task(forbidden_tools=("calculator",)), record(call("calculator", expression="2+2")))
    assert not passed(verdict, "forbidden_tools")
    check = verdict.check("forbidden_tools")
    assert check is not None and check.actual == ["calculator"]


def test_forbidden_tool_attempt_that_raised_still_fails() -> None:
    rec = record(call("calculator", error="ValueError: Cannot evaluate", expression="1/0"))
    assert not passed(judge(task(forbidden_tools=("calculator",)), rec), "forbidden_tools")


# ----------------------------------------------------------------------------------------------- keywords


def test_keywords_any() -> None:
    the_task = task(expected_keywords=("Sunny", "rain"))
    assert passed(judge(the_task, record(response="It is SUNNY today")), "expected_keywords")
    verdict = judge(the_task, record(response="cloudy"))
    assert not passed(verdict, "expected_keywords")
    check = verdict.check("expected_keywords")
    assert check is not None and check.actual == {"matched": [], "missing": ["Sunny", "rain"]}


def test_keywords_all() -> None:
    the_task = task(expected_keywords=("paris", "20"), keyword_mode="all")
    assert passed(judge(the_task, record(response="Paris: 20°C")), "expected_keywords")
    verdict = judge(the_task, record(response="Paris is cloudy"))
    assert not passed(verdict, "expected_keywords")
    check = verdict.check("expected_keywords")
    assert check is not None and check.actual == {"matched": ["paris"], "missing": ["20"]}


def test_keywords_without_response_fail() -> None:
    verdict = judge(task(expected_keywords=("x",)), record(response=None, final=False, stop_reason="max_steps"))
    assert not passed(verdict, "expected_keywords")


# ----------------------------------------------------------------------------------------------- expected_answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("15,678", 15678),
        ("15678", "15678"),
        ("15,678", "15678"),
        ("1,234", "1,234"),
        ("$1,234.50", "1,234.5"),
        (15678, 15678),
        (15678.0, "15678"),
        ("15678.0", 15678),
        ("3.5", 3.5),
        ("0.30000000000000004", 0.3),
        ("50%", "50"),
        ("3, 5, 7", "3,5,7"),
        ("3;5;7", "3,5,7"),
        ("apple, Banana", "apple,banana"),
        ("New York City", "new york city"),
        ("  Paris. ", "paris"),
        ("St. Petersburg!", "st petersburg"),
        ("Hello-World", "hello world"),
    ],
)
def test_quasi_exact_match_true(answer: object, expected: str | float) -> None:
    assert quasi_exact_match(answer, expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, "x"),
        (None, 1),
        ("15679", 15678),
        ("about 15678", 15678),
        ("banana", "inf"),
        ("3, 5", "3,5,7"),
        ("3, 5, 8", "3,5,7"),
        ("apple., banana", "apple,banana"),
        ("London", "paris"),
        ("1,234", "1234.5"),
        ("1,234", "1,234.5"),
        # GAIA's rule: a comma in the ground truth separates list elements, so a number does not match it
        ("15678", "15,678"),
        ("1234", "1,234"),
        ("1234567", "1,234,567"),
    ],
)
def test_quasi_exact_match_false(answer: object, expected: str | float) -> None:
    assert not quasi_exact_match(answer, expected)


def test_gaia_helpers() -> None:
    assert normalize_number_str("$1,000%") == 1000.0
    assert normalize_number_str("n/a") == float("inf")
    assert split_string("a,b;c") == ["a", "b", "c"]
    assert normalize_str(" Hello, World! ") == "helloworld"
    assert normalize_str(" Hello, World! ", remove_punct=False) == "hello,world!"


def test_expected_answer_check() -> None:
    verdict = judge(task(expected_answer=15678), record(response="15,678"))
    assert passed(verdict, "expected_answer")
    check = verdict.check("expected_answer")
    assert check is not None and check.expected == 15678 and check.actual == "15,678"
    assert not passed(judge(task(expected_answer="Paris"), record(response="Lyon")), "expected_answer")


# ----------------------------------------------------------------------------------------------- composition


def test_all_checks_present_in_order_and_passing() -> None:
    the_task = task(
        expected_tool="calculator",
        forbidden_tools=("get_weather",),
        expected_keywords=("15678",),
        expected_answer="15678",
    )
    verdict = judge(the_task, record(call("calculator", expression="234*67"), response="15678"))
    assert names(verdict) == [
        "final_answer",
        "tool_called",
        "expected_tool",
        "forbidden_tools",
        "expected_keywords",
        "expected_answer",
    ]
    assert verdict.passed


def test_extra_checks_are_appended_and_decide() -> None:
    extra = Check(name="my_check", passed=False, expected="polite", actual="rude")
    verdict = judge(task(), record(), extra_checks=[extra])
    assert names(verdict) == ["final_answer", "my_check"]
    assert verdict.outcome == "failed"


@pytest.mark.parametrize("stop_reason", ["error", "timeout"])
def test_error_outcome_keeps_checks(stop_reason: StopReason) -> None:
    rec = record(response=None, final=False, stop_reason=stop_reason, error="AgentGenerationError: refused")
    verdict = judge(task(expected_tool="calculator"), rec)
    assert verdict.outcome == "error"
    assert verdict.error == f"{stop_reason}: AgentGenerationError: refused"
    assert names(verdict) == ["final_answer", "tool_called", "expected_tool"]


def test_error_outcome_without_detail() -> None:
    verdict = judge(task(), record(response=None, final=False, stop_reason="timeout"))
    assert verdict.error == "timeout: no detail"


def test_verdict_round_trips() -> None:
    verdict = judge(task(expected_tool=("get_weather", "calculator"), expected_keywords=("x",)), record())
    assert Verdict.from_dict(verdict.to_dict()).to_dict() == verdict.to_dict()


# ----------------------------------------------------------------------------------------------- format_checks


def test_format_checks_shows_expected_and_actual() -> None:
    the_task = task(expected_tool="get_weather", expected_keywords=("sunny",), expected_answer="Sunny")
    verdict = judge(the_task, record(call("calculator", expression="1+1"), response="Rainy"))
    text = format_checks(verdict)
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("PASS  final_answer")
    assert any(line.startswith("FAIL  expected_tool") for line in lines)
    assert "expected={get_weather: ≥1}" in text and "actual={get_weather: 0}" in text
    assert "expected=Sunny" in text and "actual=Rainy" in text
    assert "expected=any of [sunny]" in text and "missing: [sunny]" in text
    # Columns are aligned: every "expected=" starts at the same offset.
    offsets = {line.index("expected=") for line in lines}
    assert len(offsets) == 1
    assert all(len(line) <= 100 for line in lines)


def test_format_checks_truncates_long_values() -> None:
    long_answer = "word " * 100
    verdict = judge(task(expected_answer="short"), record(response=long_answer))
    text = format_checks(verdict, width=80)
    assert "…" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_format_checks_error_line() -> None:
    verdict = judge(task(), record(response=None, final=False, stop_reason="timeout", error="after 300 s"))
    text = format_checks(verdict)
    assert text.splitlines()[0] == "ERROR timeout: after 300 s"
    assert "FAIL  final_answer" in text


def test_format_checks_without_checks() -> None:
    assert format_checks(Verdict(checks=())) == "(no checks)"
