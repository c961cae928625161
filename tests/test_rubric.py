"""The rubric judge (issue 16, part 1): a judge model of its own grades the final answer against the task's rubric.

Real smolagents agents run against one scripted model server, and the judge is a second scripted model server
answering JSON grades: a pass, a fail, a reply read after one retry, and a garbage grade, which makes the item an
error outcome (``judge_error``), never a pass or a fail. The judge's tokens and cost are kept apart from the agent's,
and its call is a span of the item's trace with its own evaluation event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.budget import Budget
from pytest_smoltrace.execution import run_and_judge
from pytest_smoltrace.judge import NO_JUDGE, format_checks
from pytest_smoltrace.limits import FileStore
from pytest_smoltrace.models import ModelSpec
from pytest_smoltrace.records import JUDGE_ERROR, ItemResult, RunRecord, Task, ToolCall
from pytest_smoltrace.rubric import SPAN_NAME, Grader, grade, grading_prompt, parse_grade
from pytest_smoltrace.runner import RunConfig
from pytest_smoltrace.tasks import TaskError, TaskOptions, validate_row
from pytest_smoltrace.telemetry.cost import cost_usd, price_for
from pytest_smoltrace.testing import ScriptedModelServer
from smoltrace_export.rows import RunContext, leaderboard_row, result_row
from smoltrace_export.summary import summarize

#: A judge model litellm can price (the scripted server answers for any model id).
JUDGE_MODEL = "openai/gpt-4o-mini"
RUBRIC = "The answer names Paris as the capital of France."


def grade_text(passed: bool, score: float, reason: str) -> str:
    return json.dumps({"passed": passed, "score": score, "reason": reason})


# ------------------------------------------------------------------------------------------------ reading a grade


@pytest.mark.parametrize(
    ("reply", "grade_"),
    [
        (
            '{"passed": true, "score": 0.9, "reason": "names Paris"}',
            {"passed": True, "score": 0.9, "reason": "names Paris"},
        ),
        (
            '```json\n{"passed": false, "score": 0, "reason": "Rome"}\n```',
            {"passed": False, "score": 0.0, "reason": "Rome"},
        ),
        (
            'Here is my grade: {"passed": "true", "reason": "ok"} Thanks.',
            {"passed": True, "score": 1.0, "reason": "ok"},
        ),
        ('{"passed": "FAIL", "score": "0.25"}', {"passed": False, "score": 0.25, "reason": ""}),
        ('{"a": 1} then {"passed": false, "score": 1, "reason": "x"}', {"passed": False, "score": 1.0, "reason": "x"}),
    ],
)
def test_a_grade_is_read_tolerantly(reply: str, grade_: dict[str, Any]) -> None:
    assert parse_grade(reply) == (grade_, "")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (None, "the reply was empty"),
        ("   ", "the reply was empty"),
        ("The answer is fine.", "no JSON object in the reply"),
        ('{"score": 1}', 'the object has no "passed"'),
        ('{"passed": "maybe"}', '"passed" must be true or false'),
        ('{"passed": true, "score": 7}', '"score" must be a number from 0 to 1'),
        ("[true, 1]", "expected a JSON object, got list"),
    ],
)
def test_an_unreadable_grade_says_why(reply: str | None, why: str) -> None:
    parsed, problem = parse_grade(reply)
    assert parsed is None and why in problem


def test_the_judge_is_sent_the_task_the_rubric_the_tool_calls_and_the_answer() -> None:
    task = Task(id="t", prompt="What is the capital of France?", rubric=RUBRIC)
    calls = (
        ToolCall("get_weather", {"location": "Paris"}, "20°C", None, 1.0),
        ToolCall("calculator", {"expression": "1/0"}, None, "ZeroDivisionError", 1.0),
        ToolCall("final_answer", {"answer": "Paris"}, "Paris", None, 1.0),
    )
    record = RunRecord("t", "tool", "s", "m", "litellm", "r", "Paris", True, "final_answer", (), calls, 1, 1, 1.0, 1.0)
    prompt = grading_prompt(task, record, "Paris")
    for part in (
        "<task>\nWhat is the capital of France?\n</task>",
        f"<rubric>\n{RUBRIC}\n</rubric>",
        "1. get_weather(location='Paris') → 20°C",
        "2. calculator(expression='1/0') raised ZeroDivisionError",
        "<answer>\nParis\n</answer>",
        '{"passed": true or false, "score": a number from 0 to 1, "reason": "one or two sentences"}',
    ):
        assert part in prompt
    assert "final_answer(" not in prompt


# ------------------------------------------------------------------------------------------------ real runs


@pytest.fixture
def grader_server() -> Any:
    with ScriptedModelServer() as srv:
        yield srv


def grader_for(srv: ScriptedModelServer, model: str = JUDGE_MODEL, provider: str = "litellm") -> Grader:
    return Grader(ModelSpec(model, provider, api_base=srv.base_url, retries=0), price_for(model))


def run(
    server: ScriptedModelServer,
    key: str,
    agent_type: Any = "tool",
    grader: Grader | None = None,
    budget: Budget | None = None,
    **fields: Any,
) -> ItemResult:
    task = validate_row(
        {"id": key.strip("[]"), "prompt": f"What is the capital of France? {key}", "rubric": RUBRIC, **fields},
        source="tasks.json",
        row_number=1,
    )
    cfg = RunConfig(spec=ModelSpec("openai/scripted", "litellm", api_base=server.base_url), run_id="r", max_steps=2)
    return run_and_judge(task, agent_type, cfg, nodeid=f"n{key}", price=None, grader=grader, budget=budget)


def judge_spans(result: ItemResult) -> list[dict[str, Any]]:
    assert result.trace is not None
    return [s for s in result.trace["spans"] if s["name"] == SPAN_NAME]


@pytest.mark.parametrize("agent_type", ["tool", "code"])
def test_a_pass_grade_passes_with_the_judges_spend_apart(
    server: ScriptedModelServer, grader_server: ScriptedModelServer, agent_type: str, tmp_path: Path
) -> None:
    server.add_script("[r-pass]", [{"final_answer": "Paris"}])
    grader_server.add_script(
        "[r-pass]",
        [
            {
                "content": grade_text(True, 0.9, "It names Paris."),
                "usage": {"prompt_tokens": 300, "completion_tokens": 20},
            }
        ],
    )
    budget = Budget(10.0, FileStore(tmp_path, "rubric", shared=False))
    result = run(server, "[r-pass]", agent_type, grader_for(grader_server), budget=budget)
    verdict, record = result.verdict, result.record
    assert verdict.outcome == "passed"
    check = verdict.check("rubric")
    assert check is not None and check.expected == RUBRIC
    assert check.actual == {"reason": "It names Paris.", "score": 0.9}
    # the judge's tokens and cost are its own: the agent's tokens are the agent server's alone
    agent_usage = server.usage_for("[r-pass]")
    assert record.total_tokens == agent_usage["prompt_tokens"] + agent_usage["completion_tokens"]
    assert record.judge_tokens == 320
    price = price_for(JUDGE_MODEL)
    assert price is not None and record.judge_cost_usd == pytest.approx(cost_usd(price, 300, 20))
    assert record.cost_usd is None  # the scripted agent model has no price; the judge's cost is not mixed in
    assert budget.spent() == pytest.approx(record.judge_cost_usd)
    # JSON mode was asked for
    (request,) = grader_server.requests
    assert request.body["response_format"] == {"type": "json_object"} and request.body["model"] == "gpt-4o-mini"
    # the judge call is a span of the item's trace, under its root, with its own evaluation; no LLM span of it
    assert result.trace is not None
    (span,) = judge_spans(result)
    assert span["parent_span_id"] == result.trace["root_span_id"]
    assert span["evaluations"] == [
        {"name": "rubric", "score.label": "pass", "score.value": 0.9, "explanation": "It names Paris."}
    ]
    assert span["attributes"]["smoltrace.judge.model"] == JUDGE_MODEL
    assert span["attributes"]["smoltrace.judge.total_tokens"] == 320
    llm = [s for s in result.trace["spans"] if s["category"] == "llm"]
    assert {s["attributes"]["gen_ai.request.model"] for s in llm} == {"openai/scripted"}
    assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == record.prompt_tokens
    root = next(s for s in result.trace["spans"] if s["span_id"] == result.trace["root_span_id"])
    assert [e["name"] for e in root["evaluations"]] == ["final_answer", "rubric"]
    # results.json, the summary and the leaderboard count the judge apart
    row = result_row(result)
    assert (row["judge_tokens"], row["judge_cost_usd"], row["total_tokens"]) == (
        320,
        record.judge_cost_usd,
        record.total_tokens,
    )
    (summary,) = summarize([result])
    assert summary.judge_tokens == 320 and summary.total_tokens == record.total_tokens
    ctx = RunContext("m", "litellm", "r", "tasks.json", None, 0.0, 1.0, "completed", 300.0, "local:r")
    board = leaderboard_row(summary, ctx, results=[result])
    assert (board["total_judge_tokens"], board["total_tokens"]) == (320, record.total_tokens)
    assert board["total_judge_cost_usd"] == pytest.approx(record.judge_cost_usd)
    assert board["total_cost_usd"] is None


def test_a_fail_grade_fails_and_the_message_shows_the_reason(
    server: ScriptedModelServer, grader_server: ScriptedModelServer
) -> None:
    server.add_script("[r-fail]", [{"final_answer": "Rome"}])
    grader_server.add_script("[r-fail]", [{"content": grade_text(False, 0.0, "It names Rome, not Paris.")}])
    result = run(server, "[r-fail]", "tool", grader_for(grader_server))
    assert result.verdict.outcome == "failed"
    table = format_checks(result.verdict, width=200)
    assert "FAIL  rubric" in table and "It names Rome, not Paris." in table
    (span,) = judge_spans(result)
    assert span["evaluations"][0]["score.label"] == "fail"


def test_an_unreadable_reply_is_asked_once_more(
    server: ScriptedModelServer, grader_server: ScriptedModelServer
) -> None:
    server.add_script("[r-retry]", [{"final_answer": "Paris"}])
    grader_server.add_script(
        "[r-retry]", [{"content": "Looks right to me!"}, {"content": grade_text(True, 1, "Paris.")}]
    )
    result = run(server, "[r-retry]", "code", grader_for(grader_server))
    assert result.verdict.outcome == "passed"
    first, second = grader_server.requests
    retry = second.body["messages"][-1]
    assert "could not be read as the grade (no JSON object in the reply)" in json.dumps(retry)
    assert second.body["messages"][-2]["role"] == "assistant"
    assert result.record.judge_tokens == sum(
        r.usage["prompt_tokens"] + r.usage["completion_tokens"] for r in (first, second) if r.usage
    )
    (span,) = judge_spans(result)
    assert span["attributes"]["smoltrace.judge.calls"] == 2


@pytest.mark.parametrize(
    ("turns", "why"),
    [
        ([{"content": "garbage"}, {"content": '{"passed": "perhaps"}'}], '"passed" must be true or false'),
        (
            [{"status": 400, "body": {"error": {"message": "bad request"}}}],
            "the judge model openai/gpt-4o-mini call failed",
        ),
    ],
)
def test_a_garbage_grade_is_an_error_outcome_never_a_pass_or_a_fail(
    server: ScriptedModelServer, grader_server: ScriptedModelServer, turns: list[dict[str, Any]], why: str
) -> None:
    server.add_script("[r-garbage]", [{"final_answer": "Paris"}])
    grader_server.add_script("[r-garbage]", turns)
    result = run(server, "[r-garbage]", "tool", grader_for(grader_server))
    verdict, record = result.verdict, result.record
    assert verdict.outcome == "error"
    assert verdict.error is not None and verdict.error.startswith(f"{JUDGE_ERROR}: ") and why in verdict.error
    assert record.error_type == JUDGE_ERROR and record.error == verdict.error.removeprefix(f"{JUDGE_ERROR}: ")
    assert record.stop_reason == "final_answer" and verdict.check("rubric") is None
    assert verdict.check("final_answer") is not None  # the built-in checks are still there
    assert result_row(result)["outcome"] == "error" and result_row(result)["error_type"] == JUDGE_ERROR
    (span,) = judge_spans(result)
    assert span["status"] == "ERROR" and "evaluations" not in span


def test_no_final_answer_fails_the_rubric_without_asking_the_judge(
    server: ScriptedModelServer, grader_server: ScriptedModelServer
) -> None:
    weather = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]}
    server.add_script("[r-steps]", {"tool": [weather, weather, weather], "summary": "Paris, probably."})
    result = run(server, "[r-steps]", "tool", grader_for(grader_server))
    check = result.verdict.check("rubric")
    assert result.verdict.outcome == "failed" and check is not None and not check.passed
    assert check.actual == "no final answer: max steps reached (the summary is not a final answer)"
    assert grader_server.requests == [] and result.record.judge_tokens is None and judge_spans(result) == []


def test_an_agent_error_is_not_graded(server: ScriptedModelServer, grader_server: ScriptedModelServer) -> None:
    server.add_script("[r-broken]", [{"status": 400, "body": {"error": {"message": "no"}}}])
    result = run(server, "[r-broken]", "tool", grader_for(grader_server))
    assert result.verdict.outcome == "error" and result.record.error_type != JUDGE_ERROR
    assert grader_server.requests == []


def test_a_rubric_without_a_judge_model(server: ScriptedModelServer) -> None:
    server.add_script("[r-nojudge]", [{"final_answer": "Paris"}])
    result = run(server, "[r-nojudge]", "tool", None)
    assert result.verdict.outcome == "error" and result.verdict.error == f"{JUDGE_ERROR}: {NO_JUDGE}"
    assert "--smoltrace-judge-model" in NO_JUDGE
    # where the session says no judge model is configured, the task is refused when it is collected
    row = {"id": "t", "prompt": "p", "rubric": RUBRIC}
    with pytest.raises(TaskError) as info:
        validate_row(row, source="tasks.json", row_number=2, options=TaskOptions(judge_model=False))
    assert str(info.value).startswith(
        "tasks.json: row 2: field 'rubric': needs a judge model to grade the answer: give --smoltrace-judge-model"
    )
    assert validate_row(row, source="s", row_number=1, options=TaskOptions(judge_model=True)).rubric == RUBRIC


def test_json_mode_only_where_the_provider_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class Reply:
        content = grade_text(True, 1, "ok")
        token_usage = None

    class StubModel:
        def generate(self, messages: Any, **kwargs: Any) -> Reply:
            seen.append(kwargs)
            return Reply()

    monkeypatch.setattr("pytest_smoltrace.models.get_model", lambda spec: StubModel())
    task = Task(id="t", prompt="p", rubric=RUBRIC)
    record = RunRecord("t", "tool", "s", "m", "x", "r", "Paris", True, "final_answer", (), (), 1, 1, 1.0, 1.0)
    for provider in ("litellm", "ollama", "inference", "transformers"):
        graded = grade(task, record, "Paris", Grader(ModelSpec("judge", provider)))
        assert graded.check is not None and graded.tokens is None and graded.cost_usd is None
    assert [bool(k) for k in seen] == [True, True, False, False]


def test_judge_settings() -> None:
    from types import SimpleNamespace

    assert Grader.from_settings(SimpleNamespace(judge_model=None)) is None
    grader = Grader.from_settings(
        SimpleNamespace(
            judge_model=JUDGE_MODEL,
            judge_provider="ollama",
            judge_api_base="http://127.0.0.1:1",
            timeout=9.0,
            retries=1,
        )
    )
    assert grader is not None
    assert (grader.spec.model_id, grader.spec.provider, grader.spec.api_base, grader.spec.retries) == (
        JUDGE_MODEL,
        "ollama",
        "http://127.0.0.1:1",
        1,
    )
    assert grader.price == price_for(JUDGE_MODEL)


# ------------------------------------------------------------------------------------------------ as pytest runs it


def test_a_garbage_grade_is_pytests_E(bench: Any, grader_server: ScriptedModelServer) -> None:
    tasks = [
        {"id": "good", "prompt": "Capital? [r-e-good]", "rubric": RUBRIC, "agent_type": "tool"},
        {"id": "bad", "prompt": "Capital? [r-e-bad]", "rubric": RUBRIC, "agent_type": "tool"},
    ]
    scripts = {"[r-e-good]": [{"final_answer": "Paris"}], "[r-e-bad]": [{"final_answer": "Paris"}]}
    grader_server.add_script("[r-e-good]", [{"content": grade_text(True, 1, "Paris.")}])
    grader_server.add_script("[r-e-bad]", [{"content": "garbage"}, {"content": "more garbage"}])
    judge_args = ("--smoltrace-judge-model", JUDGE_MODEL, "--smoltrace-judge-api-base", grader_server.base_url)
    result = bench(tasks, scripts, *judge_args, subprocess=True)
    result.result.assert_outcomes(passed=1, errors=1)
    assert result.row("bad", "tool")["error_type"] == JUDGE_ERROR
    assert result.row("good", "tool")["judge_tokens"] > 0
    # the judge's spend is apart from the agent's, and the same in results.json, metadata.json and the terminal
    judged = sum(r["judge_tokens"] or 0 for r in result.rows)
    assert result.read("metadata.json")["totals"]["judge_tokens"] == judged
    assert result.read("metadata.json")["totals"]["total_tokens"] == sum(r["total_tokens"] for r in result.rows)
    assert f"rubric judge (apart from the agent's): {judged} tokens" in result.stdout
    refused = bench(tasks, scripts, run_id="no-judge", subprocess=True)
    assert "needs a judge model to grade the answer: give --smoltrace-judge-model" in refused.stdout
