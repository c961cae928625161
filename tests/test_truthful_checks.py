"""Sub-checks that tell the truth (issue 11, part 8): keywords and the expected answer are judged on the final answer
only (a max-steps summary is no answer), a step whose model call failed is not a step the agent took, and user
judges are not called for an item that errored (its verdict carries the built-in checks only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_record

from pytest_smoltrace.judge import judge, user_judges_apply
from pytest_smoltrace.records import Check, RunRecord, StepInfo, StopReason
from pytest_smoltrace.tasks import Task

WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
WEATHER_CODE = {"code": "w = get_weather(location='Paris, France')\nprint(w)"}
MAX_STEPS_REASON = "no final answer: max steps reached (the summary is not a final answer)"

#: A conftest whose judge adds a check and writes down every run it was called for.
JUDGE_CONFTEST = """
    import json
    from pathlib import Path
    from pytest_smoltrace.records import Check

    def pytest_smoltrace_judge(task, record):
        with open(Path(__file__).parent / "judged.jsonl", "a") as f:
            f.write(json.dumps({"task_id": task.id, "stop_reason": record.stop_reason}) + "\\n")
        return Check("my_judge", True, expected="anything", actual=record.action_steps)
"""


def record(
    response: str | None, *, stop_reason: StopReason, final: bool, steps: tuple[StepInfo, ...] = ()
) -> RunRecord:
    error = "AgentGenerationError: HTTP 400" if stop_reason == "error" else None
    return run_record(response, final_answer_called=final, stop_reason=stop_reason, steps=steps, error=error)


def check(row: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in row["checks"] if c["name"] == name), None)


# ----------------------------------------------------------------------------------------------- the judge


def test_a_max_steps_summary_is_no_answer_for_keywords_or_expected_answer() -> None:
    summary = record("Paris is 20°C, the answer is 20", stop_reason="max_steps", final=False)
    verdict = judge(Task(id="t", prompt="p", expected_keywords=("20",), expected_answer="20"), summary)
    keywords, answer = verdict.check("expected_keywords"), verdict.check("expected_answer")
    assert keywords is not None and not keywords.passed and keywords.actual == MAX_STEPS_REASON
    assert answer is not None and not answer.passed and answer.actual == MAX_STEPS_REASON
    # the same text given as a final answer passes both
    answered = record("Paris is 20°C, the answer is 20", stop_reason="final_answer", final=True)
    verdict = judge(Task(id="t", prompt="p", expected_keywords=("20",), expected_answer="20"), answered)
    assert verdict.check("expected_keywords").passed  # type: ignore[union-attr]
    assert not verdict.check("expected_answer").passed  # type: ignore[union-attr]  # (not quasi-exactly "20")


@pytest.mark.parametrize("stop_reason", ["error", "timeout"])
def test_an_errored_run_is_not_judged_by_user_checks(stop_reason: StopReason) -> None:
    errored = record(None, stop_reason=stop_reason, final=False)
    assert not user_judges_apply(errored)
    verdict = judge(Task(id="t", prompt="p"), errored, extra_checks=[Check("my_judge", True, "x", "x")])
    assert [c.name for c in verdict.checks] == ["final_answer"] and verdict.outcome == "error"
    finished = record("20", stop_reason="max_steps", final=False)
    assert user_judges_apply(finished)
    verdict = judge(Task(id="t", prompt="p"), finished, extra_checks=[Check("my_judge", True, "x", "x")])
    assert [c.name for c in verdict.checks] == ["final_answer", "my_judge"]


# ----------------------------------------------------------------------------------------------- end to end


def test_checks_and_steps_tell_the_truth_end_to_end(bench: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(JUDGE_CONFTEST)
    summary = "The weather is 20°C and partly cloudy."
    tasks: list[dict[str, Any]] = [
        {
            "id": "loops",
            "prompt": "Weather loop [t-loop]",
            "expected_tool": "get_weather",
            "expected_keywords": ["20"],
            "expected_answer": summary,
        },
        {"id": "first_call_400", "prompt": "Bad request [t-400]", "agent_type": "tool", "expected_keywords": ["x"]},
        {"id": "third_call_400", "prompt": "Late bad request [t-late-400]", "agent_type": "tool"},
    ]
    bad_request = {"status": 400, "body": {"error": {"message": "context length exceeded", "code": 400}}}
    scripts = {
        "[t-loop]": {
            "tool": [WEATHER_TOOL, WEATHER_TOOL, WEATHER_TOOL],
            "code": [WEATHER_CODE, WEATHER_CODE],
            "summary": summary,
        },
        "[t-400]": {"tool": [bad_request]},
        "[t-late-400]": {"tool": [WEATHER_TOOL, WEATHER_TOOL, bad_request]},
    }
    run = bench(tasks, scripts, "--smoltrace-max-steps", "3", subprocess=True)
    run.result.assert_outcomes(failed=2, errors=2)

    for agent in ("tool", "code"):  # the summary holds the keyword and the answer, and it is still no answer
        row = run.row("loops", agent)
        assert row["stop_reason"] == "max_steps" and row["steps"] == 3 and "20°C" in row["response"]
        expected = {"expected_keywords": "any of [20]", "expected_answer": summary}
        for name, wanted in expected.items():
            assert check(row, name) == {"name": name, "passed": False, "expected": wanted, "actual": MAX_STEPS_REASON}
        assert row["response_correct"] is False and row["success"] is False
        assert check(row, "my_judge") is not None  # a run that finished is judged by user checks

    first = run.row("first_call_400", "tool")
    assert (
        first["outcome"] == "error" and first["stop_reason"] == "error" and "context length exceeded" in first["error"]
    )
    assert first["steps"] == 0 and first["tools_used"] == []
    late = run.row("third_call_400", "tool")
    assert late["outcome"] == "error" and late["steps"] == 2 and late["tools_used"] == ["get_weather"] * 2
    # an errored item: the built-in checks only (the keyword check says there is no answer)
    assert [c["name"] for c in first["checks"]] == ["final_answer", "expected_keywords"]
    assert check(first, "expected_keywords")["actual"] == "no final answer (stop reason: error)"  # type: ignore[index]
    assert [c["name"] for c in late["checks"]] == ["final_answer"]
    assert "steps: 0" in run.stdout  # the error outcome's message
    lb = {r["agent_type"]: r for r in run.read("leaderboard_row.json")}
    assert lb["tool"]["avg_steps"] == round((3 + 0 + 2) / 3, 2)


def test_user_judges_are_not_called_for_an_errored_item(bench: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(JUDGE_CONFTEST)
    tasks = [
        {"id": "fails_first", "prompt": "Bad request [t-400]", "agent_type": "tool"},
        {"id": "answers", "prompt": "Direct answer [t-direct]", "agent_type": "tool"},
    ]
    scripts = {"[t-400]": {"tool": [{"status": 400}]}, "[t-direct]": {"tool": [{"final_answer": "42"}]}}
    run = bench(tasks, scripts, subprocess=True)
    run.result.assert_outcomes(passed=1, errors=1)
    judged = [json.loads(line) for line in Path(pytester.path / "judged.jsonl").read_text().splitlines()]
    assert judged == [{"task_id": "answers", "stop_reason": "final_answer"}]
